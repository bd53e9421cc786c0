//! `sockstats run --label L -- CMD…`: runs a command in a cgroup of its own with a temporary
//! rule labeling every socket made in it, passes its exit status through, and cleans up.
//!
//! The cgroup is a child of this process's cgroup when that is inside the daemon's accounted
//! subtree, else a child of the subtree's root. The rule is added before the command starts and
//! belongs to this connection: if `sockstats run` dies, the daemon removes it, and the cgroup
//! once it is empty. SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to
//! the command ([`crate::sys::signal_forwarding::FORWARDED`]); its exit, however it came, is followed by the same clean-up.
use std::{
    ffi::OsString,
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
    process::{Command, ExitCode, ExitStatus},
    time::{Duration, Instant},
};

use sockstats_common::{
    client::{Client, ClientError},
    protocol::RuleSelector,
};

use crate::{
    cgroup,
    sys::{self, child::Identity, signal_forwarding::Forwarder},
};

/// How long to wait for the command's leftover processes to die after they were killed.
const KILL_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "sockstats run needs root: it makes a cgroup and adds a rule (try `sudo sockstats run …`)"
    )]
    NotRoot,
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Cgroup(#[from] cgroup::CgroupError),
    #[error("cannot make cgroup {}: {source}", path.display())]
    MakeCgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("this process's cgroup v2 is unknown: {0}")]
    OwnCgroup(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("cannot catch the signals to pass on to the command: {0}")]
    Signals(#[source] io::Error),
}

/// The exit code a shell would give for `status`: its code, or 128 + the signal.
#[must_use]
pub fn exit_code_of(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from((128 + signal) & 0xff).unwrap_or(1),
        (None, None) => 1,
    }
}

/// This process's cgroup v2 directory.
fn own_cgroup(mount: &Path) -> Result<PathBuf, RunError> {
    let text = fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| RunError::OwnCgroup(format!("cannot read /proc/self/cgroup: {e}")))?;
    let relative = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| RunError::OwnCgroup("no cgroup v2 line in /proc/self/cgroup".to_owned()))?;
    Ok(mount.join(relative.trim_start_matches('/')))
}

/// A cgroup made for the command; dropping it kills what is left in it and removes it.
struct RunCgroup {
    path: PathBuf,
}

