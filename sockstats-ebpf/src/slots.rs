//! Interface slots of a socket entry: which slot a packet's interface uses, claimed lock-free.
use sockstats_common::{
    Counter, IfaceCounters, SocketEntry, INTERFACE_SLOTS, OTHER_SLOT, SLOTS, UNKNOWN_SLOT,
};

use crate::counters;

/// The slot of interface (`netns_cookie`, `ifindex`) in `entry`, claiming a free one if the
/// socket has not used it before; [`OTHER_SLOT`] once all slots belong to other interfaces.
///
/// A slot is free while its namespace cookie is 0 (no namespace has cookie 0). Two CPUs claiming
/// at once cannot take the same slot (`cmpxchg` on the cookie). A CPU that sees a slot claimed
/// for its interface before the claimer stored the ifindex takes another slot for it: the
/// daemon merges slots of the same interface.
///
/// Without `CAS` (kernels before 5.12, whose verifier refuses `cmpxchg` anywhere in a
/// program) the claim is a plain store: two CPUs claiming the same free slot for two new
/// interfaces at the same instant both take it, and the payload of the loser's interface is
/// charged to the winner's. No byte is lost; only the split between those interfaces errs.
///
/// # Safety
/// `entry` must point at a value of the SOCKETS map.
#[inline(always)]
pub unsafe fn slot_for<const CAS: bool>(
    entry: *mut SocketEntry,
    netns_cookie: u64,
    ifindex: u32,
) -> u32 {
    for index in 0..INTERFACE_SLOTS {
        // SAFETY: index < INTERFACE_SLOTS < SLOTS, inside the entry.
        let slot = unsafe {
            (&raw mut (*entry).slots)
                .cast::<sockstats_common::IfaceSlot>()
                .add(index as usize)
        };
        // SAFETY: `slot` is inside the map value.
        let (slot_ifindex, slot_netns) = unsafe {
            (
                core::ptr::read_volatile(&raw const (*slot).ifindex),
                core::ptr::read_volatile(&raw const (*slot).netns_cookie),
            )
        };
        if slot_ifindex == ifindex && slot_netns == netns_cookie {
            return index;
        }
        if slot_netns != 0 {
            continue;
        }
        let claimed = if CAS {
            // SAFETY: as above; `claim` is an atomic compare-and-swap.
            unsafe { counters::claim(&raw mut (*slot).netns_cookie, netns_cookie) }
        } else {
            // SAFETY: as above.
            unsafe { core::ptr::write_volatile(&raw mut (*slot).netns_cookie, netns_cookie) };
            true
        };
        if claimed {
            // SAFETY: as above; only the claimer writes the ifindex.
            unsafe { core::ptr::write_volatile(&raw mut (*slot).ifindex, ifindex) };
            return index;
        }
    }
    counters::bump(Counter::InterfaceSlotsFull);
    OTHER_SLOT
}

/// The counters of slot `index` of `entry` (an out-of-range index means [`UNKNOWN_SLOT`]).
///
/// # Safety
/// `entry` must point at a value of the SOCKETS map.
#[inline(always)]
pub unsafe fn counters_of(entry: *mut SocketEntry, index: u32) -> *mut IfaceCounters {
    let index = if (index as usize) < SLOTS {
        index
    } else {
        UNKNOWN_SLOT
    };
    // SAFETY: index < SLOTS, inside the entry.
    unsafe {
        let slot = (&raw mut (*entry).slots)
            .cast::<sockstats_common::IfaceSlot>()
            .add(index as usize);
        &raw mut (*slot).counters
    }
}
