//! Relabeling a socket the daemon was handed: `setsockopt(SOL_SOCKSTATS)`, which the kernel
//! program on `cgroup/setsockopt` takes (the bytes move in the kernel; see sockstats-ebpf's
//! `relabel.rs`).
use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
    time::{Duration, Instant},
};

use sockstats_common::{RelabelRequest, SOL_SOCKSTATS, SO_SOCKSTATS_LABEL};

/// How long a relabel may keep finding the socket busy (another operation in flight on it,
/// each a few hundred nanoseconds) before it gives up.
const BUSY_FOR_AT_MOST: Duration = Duration::from_secs(2);

/// Why a relabel did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RelabelError {
    #[error("no sockstats program took the relabel: the socket was made outside the accounted cgroup subtree (--cgroup-root), or the programs attached are another daemon's")]
    NotTaken,
    #[error("the socket stayed busy for {} s (another send, receive or packet was always in flight on it)", BUSY_FOR_AT_MOST.as_secs())]
    Busy,
    #[error("setsockopt: {0}")]
    Os(#[source] io::Error),
}

/// Puts the socket `fd` (cookie `cookie`) under label id `label`, retrying while the kernel
/// finds it busy. Returns how many attempts it took.
pub fn relabel(
    fd: BorrowedFd<'_>,
    cookie: u64,
    label: u32,
    token: u64,
) -> Result<u32, RelabelError> {
    let request = RelabelRequest {
        label,
        pad: 0,
        cookie,
        token,
    };
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        // SAFETY: `fd` is open for the call, and the option value is a live struct of the size
        // passed.
        let result = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_SOCKSTATS,
                SO_SOCKSTATS_LABEL,
                (&raw const request).cast(),
                libc::socklen_t::try_from(size_of::<RelabelRequest>()).unwrap_or(24),
            )
        };
        if result == 0 {
            return Ok(attempts);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EPERM) if started.elapsed() < BUSY_FOR_AT_MOST => {
                if attempts % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(50));
                } else {
                    std::thread::yield_now();
                }
            }
            Some(libc::EPERM) => return Err(RelabelError::Busy),
            Some(libc::ENOPROTOOPT) => return Err(RelabelError::NotTaken),
            _ => return Err(RelabelError::Os(error)),
        }
    }
}

/// A fresh random secret for relabel requests (never 0).
pub fn new_token() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    loop {
        io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
        let token = u64::from_ne_bytes(bytes);
        if token != 0 {
            return Ok(token);
        }
    }
}