impl RunCgroup {
    fn make(parent: &Path) -> Result<Self, RunError> {
        // The pid alone could name a cgroup an earlier, crashed run left behind.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!(
            "{}{}-{nanos}",
            cgroup::RUN_CGROUP_PREFIX,
            std::process::id()
        ));
        fs::create_dir(&path).map_err(|source| RunError::MakeCgroup {
            path: path.clone(),
            source,
        })?;
        Ok(Self { path })
    }

    fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect()
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            let pids = self.pids();
            if pids.is_empty() && fs::remove_dir(&self.path).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "sockstats run: cannot remove {}: processes {pids:?} are still in it",
                    self.path.display()
                );
                return;
            }
            // Processes the command left behind go with it (cgroup.kill where the kernel has
            // it, 5.14+; else one by one).
            if !pids.is_empty() && fs::write(self.path.join("cgroup.kill"), "1").is_err() {
                for pid in pids {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Who the command runs as: a uid, its primary gid and its supplementary groups.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl RunAs {
    /// The user `name` (or a numeric uid), with the groups the system gives it.
    pub fn user(name: &str) -> Result<Self, RunError> {
        use nix::unistd::{getgrouplist, Uid, User};
        let user = match name.parse::<u32>() {
            Ok(uid) => User::from_uid(Uid::from_raw(uid)),
            Err(_) => User::from_name(name),
        }
        .ok()
        .flatten()
        .ok_or_else(|| RunError::NoSuchUser(name.to_owned()))?;
        let c_name = std::ffi::CString::new(user.name.clone())
            .map_err(|_| RunError::NoSuchUser(name.to_owned()))?;
        let groups = getgrouplist(&c_name, user.gid)
            .map_err(|e| RunError::NoSuchUser(format!("{name} (its groups: {e})")))?;
        Ok(Self {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups: groups.into_iter().map(nix::unistd::Gid::as_raw).collect(),
        })
    }
}

/// Runs `command` (as `run_as`, else as root) with every socket it makes labeled `label`;
/// returns its exit code.
pub fn run_labeled(
    socket: &Path,
    label: &str,
    run_as: Option<&RunAs>,
    command: &[OsString],
) -> Result<ExitCode, RunError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(RunError::NotRoot);
    }
    let mut client = Client::connect(socket)?;
    let accounted = PathBuf::from(client.status()?.cgroup_root);
    let mount = fs::canonicalize(cgroup::cgroup2_mount()?)
        .map_err(|e| RunError::OwnCgroup(format!("cannot resolve the cgroup2 mount: {e}")))?;
    let own = own_cgroup(&mount)?;
    let parent = if own.starts_with(&accounted) {
        own
    } else {
        accounted
    };
    // From here on the signals for us are the command's: blocked until it runs, then passed
    // on to it; none can end this process before it has cleaned up.
    let mut forwarder = Forwarder::new().map_err(RunError::Signals)?;
    let cgroup = RunCgroup::make(&parent)?;
    let relative = cgroup
        .path
        .strip_prefix(&mount)
        .map(|p| format!("/{}", p.display()))
        .map_err(|_| {
            RunError::OwnCgroup(format!(
                "{} is outside {}",
                cgroup.path.display(),
                mount.display()
            ))
        })?;
    client.add_rule(RuleSelector::cgroup(&relative), label, true)?;

    let status = spawn_in(&cgroup.path, run_as, command, &mut forwarder);
    // Rule first, then the cgroup: no socket of the command is made unlabeled meanwhile. If
    // the daemon restarted meanwhile, it drops the rule itself once the cgroup is gone.
    if let Err(error) = client.remove_rule(RuleSelector::cgroup(&relative)) {
        let _ = writeln!(io::stderr(), "sockstats run: warning: {error}");
    }
    drop(cgroup);
    match status {
        Ok(status) => Ok(ExitCode::from(exit_code_of(status))),
        Err((code, message)) => {
            let _ = writeln!(io::stderr(), "sockstats run: {message}");
            Ok(ExitCode::from(code))
        }
    }
}

/// Starts `command` inside `cgroup` and waits for it, passing on the signals `forwarder`
/// catches. Errors carry the shell's exit code for them (127 not found, 126 not runnable).
fn spawn_in(
    cgroup: &Path,
    run_as: Option<&RunAs>,
    command: &[OsString],
    forwarder: &mut Forwarder,
) -> Result<ExitStatus, (u8, String)> {
    let (program, args) = command
        .split_first()
        .ok_or((2, "no command given".to_owned()))?;
    let procs = fs::OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.procs"))
        .map_err(|e| (1, format!("cannot open {}: {e}", cgroup.display())))?;
    let mut child = Command::new(program);
    child.args(args);
    let identity = run_as.map(|run_as| Identity {
        uid: run_as.uid,
        gid: run_as.gid,
        groups: run_as.groups.clone(),
    });
    sys::child::prepare(&mut child, procs, identity, forwarder.previous_mask());
    let mut child = child.spawn().map_err(|error| {
        let name = Path::new(program).display().to_string();
        match error.kind() {
            io::ErrorKind::NotFound => (127, format!("{name}: command not found")),
            io::ErrorKind::PermissionDenied => (126, format!("{name}: permission denied")),
            _ => (1, format!("cannot run {name}: {error}")),
        }
    })?;
    // Like sudo: the signals for us go to the command; we stay to clean up after it.
    forwarder
        .wait(&mut child)
        .map_err(|e| (1, format!("cannot wait for the command: {e}")))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn exit_codes_pass_through_like_a_shell() {
        let status = Command::new("sh").args(["-c", "exit 7"]).status().unwrap();
        assert_eq!(exit_code_of(status), 7);
        let status = Command::new("sh")
            .args(["-c", "kill -9 $$"])
            .status()
            .unwrap();
        assert_eq!(exit_code_of(status), 128 + 9);
    }
}
