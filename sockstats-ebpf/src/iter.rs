//! The socket-state iterator (`iter/bpf_sk_storage_map`, Linux 5.9+): one
//! [`SocketRecord`] per live socket, read by the daemon for the views of live sockets.
use core::ffi::c_void;

use aya_ebpf::{bindings::seq_file, helpers::bpf_seq_write};
use sockstats_common::{SocketRecord, SocketState, FLAG_HELD};

use crate::sock;

/// `struct bpf_iter_meta`.
#[repr(C)]
struct IterMeta {
    seq: *mut seq_file,
    session_id: u64,
    seq_num: u64,
}

/// `struct bpf_iter__bpf_sk_storage_map`.
#[repr(C)]
struct SkStorageIterContext {
    meta: *mut IterMeta,
    map: *mut c_void,
    sk: *mut u8,
    value: *mut SocketState,
}

/// What one record takes (asserted to be 40 bytes in sockstats-common).
#[expect(clippy::cast_possible_truncation, reason = "a 40-byte record")]
const RECORD_SIZE: u32 = size_of::<SocketRecord>() as u32;

#[inline(always)]
pub fn on_socket_state(ctx: *mut c_void) {
    let ctx = ctx.cast::<SkStorageIterContext>();
    // SAFETY: the iterator's context, with BTF-checked fields; `sk` and `value` are NULL once
    // the walk is done.
    unsafe {
        let (sk, value) = ((*ctx).sk, (*ctx).value);
        if sk.is_null() || value.is_null() {
            return;
        }
        // Fixed offsets only: the verifier refuses variable ones into an iterator's buffer.
        let labels = (
            core::ptr::read_volatile(&raw const (*value).label[0]),
            core::ptr::read_volatile(&raw const (*value).label[1]),
        );
        let label = if core::ptr::read_volatile(&raw const (*value).generation) & 1 == 0 {
            labels.0
        } else {
            labels.1
        };
        let record = SocketRecord {
            cookie: sock::socket_cookie(sk),
            tgid: (*value).tgid,
            label,
            payload: (*value).payload(),
            held: u32::from((*value).flags[FLAG_HELD]),
            pad: 0,
        };
        let seq = (*(*ctx).meta).seq;
        let _ = bpf_seq_write(seq, (&raw const record).cast(), RECORD_SIZE);
    }
}
