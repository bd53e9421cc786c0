//! The `bpf(2)` system call itself, for the commands aya 0.14 does not make for us (batch
//! lookups, socket-storage lookups by fd, map iterators, a pinnable `cgroup/setsockopt` link).
use std::io;

/// Runs `bpf(cmd, attr, size_of::<T>())`; the command's non-negative result, or its error.
///
/// # Safety
/// `attr` must be the `union bpf_attr` member of `cmd`, and every buffer it points to must be
/// valid for what the kernel reads and writes there.
pub unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i64> {
    // SAFETY: the caller's contract.
    let result =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(result)
}
