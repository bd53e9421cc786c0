//! Harness for the root integration tests: a private cgroup, a private sockstatsd, and traffic
//! whose exact byte counts the test knows.
//!
//! Each test makes its own cgroup v2 child, moves the test process into it and starts a
//! sockstatsd accounting only that subtree (`--cgroup-root`), with its own socket, state dir and
//! bpffs dir. Everything is undone on drop, also when the test fails.
#![expect(
    clippy::missing_panics_doc,
    reason = "test harness: panics are test failures"
)]

pub mod cgroup;
pub mod daemon;
pub mod history;
pub mod http;
pub mod netns;
pub mod otlp;
pub mod prometheus;
pub mod raw;
#[allow(
    unsafe_code,
    reason = "the one module of the harness that makes raw system calls"
)]
pub mod sys;
pub mod traffic;

pub use cgroup::TestCgroup;
pub use daemon::TestDaemon;

/// A daemon accounting a fresh cgroup that this process has moved into.
pub struct Harness {
    // Field order is drop order: the daemon exits before its cgroup is removed.
    pub daemon: TestDaemon,
    pub cgroup: TestCgroup,
}

impl Harness {
    /// Creates the cgroup, moves this process into it and starts the daemon.
    #[must_use]
    pub fn start(name: &str) -> Self {
        let cgroup = TestCgroup::enter(name);
        let daemon = TestDaemon::start(name, &cgroup);
        Self { daemon, cgroup }
    }

    /// As [`Harness::start`], with more sockstatsd arguments.
    #[must_use]
    pub fn start_with_args(name: &str, extra_args: &[&str]) -> Self {
        let cgroup = TestCgroup::enter(name);
        let daemon = TestDaemon::start_with_args(name, &cgroup, extra_args);
        Self { daemon, cgroup }
    }

    /// As [`Harness::start_with_args`], with `config` as the daemon's config file (`--config`).
    /// The file is in a temporary dir removed with the returned guard: keep it while the
    /// daemon may restart.
    #[must_use]
    pub fn start_with_config(
        name: &str,
        config: &str,
        extra_args: &[&str],
    ) -> (Self, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temporary dir");
        let path = dir.path().join("sockstats.conf");
        std::fs::write(&path, config).expect("write the config");
        let mut args = vec!["--config", path.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra_args);
        (Self::start_with_args(name, &args), dir)
    }

    /// As [`Harness::start`], but the daemon accounts the whole host (no `--cgroup-root`).
    #[must_use]
    pub fn start_whole_host(name: &str) -> Self {
        let cgroup = TestCgroup::enter(name);
        let daemon = TestDaemon::start_whole_host(name, &cgroup);
        Self { daemon, cgroup }
    }

    /// As [`Harness::start_whole_host`], with more sockstatsd arguments.
    #[must_use]
    pub fn start_whole_host_with_args(name: &str, extra_args: &[&str]) -> Self {
        let cgroup = TestCgroup::enter(name);
        let daemon = TestDaemon::start_whole_host_with_args(name, &cgroup, extra_args);
        Self { daemon, cgroup }
    }
}
