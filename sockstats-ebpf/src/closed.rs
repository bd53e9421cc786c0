//! What a closing socket leaves for `get --peers`: its label, its peer and all its payload,
//! one [`ClosedSocket`] record in the ring buffer the daemon reads (written without waking it:
//! it reads several times a second). A full ring is counted; the bytes stay in the totals.
use aya_ebpf::bindings::BPF_RB_NO_WAKEUP;
use sockstats_common::{peers_of, ClosedSocket, Counter, SocketState, Totals, OTHER_SLOT};

use crate::{counters, maps::CLOSED_SOCKETS, relabel::moved_of};

/// All the payload `state` moved, over every slot and both generations.
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
unsafe fn payload_of(state: *mut SocketState) -> Totals {
    let mut total = Totals::default();
    for slot in 0..=OTHER_SLOT {
        for parity in 0..2 {
            // SAFETY: the caller's pointer; `moved_of` bounds the indices.
            let moved = unsafe {
                core::ptr::read_volatile(&raw const (*moved_of(state, slot, parity)).payload)
            };
            total.tx_bytes = total.tx_bytes.wrapping_add(moved.tx_bytes);
            total.rx_bytes = total.rx_bytes.wrapping_add(moved.rx_bytes);
        }
    }
    total
}

/// Writes the record of the closing socket `state`, if it moved payload, and marks the state
/// released (the iterator still lists it until the kernel frees it).
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
pub unsafe fn report(state: *mut SocketState) {
    // SAFETY: the caller's pointer.
    unsafe {
        core::ptr::write_volatile(&raw mut (*state).released, 1);
        let payload = payload_of(state);
        if payload == Totals::default() {
            return;
        }
        let Some(mut entry) = CLOSED_SOCKETS.reserve::<ClosedSocket>(0) else {
            counters::bump(Counter::ClosedSocketsLost);
            return;
        };
        let sequence = core::ptr::read_volatile(&raw const (*state).remote_sequence);
        entry.write(ClosedSocket {
            label: (*state).current_label(),
            remote_port: core::ptr::read_volatile(&raw const (*state).remote_port),
            peers: peers_of(sequence),
            remote: core::mem::transmute::<[u64; 2], [u8; 16]>(core::ptr::read_volatile(
                &raw const (*state).remote,
            )),
            payload,
        });
        entry.submit(u64::from(BPF_RB_NO_WAKEUP));
    }
}
