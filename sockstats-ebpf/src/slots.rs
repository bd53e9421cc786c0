//! Slots of a socket's state: which slot a packet's (interface, destination) uses, claimed
//! lock-free.
use sockstats_common::{Counter, SocketSlot, SocketState, INTERFACE_SLOTS, OTHER_SLOT};

use crate::counters;

/// The slot of interface (`netns_cookie`, `ifindex`) and `destination` in `state`, claiming a
/// free one if the socket has not used the pair before; [`OTHER_SLOT`] once all slots belong
/// to other pairs.
///
/// A slot is free while its namespace cookie is 0 (no namespace has cookie 0). Two CPUs claiming
/// at once cannot take the same slot (`cmpxchg` on the cookie). The claimer stores the
/// destination, then the ifindex: a slot whose ifindex is set has its destination. A CPU that
/// sees a slot claimed for its pair before the claimer stored the ifindex takes another slot
/// for it: both slots then use the same account, so nothing is split.
///
/// Without `CAS` (kernels before 5.12, whose verifier refuses `cmpxchg` anywhere in a
/// program) the claim is a plain store: two CPUs claiming the same free slot for two new
/// interfaces at the same instant both take it, and the payload of the loser's interface is
/// charged to the winner's. No byte is lost; only the split between those pairs errs.
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
pub unsafe fn slot_for<const CAS: bool>(
    state: *mut SocketState,
    netns_cookie: u64,
    ifindex: u32,
    destination: u32,
) -> u32 {
    for index in 1..=INTERFACE_SLOTS {
        // SAFETY: 1 <= index <= INTERFACE_SLOTS < SLOTS, inside the state.
        let slot = unsafe {
            (&raw mut (*state).slots)
                .cast::<SocketSlot>()
                .add(index as usize)
        };
        // SAFETY: `slot` is inside the map value.
        let (slot_ifindex, slot_netns, slot_destination) = unsafe {
            (
                core::ptr::read_volatile(&raw const (*slot).ifindex),
                core::ptr::read_volatile(&raw const (*slot).netns_cookie),
                core::ptr::read_volatile(&raw const (*slot).destination),
            )
        };
        if slot_ifindex == ifindex && slot_netns == netns_cookie && slot_destination == destination
        {
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
            // SAFETY: as above; only the claimer writes the destination and the ifindex.
            unsafe {
                core::ptr::write_volatile(&raw mut (*slot).destination, destination);
                core::ptr::write_volatile(&raw mut (*slot).ifindex, ifindex);
            }
            return index;
        }
    }
    counters::bump(Counter::InterfaceSlotsFull);
    OTHER_SLOT
}
