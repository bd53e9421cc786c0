//! `RLIMIT_MEMLOCK`: kernels before 5.11 charge BPF maps and programs to it (later ones to the
//! memory cgroup), and its default of 64 KiB or 8 MiB is far below what the maps need.
use nix::sys::resource::{setrlimit, Resource, RLIM_INFINITY};

/// Lifts the limit. Harmless where the kernel no longer uses it, and refused in some
/// containers: the caller decides whether a failure matters.
pub fn raise() -> nix::Result<()> {
    setrlimit(Resource::RLIMIT_MEMLOCK, RLIM_INFINITY, RLIM_INFINITY)
}
