//! Registering an fd-owning value with tokio's reactor.
use std::os::fd::AsRawFd;

use tokio::io::{unix::AsyncFd, Interest};

/// Polls `owner`'s fd for readability. `owner` must keep its fd open, unchanged, for as long
/// as it lives (as aya-log's `EbpfLogger` does with its ring buffer).
pub fn readable<T: AsRawFd>(owner: T) -> std::io::Result<AsyncFd<T>> {
    // SAFETY: the fd belongs to `owner`, which the AsyncFd owns and drops only after
    // deregistering it; `owner` keeps it open and unchanged while it lives (see above).
    unsafe { AsyncFd::register_with_interest(owner, Interest::READABLE) }
        .map_err(|error| error.into_parts().1)
}
