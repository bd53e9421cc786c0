//! The few libc calls the bench's workloads need (the `bpf` ones are in `empty_programs.rs`).
use std::{
    fs::File,
    io,
    net::TcpStream,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::process::CommandExt as _,
    },
    process::Command,
};

/// Is this process running as root (effective uid 0)?
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Sends `signal` to the process `pid` (one this bench started, or its child).
pub fn kill(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory preconditions.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), if the system says.
pub fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&ticks| ticks > 0)
}

/// Makes `command` get SIGTERM when the thread that starts it exits (`PR_SET_PDEATHSIG`).
pub fn terminate_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and calls only prctl, which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one (raising the hard limit would need
/// `CAP_SYS_RESOURCE`).
pub fn raise_open_files() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit.rlim_cur)
}

/// A new, unbound `AF_INET` UDP socket: a live inet socket that holds no port.
pub fn udp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `SO_LINGER` with a zero timeout: `close` resets the connection, leaving no `TIME_WAIT`
/// socket behind to hold the port.
pub fn reset_on_close(stream: &TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and option value of the size passed.
    let ret = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            libc::socklen_t::try_from(size_of::<libc::linger>()).expect("small"),
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves this thread into the network namespace `namespace` (a `/run/netns/NAME` file): the
/// sockets it makes from now on live there (`setns(2)` with `CLONE_NEWNET`).
pub fn enter_network_namespace(namespace: &File) -> io::Result<()> {
    // SAFETY: a valid namespace fd; setns changes only this thread's network namespace.
    if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `work` with this thread (and the threads it starts) on CPU `cpu` only, then restores
/// the affinity it had.
pub fn on_one_cpu<T>(cpu: usize, work: impl FnOnce() -> T) -> io::Result<T> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut previous: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `previous` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut previous) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET bounds-checks `cpu` against the set's size.
    unsafe { libc::CPU_SET(cpu, &mut one) };
    // SAFETY: `one` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const one) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let result = work();
    // SAFETY: `previous` is the valid set read above.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const previous) } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(result)
}
