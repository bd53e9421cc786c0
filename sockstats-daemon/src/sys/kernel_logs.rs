//! The kernel programs' log ring buffer (aya-log), made pollable by tokio.
use std::io;

use aya_log::EbpfLogger;
use tokio::io::{unix::AsyncFd, Interest};

/// `logger`, registered with tokio to be woken when the kernel programs logged something.
pub fn pollable<T>(logger: EbpfLogger<T>) -> io::Result<AsyncFd<EbpfLogger<T>>> {
    // SAFETY: the logger owns its ring buffer fd and keeps it open, unchanged, until dropped,
    // which happens only after the AsyncFd is gone.
    unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }.map_err(io::Error::from)
}
