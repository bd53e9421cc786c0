//! BPF links aya 0.14 cannot make: an iterator over a map (`BPF_LINK_CREATE` with the map's
//! fd, then `BPF_ITER_CREATE`; Linux 5.9+; aya attaches iterators without a map), and a
//! `cgroup/setsockopt` link that can be pinned (aya's has no conversion to a pinnable link).
use std::{
    ffi::CString,
    fs::File,
    io::{self, Read as _},
    os::{
        fd::{AsFd, AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::ffi::OsStrExt as _,
    },
    path::Path,
};

use super::bpf_syscall::bpf;

/// `BPF_OBJ_PIN`, `BPF_LINK_CREATE` and `BPF_ITER_CREATE` from `enum bpf_cmd`.
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_ITER_CREATE: libc::c_long = 33;
/// `BPF_TRACE_ITER` and `BPF_CGROUP_SETSOCKOPT` from `enum bpf_attach_type`.
const BPF_TRACE_ITER: u32 = 28;
const BPF_CGROUP_SETSOCKOPT: u32 = 22;

/// The `obj_pin` member of `union bpf_attr`.
#[repr(C)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// The `link_create` member of `union bpf_attr`, with `iter_info`.
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    iter_info: u64,
    iter_info_len: u32,
    pad: u32,
}

/// The `iter_create` member of `union bpf_attr`.
#[repr(C)]
struct IterCreateAttr {
    link_fd: u32,
    flags: u32,
}

/// A `bpf` command that returns a new descriptor.
///
/// # Safety
/// As for [`bpf`].
unsafe fn bpf_fd<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: the caller's contract.
    let fd = i32::try_from(unsafe { bpf(cmd, attr) }?).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches the `cgroup/setsockopt` program `program` to `cgroup` and pins the link at
/// `path` (the link stays while pinned).
pub fn attach_setsockopt_pinned(
    program: impl AsFd,
    cgroup: impl AsFd,
    path: &Path,
) -> io::Result<()> {
    let mut attr = LinkCreateAttr {
        prog_fd: u32::try_from(program.as_fd().as_raw_fd()).map_err(io::Error::other)?,
        target_fd: u32::try_from(cgroup.as_fd().as_raw_fd()).map_err(io::Error::other)?,
        attach_type: BPF_CGROUP_SETSOCKOPT,
        flags: 0,
        iter_info: 0,
        iter_info_len: 0,
        pad: 0,
    };
    // SAFETY: a `link_create` member without pointers.
    let link = unsafe { bpf_fd(BPF_LINK_CREATE, &mut attr) }?;
    let path = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut attr = ObjPinAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: u32::try_from(link.as_raw_fd()).map_err(io::Error::other)?,
        file_flags: 0,
    };
    // SAFETY: an `obj_pin` member whose path is a live NUL-terminated string.
    unsafe { bpf(BPF_OBJ_PIN, &mut attr) }.map(drop)
}

/// Runs the iterator program `program` over the map `map` and returns what it wrote.
pub fn read_all(program: impl AsFd, map: impl AsFd) -> io::Result<Vec<u8>> {
    let map_fd = u32::try_from(map.as_fd().as_raw_fd()).map_err(io::Error::other)?;
    let mut attr = LinkCreateAttr {
        prog_fd: u32::try_from(program.as_fd().as_raw_fd()).map_err(io::Error::other)?,
        target_fd: 0,
        attach_type: BPF_TRACE_ITER,
        flags: 0,
        iter_info: (&raw const map_fd) as u64,
        iter_info_len: 4,
        pad: 0,
    };
    // SAFETY: a `link_create` member whose `iter_info` points at the live 4-byte map fd.
    let link = unsafe { bpf_fd(BPF_LINK_CREATE, &mut attr) }?;
    let mut attr = IterCreateAttr {
        link_fd: u32::try_from(link.as_raw_fd()).map_err(io::Error::other)?,
        flags: 0,
    };
    // SAFETY: an `iter_create` member without pointers.
    let iter = unsafe { bpf_fd(BPF_ITER_CREATE, &mut attr) }?;
    let mut out = Vec::new();
    File::from(iter).read_to_end(&mut out)?;
    Ok(out)
}
