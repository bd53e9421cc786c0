//! The kernel side as the daemon sees it: choosing the hooks for the running kernel
//! ([`hooks`], from its BTF: [`btf`]), loading, attaching and pinning the programs
//! ([`loader`], [`attach`]) and reading and writing their maps ([`maps`]), which the daemon's
//! operations reach through the [`Kernel`] trait ([`interface`]; an in-memory [`fake`] for tests).
#[cfg(test)]
mod abi_check;
pub mod attach;
pub mod btf;
pub mod fake;
pub mod hooks;
pub mod interface;
pub mod loader;
pub mod maps;
pub mod vmlinux;

pub use interface::{AccessError, Kernel, LabelError};
pub use loader::{load_and_attach, uninstall, AttachedKernel, KernelError, LoadOptions};
pub use maps::KernelMaps;
