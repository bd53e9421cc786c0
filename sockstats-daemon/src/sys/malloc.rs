//! The C allocator's own housekeeping.

/// Hands the memory glibc's malloc holds free back to the system (`malloc_trim(0)`): after the
/// load's tens of MiB of short-lived allocations the daemon would otherwise idle at several
/// times its working size.
pub fn trim() {
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
}
