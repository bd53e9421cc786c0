//! The Go-package-shaped API: what Tailscale's `net/sockstats` offers, for any socket on the
//! host. Each function connects to the daemon at [`default_socket_path`] (`$SOCKSTATS_SOCKET`,
//! else `/run/sockstats/sockstats.sock`), makes one blocking request, and disconnects; keep a
//! [`Client`] for many requests.
//!
//! | Go `net/sockstats`            | here                                  |
//! |-------------------------------|---------------------------------------|
//! | `WithSockStats(ctx, label, …)`| [`with_sock_stats`] (label a socket)  |
//! | `Get()`                       | [`get`]                               |
//! | `GetInterfaces()`             | [`get_interfaces`]                    |
//! | `GetValidation()`             | [`get_validation`]                    |
//! | `DebugInfo()`                 | [`debug_info`]                        |
//! | `IsAvailable`                 | [`is_available`]                      |
//!
//! ```no_run
//! use std::net::TcpStream;
//! use sockstats_common::sockstats;
//!
//! let stream = TcpStream::connect("127.0.0.1:8080")?;
//! sockstats::with_sock_stats(&stream, "uploader")?;
//! // ... use the stream ...
//! let stats = sockstats::get()?;
//! println!("uploader sent {} bytes", stats.stats["uploader"].tx_bytes);
//! # Ok::<(), sockstats_common::client::ClientError>(())
//! ```
//!
//! Errors are [`ClientError`]s; a refusal carries an [`ErrorCode`](crate::protocol::ErrorCode)
//! (`client_error.code()`), e.g. `BadLabel` or `NotASocket`.
use std::os::fd::AsFd;

pub use crate::client::{default_socket_path, Client, ClientError};
use crate::protocol::{DebugReply, GetInterfacesReply, GetReply, LabelReply, ValidationReply};

/// Puts `socket` (a TCP or UDP socket this process holds) under `label`: every byte it moved
/// since it was made, and every later one, counts for `label`.
pub fn with_sock_stats(socket: impl AsFd, label: &str) -> Result<LabelReply, ClientError> {
    Client::connect_default()?.label(socket, label)
}

/// Payload bytes sent and received per label, since the daemon's state was made.
pub fn get() -> Result<GetReply, ClientError> {
    Client::connect_default()?.get()
}

/// Payload bytes per label, split by the interface the bytes really used.
pub fn get_interfaces() -> Result<GetInterfacesReply, ClientError> {
    Client::connect_default()?.get_interfaces()
}

/// Per-label bytes from the kernel's own TCP counters, to check [`get`] against.
pub fn get_validation() -> Result<ValidationReply, ClientError> {
    Client::connect_default()?.get_validation()
}

/// Everything a maintainer needs, as the text `sockstats debug` prints.
pub fn debug_info() -> Result<String, ClientError> {
    debug_info_reply().map(|reply| crate::text::debug_text(&reply))
}

/// What [`debug_info`] shows, as data.
pub fn debug_info_reply() -> Result<DebugReply, ClientError> {
    Client::connect_default()?.debug_info()
}

/// True when the daemon answers and all its programs are attached.
#[must_use]
pub fn is_available() -> bool {
    Client::connect_default().is_ok_and(|mut client| client.is_available())
}
