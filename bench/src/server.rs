//! Processes the server workloads start (nginx, ab, iperf3): started from inside the bench's
//! cgroup, so sockstats accounts them, checked to be there, and always stopped. A server is
//! stopped with its descendants (nginx's workers) when it is stopped, when it is dropped (a
//! failed round) and, through `PR_SET_PDEATHSIG`, when the bench itself dies.
use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::cgroup::BenchCgroup;

/// How long a server may take to listen, and to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The first of `candidates` (where Debian installs a tool) that exists.
pub fn installed(candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// A loopback TCP port nothing listens on now (the kernel's pick; the server binds it next).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `command` with its output going to `log` and `SIGTERM` sent to it when the thread that
/// starts it exits (`PR_SET_PDEATHSIG`: the bench is killed, or a panic ends it).
fn prepare(command: &mut Command, log: &Path) -> Result<()> {
    let out = fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    crate::sys::terminate_with_parent(command);
    Ok(())
}

fn program_name(command: &Command) -> String {
    Path::new(command.get_program())
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// Runs a client (ab, iperf3 -c) to completion in the accounted cgroup, killing it after
/// `timeout`; returns its exit status and everything it printed.
pub fn run_client(
    command: &mut Command,
    cgroup: &BenchCgroup,
    log: &Path,
    timeout: Duration,
) -> Result<(ExitStatus, String)> {
    let name = program_name(command);
    prepare(command, log)?;
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    // Until it is reaped, even an exited child still has its /proc entry.
    let placed = cgroup.check_holds(child.id(), &name);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if placed.is_err() {
            let _ = child.kill();
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{name} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(5));
    };
    placed?;
    let output = fs::read_to_string(log).unwrap_or_default();
    Ok((status, output))
}

/// A process's start time (field 22 of `/proc/PID/stat`), to tell it from a later process
/// that got the same pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    // `after_name` starts at field 3.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn parent(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Every descendant of `root`, with its start time.
fn descendants(root: u32) -> Vec<(u32, u64)> {
    let pids: Vec<u32> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    let mut found = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for &pid in &pids {
            if !found.contains(&pid) && parent(pid).is_some_and(|p| found.contains(&p)) {
                found.push(pid);
                grew = true;
            }
        }
    }
    found
        .into_iter()
        .skip(1)
        .filter_map(|pid| Some((pid, start_time(pid)?)))
        .collect()
}

fn signal(pid: u32, signal: libc::c_int) {
    crate::sys::kill(pid, signal);
}

/// A server process of a workload (nginx's master, `iperf3 -s`).
pub struct Server {
    name: String,
    child: Option<Child>,
    /// Its children when it started listening (nginx's workers), with their start times: if
    /// the server itself is killed, they are no longer its descendants to find.
    children: Vec<(u32, u64)>,
    log: PathBuf,
}

impl Server {
    /// Starts `command` in the accounted cgroup (it inherits the bench's) and waits until it
    /// listens on `port`, without connecting to it (an `iperf3 -s` would take a probe for a
    /// test).
    pub fn start(
        command: &mut Command,
        cgroup: &BenchCgroup,
        log: &Path,
        port: u16,
    ) -> Result<Self> {
        let name = program_name(command);
        prepare(command, log)?;
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let mut server = Self {
            name,
            child: Some(child),
            children: Vec::new(),
            log: log.to_owned(),
        };
        server.wait_listening(port)?;
        cgroup.check_holds(server.pid(), &server.name)?;
        server.children = descendants(server.pid());
        for (pid, _) in &server.children {
            cgroup.check_holds(*pid, &format!("a child of {}", server.name))?;
        }
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_listening(&mut self, port: u16) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        while !listening(port) {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "{} exited with {status} while starting:\n{}",
                    self.name,
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Fails if the server died while the workload ran.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            bail!(
                "{} exited during the measurement with {status}:\n{}",
                self.name,
                self.log()
            );
        }
        Ok(())
    }

    /// Stops the server and its children; fails if it had died on its own.
    pub fn stop(mut self) -> Result<()> {
        let died = self.check_running();
        self.shut_down();
        died
    }

    /// SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]; then SIGKILL to any child left behind.
    fn shut_down(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let mut children = descendants(child.id());
        children.append(&mut self.children);
        signal(child.id(), libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                eprintln!(
                    "bench: warning: {} did not exit within {STOP_TIMEOUT:?} of SIGTERM; killing it",
                    self.name
                );
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        for (pid, started) in children {
            if start_time(pid) == Some(started) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Whether something listens on 127.0.0.1:`port` (or on any IPv4 address), from
/// /proc/net/tcp.
fn listening(port: u16) -> bool {
    const LISTEN: &str = "0A";
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(3) == Some(&LISTEN)
                && fields
                    .get(1)
                    .is_some_and(|local| wanted.iter().any(|w| w == local))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_listener_is_seen_listening() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listening(port));
        drop(listener);
        assert!(!listening(port));
    }

    #[test]
    fn this_process_has_a_start_time_and_a_parent() {
        assert!(start_time(std::process::id()).is_some());
        assert!(parent(std::process::id()).is_some());
    }
}
