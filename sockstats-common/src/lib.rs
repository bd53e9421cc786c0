//! Types shared by the sockstats kernel programs and userspace.
//!
//! Everything at the top level is `#[repr(C)]`, `Copy` and free of implicit padding, because the
//! kernel programs and the daemon read the same bytes out of BPF maps. With the `user` feature the
//! crate also carries the wire protocol ([`protocol`]) and a small blocking client library
//! ([`client`]) that programs can link without pulling in aya or an async runtime; `pod` adds
//! `aya::Pod` for the daemon.
#![cfg_attr(not(any(feature = "user", feature = "pod")), no_std)]
#![deny(missing_docs)]

// The kernel ABI (`abi`, `kernel`) is documented in docs/architecture.md; `missing_docs` is for
// the client library.
#[allow(
    missing_docs,
    reason = "the kernel ABI is documented in docs/architecture.md"
)]
pub mod abi;
#[allow(
    missing_docs,
    reason = "the kernel ABI is documented in docs/architecture.md"
)]
pub mod kernel;

#[cfg(feature = "user")]
pub mod bpf_attr;
#[cfg(feature = "user")]
pub mod client;
#[cfg(feature = "user")]
pub mod label_name;
#[cfg(feature = "user")]
pub mod protocol;
#[cfg(feature = "user")]
pub mod sockstats;
#[cfg(feature = "user")]
pub mod text;

pub use abi::Counter;
pub use kernel::*;
