//! `BPF_MAP_LOOKUP_BATCH` (Linux 5.6+): read a hash map a few hundred entries per syscall
//! instead of two syscalls per entry (aya 0.14 walks maps with `get_next_key` + lookup).
//!
//! For hash maps the kernel walks whole buckets and its cursor is a bucket index, so an entry
//! is returned at most once per walk even while others are inserted or deleted.
//! <https://elixir.bootlin.com/linux/v6.18/source/kernel/bpf/hashtab.c> (`__htab_map_lookup_and_delete_batch`)
use std::{
    io,
    mem::MaybeUninit,
    os::fd::{AsFd, AsRawFd as _},
};

use super::bpf_syscall::bpf;

/// `BPF_MAP_LOOKUP_BATCH` from `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries asked for per syscall; a bucket holding more makes the kernel ask for more (ENOSPC).
const CHUNK: usize = 512;
/// The kernel's internal `ENOTSUPP`: the map type has no batch operations.
const ENOTSUPP: i32 = 524;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Calls `visit` with every key and value of the hash map `map`. `Unsupported` when the
/// kernel has no batch operations (the caller then walks the map key by key).
///
/// `K` and `V` must be the map's exact key and value types (plain old data).
pub fn for_each<K: aya::Pod, V: aya::Pod>(
    map: impl AsFd,
    mut visit: impl FnMut(K, V),
) -> io::Result<()> {
    let map_fd = u32::try_from(map.as_fd().as_raw_fd()).map_err(io::Error::other)?;
    let mut capacity = CHUNK;
    let mut keys: Vec<MaybeUninit<K>> = Vec::new();
    let mut values: Vec<MaybeUninit<V>> = Vec::new();
    // The cursor: a bucket index for hash maps; 8 bytes is room enough for any map's.
    let mut cursor = [0u64; 1];
    let mut next = [0u64; 1];
    let mut first = true;
    loop {
        keys.resize_with(capacity, MaybeUninit::uninit);
        values.resize_with(capacity, MaybeUninit::uninit);
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { cursor.as_ptr() as u64 },
            out_batch: next.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: u32::try_from(capacity).map_err(io::Error::other)?,
            map_fd,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: `attr` is a valid batch attribute of the size passed; `keys` and `values`
        // have room for `count` elements of the map's key and value sizes (the caller's types),
        // and `cursor`/`next` for the cursor.
        let error = unsafe { bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) }.err();
        let errno = error.as_ref().and_then(io::Error::raw_os_error);
        if errno == Some(libc::ENOSPC) {
            // One bucket holds more than `capacity` entries: ask for room for it.
            capacity *= 2;
            continue;
        }
        let last = errno == Some(libc::ENOENT);
        if let Some(error) = error.filter(|_| !last) {
            return Err(match error.raw_os_error() {
                Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP) if first => {
                    io::Error::new(io::ErrorKind::Unsupported, error)
                }
                _ => error,
            });
        }
        let filled = usize::try_from(attr.count)
            .map_err(io::Error::other)?
            .min(capacity);
        for (key, value) in keys.iter().zip(&values).take(filled) {
            // SAFETY: the kernel wrote `filled` keys and values, and both types are Pod.
            unsafe { visit(key.assume_init(), value.assume_init()) };
        }
        if last {
            return Ok(());
        }
        cursor = next;
        first = false;
    }
}
