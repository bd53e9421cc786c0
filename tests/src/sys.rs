//! The harness's raw system calls, in small safe wrappers: the rest of the tests is safe code.
use std::{
    fs::File,
    io,
    os::{
        fd::{AsRawFd as _, BorrowedFd},
        unix::process::CommandExt as _,
    },
    process::Command,
};

/// Makes `command` enter the network namespace `namespace` (an open `/run/netns/NAME`) between
/// fork and exec.
pub fn enter_netns_on_exec(command: &mut Command, namespace: File) {
    // SAFETY: between fork and exec only setns runs, which is async-signal-safe; the closure
    // owns the namespace file.
    unsafe {
        command.pre_exec(move || {
            nix::sched::setns(&namespace, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)
        });
    }
}

/// Makes `command` move itself into the cgroup whose open `cgroup.procs` is `procs` between
/// fork and exec.
pub fn join_cgroup_on_exec(command: &mut Command, procs: File) {
    // SAFETY: only write(2) runs between fork and exec, on a descriptor the closure owns.
    unsafe {
        command.pre_exec(move || {
            if libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) == 1 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

/// Sends SIGTERM to the process `pid`.
pub fn terminate(pid: u32) -> io::Result<()> {
    send_signal(pid, libc::SIGTERM)
}

/// Sends `signal` to the process `pid`.
pub fn send_signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill has no memory preconditions.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets this process's open-file limit (soft and hard) to `n`.
pub fn set_nofile_limit(n: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    // SAFETY: setrlimit reads a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `setsockopt(fd, level, name, value)` with raw bytes, for options no library knows.
pub fn setsockopt_bytes(fd: BorrowedFd<'_>, level: i32, name: i32, value: &[u8]) -> io::Result<()> {
    let len = libc::socklen_t::try_from(value.len()).map_err(io::Error::other)?;
    // SAFETY: `value` is live and `len` bytes long for the call; the fd is borrowed, so open.
    let result =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, value.as_ptr().cast(), len) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `sendfile(2)` of up to `len` bytes of `from` at `*offset` to `to`; returns what it sent.
pub fn sendfile(
    to: BorrowedFd<'_>,
    from: BorrowedFd<'_>,
    offset: &mut libc::off_t,
    len: usize,
) -> io::Result<usize> {
    // SAFETY: both fds are borrowed, so open for the call; `offset` is a valid out-pointer.
    let sent = unsafe { libc::sendfile(to.as_raw_fd(), from.as_raw_fd(), offset, len) };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}
