//! A cgroup v2 child for one test, which this process moves into and back out of.
use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The cgroups `sockstats run` made under `parent` (`sockstats-run-*`).
///
/// # Panics
/// When `parent` cannot be read.
#[must_use]
pub fn run_cgroups(parent: &Path) -> Vec<PathBuf> {
    fs::read_dir(parent)
        .expect("read cgroup")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("sockstats-run-")
        })
        .map(|e| e.path())
        .collect()
}

fn cgroup2_mount() -> PathBuf {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split_whitespace().nth(4)?;
            (right.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .expect("a cgroup2 file system must be mounted for the integration tests")
}

/// This process's cgroup v2 directory.
fn current_cgroup(mount: &Path) -> PathBuf {
    let own = fs::read_to_string("/proc/self/cgroup").expect("read /proc/self/cgroup");
    let relative = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .expect("this process has a cgroup v2 entry");
    mount.join(relative.trim_start_matches('/'))
}

fn move_self(into: &Path) {
    let procs = into.join("cgroup.procs");
    fs::write(&procs, std::process::id().to_string())
        .unwrap_or_else(|e| panic!("cannot move into {}: {e}", procs.display()));
}

pub struct TestCgroup {
    pub path: PathBuf,
    origin: PathBuf,
}

impl TestCgroup {
    /// Makes `<cgroup2>/sockstats-test-<name>-<pid>-<n>` and moves this process into it.
    #[must_use]
    pub fn enter(name: &str) -> Self {
        let mount = cgroup2_mount();
        let origin = current_cgroup(&mount);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = mount.join(format!("sockstats-test-{name}-{}-{n}", std::process::id()));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        let cgroup = Self { path, origin };
        move_self(&cgroup.path);
        cgroup
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        move_self(&self.origin);
        // Processes of this cgroup that just exited may linger for a moment.
        for _ in 0..100 {
            if fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.path.display());
    }
}
