//! A private sockstatsd for one test: own socket, state dir, bpffs dir and cgroup root.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use sockstats_common::{
    client::Client,
    protocol::{ByteCounts, GetReply},
};

use crate::TestCgroup;

/// How long a daemon may take to load, attach and answer (generous: inside vm-test's guests
/// it runs under QEMU's software emulation, where the verifier takes 10 s and more for each
/// fexit program of 5.10 and 6.1, on a machine other builds may be loading).
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A built binary of the workspace: `$SOCKSTATSD`'s directory, else target/debug.
#[must_use]
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("SOCKSTATSD").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
        |daemon| {
            Path::new(&daemon)
                .parent()
                .expect("SOCKSTATSD is a file path")
                .to_owned()
        },
    );
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the integration tests with `cargo xtask test`",
        path.display()
    );
    path
}

pub struct TestDaemon {
    child: Option<Child>,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    pub bpffs_dir: PathBuf,
    /// `None` for a daemon accounting the whole host.
    pub cgroup_root: Option<PathBuf>,
    /// The named network namespace the daemon runs in (`None`: this process's).
    netns: Option<String>,
    /// More sockstatsd arguments.
    extra_args: Vec<String>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestDaemon {
    /// Starts a daemon accounting `cgroup` and waits until it answers.
    #[must_use]
    pub fn start(name: &str, cgroup: &TestCgroup) -> Self {
        Self::start_scoped(name, cgroup, Some(cgroup.path.clone()), None, &[])
    }

    /// As [`TestDaemon::start`], with more sockstatsd arguments.
    #[must_use]
    pub fn start_with_args(name: &str, cgroup: &TestCgroup, extra_args: &[&str]) -> Self {
        Self::start_scoped(name, cgroup, Some(cgroup.path.clone()), None, extra_args)
    }

    /// As [`TestDaemon::start`], with the daemon running in the named network namespace
    /// `netns` (its `current_interface` and plain interface names are that namespace's).
    #[must_use]
    pub fn start_in_netns(name: &str, cgroup: &TestCgroup, netns: &str) -> Self {
        Self::start_scoped(
            name,
            cgroup,
            Some(cgroup.path.clone()),
            Some(netns.to_owned()),
            &[],
        )
    }

    /// Starts a daemon accounting the whole host; `cgroup` only names its paths.
    #[must_use]
    pub fn start_whole_host(name: &str, cgroup: &TestCgroup) -> Self {
        Self::start_scoped(name, cgroup, None, None, &[])
    }

    /// As [`TestDaemon::start_whole_host`], with more sockstatsd arguments.
    #[must_use]
    pub fn start_whole_host_with_args(
        name: &str,
        cgroup: &TestCgroup,
        extra_args: &[&str],
    ) -> Self {
        Self::start_scoped(name, cgroup, None, None, extra_args)
    }

    fn start_scoped(
        name: &str,
        cgroup: &TestCgroup,
        cgroup_root: Option<PathBuf>,
        netns: Option<String>,
        extra_args: &[&str],
    ) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sockstats-test-")
            .tempdir()
            .expect("tempdir");
        let cgroup_name = cgroup
            .path
            .file_name()
            .expect("cgroup name")
            .to_string_lossy();
        let mut daemon = Self {
            child: None,
            socket: dir.path().join("sockstats.sock"),
            state_dir: dir.path().join("state"),
            bpffs_dir: PathBuf::from("/sys/fs/bpf").join(&*cgroup_name),
            cgroup_root,
            netns,
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            log: dir.path().join(format!("{name}.log")),
            _dir: dir,
        };
        daemon.spawn();
        daemon
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut command = Command::new(binary("sockstatsd"));
        if let Some(root) = &self.cgroup_root {
            command.arg("--cgroup-root").arg(root);
        }
        if !self.extra_args.iter().any(|arg| arg == "--rules-file") {
            // Never the host's /etc/sockstats/rules.conf: an empty file of the test's own.
            let rules = self.state_dir.with_file_name("rules.conf");
            fs::write(&rules, "").expect("write an empty rules file");
            command.arg("--rules-file").arg(rules);
        }
        if !self.extra_args.iter().any(|arg| arg == "--config") {
            // Never the host's /etc/sockstats/sockstats.conf: an empty file of the test's own.
            let config = self.state_dir.with_file_name("sockstats.conf");
            fs::write(&config, "").expect("write an empty config file");
            command.arg("--config").arg(config);
        }
        if let Some(netns) = &self.netns {
            let namespace = fs::File::open(format!("/run/netns/{netns}")).expect("open namespace");
            crate::sys::enter_netns_on_exec(&mut command, namespace);
        }
        let child = command
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--bpffs-dir")
            .arg(&self.bpffs_dir)
            .args(&self.extra_args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start sockstatsd");
        // The daemon lives outside the test's cgroup: only the test's own sockets are in scope
        // (the daemon's metrics connections, say, are not the test's traffic).
        if let Some(mount) = self.cgroup_root.as_ref().and_then(|root| root.parent()) {
            fs::write(mount.join("cgroup.procs"), child.id().to_string())
                .expect("move the daemon out");
        }
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(mut client) = Client::connect(&self.socket) {
                if client.status().is_ok_and(|status| status.attached) {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "sockstatsd exited with {status} while starting:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sockstatsd did not answer within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon is running").id()
    }

    /// How many fds the daemon has open.
    #[must_use]
    pub fn open_fds(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// Waits (up to 10 s) until the daemon has at most `fds` open, and returns how many it has:
    /// connections a client just closed take the daemon a moment to notice.
    #[must_use]
    pub fn settle_fds(&self, fds: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let open = self.open_fds();
            if open <= fds || Instant::now() > deadline {
                return open;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the daemon logged so far.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new client connection.
    #[must_use]
    pub fn client(&self) -> Client {
        Client::connect(&self.socket).expect("connect to the test daemon")
    }

    #[must_use]
    pub fn get(&self) -> GetReply {
        self.client().get().expect("get")
    }

    /// The bytes of `label` (zeros if the daemon does not list it).
    #[must_use]
    pub fn stats(&self, label: &str) -> ByteCounts {
        self.get().stats.get(label).copied().unwrap_or_default()
    }

    /// Does the daemon keep socket states in a hash by cookie (before 5.11, or where the kernel
    /// refuses socket-storage iterators)? Then the TCP close backstop is attached too, and
    /// closed sockets are not validated.
    #[must_use]
    pub fn states_by_cookie(&self) -> bool {
        self.client().status().expect("status").socket_states == "hash_by_cookie"
    }

    /// The kernel programs attached: seven, and the TCP close backstop where states are kept
    /// by cookie.
    #[must_use]
    pub fn expected_programs(&self) -> usize {
        7 + usize::from(self.states_by_cookie())
    }

    /// Stops the daemon with SIGTERM and checks that it exits cleanly.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("daemon is running");
        crate::sys::terminate(child.id()).expect("SIGTERM to sockstatsd");
        let status = child.wait().expect("wait for sockstatsd");
        assert!(
            status.success(),
            "sockstatsd exited with {status}:\n{}",
            self.log()
        );
    }

    /// Kills the daemon with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("daemon is running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the daemon again with the same paths.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill the daemon first");
        self.spawn();
    }

    /// Runs the `sockstats` CLI against this daemon.
    #[must_use]
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary("sockstats"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run sockstats")
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("--- sockstatsd log ---\n{}", self.log());
        }
        let uninstall = Command::new(binary("sockstatsd"))
            .arg("--uninstall")
            .arg("--bpffs-dir")
            .arg(&self.bpffs_dir)
            .output();
        if !uninstall.is_ok_and(|out| out.status.success()) {
            let _ = fs::remove_dir_all(&self.bpffs_dir);
        }
    }
}
