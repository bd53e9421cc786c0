//! What `sockstats run`'s command does between fork and exec: join its cgroup, take on the
//! user it runs as, and get back the signal mask its parent blocked for forwarding.
use std::{
    fs::File,
    io,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    process::Command,
};

use nix::sys::signal::SigSet;

/// A user to run as: uid, primary gid, supplementary groups.
#[derive(Debug, Clone)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Makes `command`, between fork and exec: write "0" to `procs` (the `cgroup.procs` of its
/// cgroup: it moves there, which needs root), then become `identity` if given, then set its
/// signal mask to `mask` (the one its parent had before blocking signals to forward them;
/// children inherit the mask).
pub fn prepare(command: &mut Command, procs: File, identity: Option<Identity>, mask: SigSet) {
    // SAFETY: the closure only makes async-signal-safe system calls (write, setgroups, setgid,
    // setuid, sigprocmask) on memory allocated before the fork, which it owns.
    unsafe {
        command.pre_exec(move || {
            if libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) != 1 {
                return Err(io::Error::last_os_error());
            }
            if let Some(identity) = &identity {
                if libc::setgroups(identity.groups.len(), identity.groups.as_ptr()) != 0
                    || libc::setgid(identity.gid) != 0
                    || libc::setuid(identity.uid) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            mask.thread_set_mask().map_err(io::Error::from)
        });
    }
}
