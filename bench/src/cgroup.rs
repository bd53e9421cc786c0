//! The bench's own cgroup v2 child: the workload runs inside it, the daemon and the pcap tool
//! outside, so sockstats accounts exactly the bench's sockets (`--cgroup-root`) and leaves the
//! rest of the host alone.
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

/// The cgroup2 mount point, from /proc/self/mountinfo.
fn cgroup2_mount() -> Result<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").context("read mountinfo")?;
    mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .context("no cgroup2 file system is mounted")
}

/// This process's cgroup v2 directory.
fn current_cgroup(mount: &Path) -> Result<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
    let relative = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .context("this process has no cgroup v2 entry")?;
    Ok(mount.join(relative.trim_start_matches('/')))
}

fn move_pid(into: &Path, pid: u32) -> Result<()> {
    let procs = into.join("cgroup.procs");
    fs::write(&procs, pid.to_string())
        .with_context(|| format!("cannot move {pid} into {}", procs.display()))
}

/// A fresh cgroup this process runs in until dropped. What it starts (the servers and load
/// generators of the workloads) inherits it.
pub struct BenchCgroup {
    pub path: PathBuf,
    /// Where this process came from; helpers (daemon, pcap tool) are moved back there.
    pub origin: PathBuf,
    /// The cgroup2 mount `path` is under.
    mount: PathBuf,
}

impl BenchCgroup {
    pub fn enter() -> Result<Self> {
        let mount = cgroup2_mount()?;
        let origin = current_cgroup(&mount)?;
        let path = mount.join(format!("sockstats-bench-{}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let cgroup = Self {
            path,
            origin,
            mount,
        };
        move_pid(&cgroup.path, std::process::id())?;
        Ok(cgroup)
    }

    /// Moves `pid` (a helper started from inside) out of the accounted cgroup.
    pub fn move_out(&self, pid: u32) -> Result<()> {
        move_pid(&self.origin, pid)
    }

    /// Fails unless process `pid` is in this cgroup (a workload's server or client, which
    /// sockstats must account).
    pub fn check_holds(&self, pid: u32, what: &str) -> Result<()> {
        let file = format!("/proc/{pid}/cgroup");
        let own = fs::read_to_string(&file).with_context(|| format!("read {file}"))?;
        let relative = own
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .with_context(|| format!("{what} (pid {pid}) has no cgroup v2 entry"))?;
        let path = self.mount.join(relative.trim_start_matches('/'));
        if path != self.path {
            bail!(
                "{what} (pid {pid}) runs in {}, not in the accounted {}",
                path.display(),
                self.path.display()
            );
        }
        Ok(())
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        let _ = move_pid(&self.origin, std::process::id());
        for _ in 0..100 {
            if fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("bench: warning: could not remove {}", self.path.display());
    }
}
