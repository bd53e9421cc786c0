//! Where each socket's [`SocketState`] lives: in socket-local storage (found through
//! `sk->sk_bpf_storage`, no hash, freed with the socket), or, on kernels whose tracing programs
//! cannot use socket storage (before 5.11), in a hash keyed by the socket cookie.
use core::{ffi::c_void, ptr};

use aya_ebpf::{
    bindings::{
        bpf_map_type::BPF_MAP_TYPE_SK_STORAGE, BPF_F_NO_PREALLOC, BPF_NOEXIST,
        BPF_SK_STORAGE_GET_F_CREATE,
    },
    helpers::bpf_sk_storage_get,
};
use sockstats_common::SocketState;

use crate::{
    globals::STATE_BY_COOKIE,
    maps::{EMPTY_STATE, SOCKET_STATE, SOCKET_STATE_BY_COOKIE},
};

/// `LIBBPF_PIN_BY_NAME`: aya pins the map under the loader's map pin path.
const PIN_BY_NAME: usize = 1;

/// A BTF-defined map (libbpf's `.maps` convention: each field's pointee array length is the
/// value). Socket storage must be defined this way: the kernel refuses to make one without the
/// BTF of its key and value.
#[repr(C)]
pub struct SkStorageDef {
    r#type: *const [i32; BPF_MAP_TYPE_SK_STORAGE as usize],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
    key: *const i32,
    value: *const SocketState,
    pinning: *const [i32; PIN_BY_NAME],
}

impl SkStorageDef {
    /// The definition: all its content is in its type.
    pub const fn new() -> Self {
        Self {
            r#type: ptr::null(),
            map_flags: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            pinning: ptr::null(),
        }
    }
}

// SAFETY: the definition is never read or written by the program; only its address is used,
// which the loader relocates to the map.
unsafe impl Sync for SkStorageDef {}

// `STATE_BY_COOKIE` (a global): 1 when states live in `SOCKET_STATE_BY_COOKIE`. Read-only: the
// verifier never sees the socket-storage calls where they are not allowed.

/// Do states live in the cookie-keyed hash?
#[inline(always)]
pub fn by_cookie() -> bool {
    STATE_BY_COOKIE.load() == 1
}

/// How a socket is named to [`find`]: its kernel socket pointer (`struct sock *` for tracing
/// programs, a full `struct bpf_sock *` for cgroup programs) and its cookie.
#[derive(Clone, Copy)]
pub struct SocketRef {
    pub sk: *mut c_void,
    pub cookie: u64,
}

/// What [`find`] should do when the socket has no state.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Skip,
    Create,
}

/// The socket's state, made zeroed if `missing` says so. `created` tells whether this call
/// made it. `None`: no state (and none could be made: storage refused, or the hash is full).
#[inline(always)]
pub fn find(socket: SocketRef, missing: Missing, created: &mut bool) -> Option<*mut SocketState> {
    *created = false;
    if by_cookie() {
        if let Some(state) = SOCKET_STATE_BY_COOKIE.get_ptr_mut(socket.cookie) {
            return Some(state);
        }
        if missing == Missing::Skip {
            return None;
        }
        let empty = EMPTY_STATE.get_ptr(0)?;
        // SAFETY: `empty` points at a value of EMPTY_STATE, which nothing writes.
        #[expect(
            clippy::needless_borrows_for_generic_args,
            reason = "a copy of the state would not fit the BPF stack: the map value is passed"
        )]
        let inserted = SOCKET_STATE_BY_COOKIE.insert(
            socket.cookie,
            unsafe { &*empty },
            u64::from(BPF_NOEXIST),
        );
        *created = inserted.is_ok();
        // Fails if another CPU inserted first (then the lookup finds its state) or if full.
        return SOCKET_STATE_BY_COOKIE.get_ptr_mut(socket.cookie);
    }
    let map = (&raw const SOCKET_STATE).cast_mut().cast::<c_void>();
    // SAFETY: `map` is the socket-storage map (relocated by the loader) and `sk` a socket
    // pointer the program's type may hand to the helper.
    let state = unsafe { bpf_sk_storage_get(map, socket.sk, ptr::null_mut(), 0) };
    if !state.is_null() {
        return Some(state.cast());
    }
    if missing == Missing::Skip {
        return None;
    }
    // SAFETY: as above; with F_CREATE and no value the kernel makes a zeroed state (or returns
    // the one another CPU made meanwhile).
    let state = unsafe {
        bpf_sk_storage_get(
            map,
            socket.sk,
            ptr::null_mut(),
            u64::from(BPF_SK_STORAGE_GET_F_CREATE),
        )
    };
    *created = !state.is_null();
    (!state.is_null()).then_some(state.cast())
}

/// Forgets the cookie-keyed state of `cookie` (socket storage is freed by the kernel itself).
#[inline(always)]
pub fn forget(cookie: u64) {
    if by_cookie() {
        let _ = SOCKET_STATE_BY_COOKIE.remove(cookie);
    }
}
