//! `sockstats run --label L -- CMD…`: runs a command in a cgroup of its own with a temporary
//! rule labeling every socket made in it, passes its exit status through, and cleans up.
//!
//! The cgroup is a child of this process's cgroup when that is inside the daemon's accounted
//! subtree, else a child of the subtree's root. The rule is added before the command starts and
//! belongs to this connection: if `sockstats run` dies, the daemon removes it.
use std::{
    ffi::OsString,
    fs,
    io::{self, Write as _},
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, ExitCode, ExitStatus},
    time::{Duration, Instant},
};

use sockstats_common::{
    client::{Client, ClientError},
    protocol::RuleSelector,
};

use crate::cgroup;

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
        let path = parent.join(format!("sockstats-run-{}-{nanos}", std::process::id()));
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

    let status = spawn_in(&cgroup.path, run_as, command);
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

/// Starts `command` inside `cgroup` and waits for it. Errors carry the shell's exit code for
/// them (127 not found, 126 not runnable).
fn spawn_in(
    cgroup: &Path,
    run_as: Option<&RunAs>,
    command: &[OsString],
) -> Result<ExitStatus, (u8, String)> {
    let (program, args) = command
        .split_first()
        .ok_or((2, "no command given".to_owned()))?;
    let procs = fs::OpenOptions::new()
        .write(true)
        .open(cgroup.join("cgroup.procs"))
        .map_err(|e| (1, format!("cannot open {}: {e}", cgroup.display())))?;
    let procs_fd = procs.as_raw_fd();
    let mut child = Command::new(program);
    child.args(args);

    let run_as = run_as.cloned();
    // SAFETY: the closure only makes async-signal-safe system calls (write, setgroups, setgid,
    // setuid) on memory allocated before the fork. "0" moves the calling (child) process into
    // the cgroup, which needs root: the identity changes after it.
    unsafe {
        child.pre_exec(move || {
            if libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(io::Error::last_os_error());
            }
            if let Some(run_as) = &run_as {
                if libc::setgroups(run_as.groups.len(), run_as.groups.as_ptr()) != 0
                    || libc::setgid(run_as.gid) != 0
                    || libc::setuid(run_as.uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = child.spawn().map_err(|error| {
        let name = Path::new(program).display().to_string();
        match error.kind() {
            io::ErrorKind::NotFound => (127, format!("{name}: command not found")),
            io::ErrorKind::PermissionDenied => (126, format!("{name}: permission denied")),
            _ => (1, format!("cannot run {name}: {error}")),
        }
    })?;
    drop(procs);
    // Like a shell: Ctrl-C and Ctrl-\ are for the command; we stay to clean up after it.
    let ignore = nix::sys::signal::SigHandler::SigIgn;
    // SAFETY: ignoring a signal installs no handler code.
    let previous = unsafe {
        (
            nix::sys::signal::signal(nix::sys::signal::Signal::SIGINT, ignore),
            nix::sys::signal::signal(nix::sys::signal::Signal::SIGQUIT, ignore),
        )
    };
    let status = child
        .wait()
        .map_err(|e| (1, format!("cannot wait for the command: {e}")));
    // SAFETY: restores the dispositions saved above.
    unsafe {
        if let Ok(handler) = previous.0 {
            let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGINT, handler);
        }
        if let Ok(handler) = previous.1 {
            let _ = nix::sys::signal::signal(nix::sys::signal::Signal::SIGQUIT, handler);
        }
    }
    status
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
