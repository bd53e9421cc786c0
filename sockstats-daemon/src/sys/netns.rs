//! Network namespaces: their cookies, and running a closure inside one (on a thread of its
//! own, since `setns` changes the calling thread).
use std::{fs::File, io, os::fd::AsFd, path::Path, thread};

use nix::sched::{setns, CloneFlags};

use super::socket_info;

/// `SO_NETNS_COOKIE` (include/uapi/asm-generic/socket.h), Linux 5.14+.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the calling thread's network namespace: the value `bpf_get_netns_cookie`
/// returns for sockets in it. Asked of an unbound Unix socket: it works with the namespace's
/// loopback down, and the accounting programs ignore non-inet sockets.
pub fn current_cookie() -> io::Result<u64> {
    let (socket, _peer) = std::os::unix::net::UnixDatagram::pair()?;
    socket_info::getsockopt(socket.as_fd(), SO_NETNS_COOKIE)
}

/// Stands in for the cookie of the daemon's own namespace where the kernel has no
/// `SO_NETNS_COOKIE` (before 5.14). Real cookies count up from 1 and never reach it.
pub const OWN_COOKIE_STAND_IN: u64 = u64::MAX;

/// [`current_cookie`], or [`OWN_COOKIE_STAND_IN`] where the kernel cannot tell it.
pub fn own_cookie() -> io::Result<u64> {
    match current_cookie() {
        Err(error) if error.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(OWN_COOKIE_STAND_IN),
        result => result,
    }
}

/// Runs `work` inside the network namespace of `namespace_file` (e.g. /run/netns/NAME or
/// /proc/PID/ns/net), on a fresh thread.
pub fn run_in<T: Send + 'static>(
    namespace_file: &Path,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let file = File::open(namespace_file)?;
    thread::spawn(move || {
        setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        work()
    })
    .join()
    .map_err(|_| io::Error::other("namespace worker thread panicked"))?
}
