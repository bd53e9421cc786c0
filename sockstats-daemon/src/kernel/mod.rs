//! The kernel side as the daemon sees it: loading, attaching and pinning the programs
//! ([`loader`]) and reading and writing their maps ([`maps`]).
pub mod loader;
pub mod maps;

pub use loader::{load_and_attach, uninstall, AttachedKernel, KernelError, LoadOptions};
pub use maps::KernelMaps;
