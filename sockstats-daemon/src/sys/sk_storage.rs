//! Reading one socket's entry of a socket-storage map by the socket's fd
//! (`BPF_MAP_LOOKUP_ELEM`, which aya 0.14 has no typed map for).
use std::{
    io,
    mem::MaybeUninit,
    os::fd::{AsFd, AsRawFd as _, BorrowedFd},
};

use super::bpf_syscall::bpf;

/// `BPF_MAP_LOOKUP_ELEM` from `enum bpf_cmd`.
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;

/// The element member of `union bpf_attr`.
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// The value of the socket `socket` in the socket-storage map `map`; `None` if it has none.
/// `V` must be the map's exact value type (plain old data).
pub fn lookup<V: aya::Pod>(map: impl AsFd, socket: BorrowedFd<'_>) -> io::Result<Option<V>> {
    let key: i32 = socket.as_raw_fd();
    let mut value = MaybeUninit::<V>::uninit();
    let mut attr = ElemAttr {
        map_fd: u32::try_from(map.as_fd().as_raw_fd()).map_err(io::Error::other)?,
        pad: 0,
        key: (&raw const key) as u64,
        value: value.as_mut_ptr() as u64,
        flags: 0,
    };
    // SAFETY: an element member whose key and value buffers have the map's sizes.
    match unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) } {
        // SAFETY: the kernel filled the value; every bit pattern is a valid `V` (Pod).
        Ok(_) => Ok(Some(unsafe { value.assume_init() })),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(error) => Err(error),
    }
}
