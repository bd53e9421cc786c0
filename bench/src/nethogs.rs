//! nethogs, the pcap-based per-process bandwidth monitor (Debian's package), watching `lo`
//! while the same workloads run: the comparison users ask for.
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::{cgroup::BenchCgroup, procstat};

/// Where nethogs is, if installed (`cargo xtask bench` installs it).
pub fn find() -> Option<PathBuf> {
    ["/usr/sbin/nethogs", "/usr/bin/nethogs"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

pub struct Nethogs {
    child: Child,
}

impl Nethogs {
    /// Starts `nethogs -a -t -d 1 lo` (loopback allowed, trace mode, refresh every second) outside
    /// the bench's cgroup, and gives it a moment to open its capture.
    pub fn start(binary: &PathBuf, cgroup: &BenchCgroup) -> Result<Self> {
        let child = Command::new(binary)
            .args(["-a", "-t", "-d", "1", "lo"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut nethogs = Self { child };
        cgroup.move_out(nethogs.child.id())?;
        thread::sleep(Duration::from_millis(700));
        if let Some(status) = nethogs.child.try_wait()? {
            bail!("nethogs exited at once with {status}");
        }
        Ok(nethogs)
    }

    /// Its CPU seconds so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        Ok(procstat::sample(self.child.id())?.cpu_seconds)
    }

    /// Stops it; fails if it died while measuring.
    pub fn stop(mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("nethogs exited during the measurement with {status}");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Nethogs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
