//! The socket-state iterator (`iter/bpf_sk_storage_map`, Linux 5.9+): a [`SocketRecord`] per
//! live socket and destination it moved payload to (one, of no destination, if it moved
//! none), read by the daemon for the views of live sockets.
use core::ffi::c_void;

use aya_ebpf::{bindings::seq_file, helpers::bpf_seq_write};
use sockstats_common::{
    peers_of, SocketRecord, SocketState, Totals, DESTINATION_UNKNOWN, FLAG_HELD, INTERFACE_SLOTS,
    OTHER_SLOT, UNKNOWN_SLOT,
};

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

// The slots written by name below.
const _: () = assert!(INTERFACE_SLOTS == 4);

/// What one record takes (asserted to be 64 bytes in sockstats-common).
#[expect(clippy::cast_possible_truncation, reason = "a 64-byte record")]
const RECORD_SIZE: u32 = size_of::<SocketRecord>() as u32;

/// Writes the record of slot `SLOT` of `value` if it moved payload, or if `always` (the last
/// chance of a socket that wrote none). Returns whether it wrote one. A const slot: fixed
/// offsets only, the verifier refuses variable ones into an iterator's value.
///
/// # Safety
/// `seq` and `value` come from the iterator's context; `value` is not NULL.
#[inline(always)]
unsafe fn write_slot<const SLOT: usize>(
    seq: *mut seq_file,
    value: *mut SocketState,
    first: SocketRecord,
    written: bool,
    always: bool,
) -> bool {
    // SAFETY: the caller's pointers; SLOT < SLOTS (checked by the array index at compile time).
    unsafe {
        let slot = &raw const (*value).slots[SLOT];
        let moved = (
            core::ptr::read_volatile(&raw const (*slot).moved[0].payload),
            core::ptr::read_volatile(&raw const (*slot).moved[1].payload),
        );
        let mut payload = moved.0;
        payload.add(moved.1);
        if payload == Totals::default() && !always {
            return false;
        }
        let destination = if SLOT == UNKNOWN_SLOT as usize || SLOT == OTHER_SLOT as usize {
            DESTINATION_UNKNOWN
        } else {
            core::ptr::read_volatile(&raw const (*slot).destination)
        };
        let record = SocketRecord {
            payload,
            destination,
            // The socket is counted once, in its first record.
            held: if written { 0 } else { first.held },
            ..first
        };
        let _ = bpf_seq_write(seq, (&raw const record).cast(), RECORD_SIZE);
        true
    }
}

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
        let sequence = core::ptr::read_volatile(&raw const (*value).remote_sequence);
        let first = SocketRecord {
            cookie: sock::socket_cookie(sk),
            tgid: (*value).tgid,
            label,
            payload: Totals::default(),
            held: u32::from((*value).flags[FLAG_HELD]),
            destination: DESTINATION_UNKNOWN,
            remote: core::mem::transmute::<[u64; 2], [u8; 16]>(core::ptr::read_volatile(
                &raw const (*value).remote,
            )),
            remote_port: core::ptr::read_volatile(&raw const (*value).remote_port),
            peers: peers_of(sequence),
            released: u32::from(core::ptr::read_volatile(&raw const (*value).released)),
        };
        let seq = (*(*ctx).meta).seq;
        let mut written = write_slot::<1>(seq, value, first, false, false);
        written |= write_slot::<2>(seq, value, first, written, false);
        written |= write_slot::<3>(seq, value, first, written, false);
        written |= write_slot::<4>(seq, value, first, written, false);
        written |= write_slot::<{ OTHER_SLOT as usize }>(seq, value, first, written, false);
        let _ = write_slot::<{ UNKNOWN_SLOT as usize }>(seq, value, first, written, !written);
    }
}
