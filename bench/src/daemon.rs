//! A private sockstatsd for the bench: its own socket, state dir and bpffs dir, accounting only
//! the bench's cgroup. Stopping it also runs `sockstatsd --uninstall`, so the programs are
//! detached between rounds (a stopped daemon alone would leave them attached and counting).
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use sockstats_common::{client::Client, protocol::ProgramStatus};

use crate::cgroup::BenchCgroup;

const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct BenchDaemon {
    child: Option<Child>,
    daemon: PathBuf,
    pub socket: PathBuf,
    bpffs_dir: PathBuf,
    log: PathBuf,
    /// The programs the daemon attached, with their kernel ids.
    pub programs: Vec<ProgramStatus>,
    /// Where the kernel keeps socket states (`socket_storage` or `hash_by_cookie`).
    pub socket_states: String,
    /// Holds the socket, state dir and log; removed on drop.
    dir: tempfile::TempDir,
}

impl BenchDaemon {
    /// Starts `<bin_dir>/sockstatsd` for `cgroup` and waits until its programs are attached.
    pub fn start(bin_dir: &Path, cgroup: &BenchCgroup) -> Result<Self> {
        Self::start_with(bin_dir, cgroup, None)
    }

    /// [`BenchDaemon::start`] with the config file `config` (`--config`; `None`: the default).
    pub fn start_with(bin_dir: &Path, cgroup: &BenchCgroup, config: Option<&Path>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sockstats-bench-")
            .tempdir()
            .context("tempdir")?;
        let daemon_path = bin_dir.join("sockstatsd");
        let mut daemon = Self {
            child: None,
            daemon: daemon_path,
            socket: dir.path().join("sockstats.sock"),
            bpffs_dir: PathBuf::from(format!(
                "/sys/fs/bpf/sockstats-bench-{}",
                std::process::id()
            )),
            log: dir.path().join("sockstatsd.log"),
            programs: Vec::new(),
            socket_states: String::new(),
            dir,
        };
        let log = fs::File::create(&daemon.log).context("daemon log file")?;
        let mut command = Command::new(&daemon.daemon);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let child = command
            .arg("--cgroup-root")
            .arg(&cgroup.path)
            .arg("--socket")
            .arg(&daemon.socket)
            .arg("--state-dir")
            .arg(daemon.dir.path().join("state"))
            .arg("--bpffs-dir")
            .arg(&daemon.bpffs_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", daemon.daemon.display()))?;
        let pid = child.id();
        daemon.child = Some(child);
        // The daemon's own sockets (none are inet today) are not the workload's.
        cgroup.move_out(pid)?;
        daemon.wait_attached()?;
        Ok(daemon)
    }

    fn wait_attached(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(mut client) = Client::connect(&self.socket) {
                if let Ok(status) = client.status() {
                    if status.attached {
                        self.programs = status.programs;
                        self.socket_states = status.socket_states;
                        return Ok(());
                    }
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "sockstatsd exited with {status} while starting:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "sockstatsd did not answer within {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client connection.
    pub fn client(&self) -> Result<Client> {
        Client::connect(&self.socket).context("connect to the bench daemon")
    }

    /// Stops the daemon (SIGTERM) and detaches its programs (`--uninstall`).
    pub fn stop(mut self) -> Result<()> {
        self.shut_down(true)
    }

    fn shut_down(&mut self, graceful: bool) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            if graceful {
                crate::sys::kill(child.id(), libc::SIGTERM);
            } else {
                let _ = child.kill();
            }
            let status = child.wait().context("wait for sockstatsd")?;
            if graceful && !status.success() {
                bail!("sockstatsd exited with {status}:\n{}", self.log());
            }
        }
        let out = Command::new(&self.daemon)
            .arg("--uninstall")
            .arg("--bpffs-dir")
            .arg(&self.bpffs_dir)
            .output()
            .context("run sockstatsd --uninstall")?;
        if !out.status.success() {
            bail!(
                "sockstatsd --uninstall failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for BenchDaemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.shut_down(false);
        }
    }
}
