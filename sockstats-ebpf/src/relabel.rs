//! Operations on a socket's state, and relabeling that moves a live socket's bytes exactly.
//!
//! Every operation that adds bytes (a send, a receive, a packet) runs between [`begin`] and
//! [`end`]: it holds the state's `busy` count and adds under the generation it read at
//! [`begin`], to that generation's accounts and to the slot's `moved[parity]` record of them.
//!
//! A relabel ([`try_switch`]) runs only when its caller is alone on the socket (`busy` is 1,
//! the caller itself): it writes the new label into the other parity, then publishes it by
//! bumping the generation (an atomic add: a full barrier). Operations that read the old
//! generation may still be running; once `busy` is seen at 1 again after the switch, none can
//! be ([`try_finish`]): every one of them raised `busy` before reading the generation. Then the
//! old parity's `moved` bytes are final and move to the new label's accounts. Whoever finds
//! itself alone finishes: the relabel itself, the next operation on the socket, or the daemon
//! retrying. Nothing is lost if none does (the bytes stay counted, under the old label).
//!
//! The handshake needs the locked adds to be full barriers, as they are on x86-64 (`lock
//! xadd`); on weaker architectures the fetching atomics of Linux 5.12 would be needed.
use core::ptr::{read_volatile, write_volatile};

use sockstats_common::{
    Counter, IfaceCounters, SocketSlot, SocketState, DESTINATION_UNKNOWN, FLAG_HELD, OTHER_IFINDEX,
    OTHER_SLOT, SLOTS, UNKNOWN_IFINDEX, UNKNOWN_SLOT,
};

use crate::{
    accounts::{self, Field},
    counters::{self, atomic_add32},
};

/// What a slot's `account` holds once its account could not be made (the bytes go to the
/// overflow counters): tried once, not on every operation.
const NO_ACCOUNT: u32 = u32::MAX;

/// `slot` as an index the verifier can see is inside the slots (out of range: unknown).
#[inline(always)]
pub fn bounded(slot: u32) -> usize {
    let slot = slot as usize;
    if slot < SLOTS {
        slot
    } else {
        UNKNOWN_SLOT as usize
    }
}

/// Starts an operation on `state`: returns the generation parity it works under.
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
pub unsafe fn begin(state: *mut SocketState) -> u32 {
    // SAFETY: the caller's pointer; the add is atomic and a full barrier before the read.
    unsafe {
        atomic_add32(&raw mut (*state).busy, 1);
        read_volatile(&raw const (*state).generation) & 1
    }
}

/// Ends an operation on `state`, finishing a pending relabel if it is alone.
///
/// # Safety
/// `state` must point at a socket's state, and [`begin`] must have been called on it.
#[inline(always)]
pub unsafe fn end(state: *mut SocketState) {
    // SAFETY: the caller's pointer.
    unsafe {
        if read_volatile(&raw const (*state).pending) != 0 {
            let _ = try_finish(state);
        }
        atomic_add32(&raw mut (*state).busy, u32::MAX);
    }
}

/// Is the caller, which holds `busy` once, the only operation on `state`?
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
pub unsafe fn alone(state: *mut SocketState) -> bool {
    // SAFETY: the caller's pointer.
    unsafe { read_volatile(&raw const (*state).busy) == 1 }
}

/// The account of `slot` under generation parity `parity`, looked up (and remembered) the
/// first time; 0 for the overflow bucket.
///
/// # Safety
/// `state` must point at a socket's state; `slot < SLOTS` and `parity < 2`.
#[inline(always)]
pub unsafe fn slot_account(state: *mut SocketState, slot: u32, parity: u32) -> u32 {
    let slot = bounded(slot);
    let parity = parity as usize & 1;
    // SAFETY: indices bounded above; field projections of the caller's pointer.
    unsafe {
        let slot_ptr = (&raw mut (*state).slots).cast::<SocketSlot>().add(slot);
        let cached = read_volatile((&raw const (*slot_ptr).account).cast::<u32>().add(parity));
        if cached == NO_ACCOUNT {
            return 0;
        }
        if cached != 0 {
            return cached;
        }
        let label = read_volatile((&raw const (*state).label).cast::<u32>().add(parity));
        let (netns_cookie, ifindex, destination) = match slot {
            s if s == UNKNOWN_SLOT as usize => (0, UNKNOWN_IFINDEX, DESTINATION_UNKNOWN),
            s if s == OTHER_SLOT as usize => (0, OTHER_IFINDEX, DESTINATION_UNKNOWN),
            _ => (
                read_volatile(&raw const (*slot_ptr).netns_cookie),
                read_volatile(&raw const (*slot_ptr).ifindex),
                read_volatile(&raw const (*slot_ptr).destination),
            ),
        };
        let account = accounts::account_of(label, netns_cookie, ifindex, destination);
        let remembered = if account == 0 { NO_ACCOUNT } else { account };
        write_volatile(
            (&raw mut (*slot_ptr).account).cast::<u32>().add(parity),
            remembered,
        );
        account
    }
}

/// The destination of `slot`'s traffic ([`DESTINATION_UNKNOWN`] for the unknown and other
/// slots).
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
pub unsafe fn slot_destination(state: *mut SocketState, slot: u32) -> u32 {
    if slot == UNKNOWN_SLOT || slot == OTHER_SLOT {
        return DESTINATION_UNKNOWN;
    }
    // SAFETY: the index is bounded; a field projection of the caller's pointer.
    unsafe {
        let slot_ptr = (&raw mut (*state).slots)
            .cast::<SocketSlot>()
            .add(bounded(slot));
        read_volatile(&raw const (*slot_ptr).destination)
    }
}

/// The owner account of the socket's owner and `slot`'s destination, looked up (and
/// remembered) the first time; 0 for the owner overflow counters. Only for an owned socket
/// (the owner never changes once set).
///
/// # Safety
/// `state` must point at a socket's state whose owner is set.
#[inline(always)]
pub unsafe fn slot_owner_account(state: *mut SocketState, slot: u32) -> u32 {
    // SAFETY: the index is bounded; field projections of the caller's pointer.
    unsafe {
        let slot_ptr = (&raw mut (*state).slots)
            .cast::<SocketSlot>()
            .add(bounded(slot));
        let cached = read_volatile(&raw const (*slot_ptr).owner_account);
        if cached == NO_ACCOUNT {
            return 0;
        }
        if cached != 0 {
            return cached;
        }
        let owner = accounts::owner_account_of(
            (*state).uid,
            (*state).cgroup_id,
            slot_destination(state, slot),
        );
        let remembered = if owner == 0 { NO_ACCOUNT } else { owner };
        write_volatile(&raw mut (*slot_ptr).owner_account, remembered);
        owner
    }
}

/// `slot` (bounded: out of range is [`UNKNOWN_SLOT`]), or [`UNKNOWN_SLOT`] while another CPU
/// has claimed it without storing its ifindex yet: that one operation is charged to the
/// unknown interface (and recorded there, so a relabel moves it right). Bounded here, once, so
/// that no later use of the slot sees a value the verifier thinks may be out of range (6.1's
/// verifier cannot tell a register-to-register bounds check is always taken).
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
pub unsafe fn ready_slot(state: *mut SocketState, slot: u32) -> u32 {
    let index = bounded(slot);
    #[expect(clippy::cast_possible_truncation, reason = "index < SLOTS")]
    let slot = index as u32;
    if slot == UNKNOWN_SLOT || slot == OTHER_SLOT {
        return slot;
    }
    // SAFETY: the index is bounded; a field projection of the caller's pointer.
    let ifindex = unsafe {
        read_volatile(
            &raw const (*(&raw mut (*state).slots).cast::<SocketSlot>().add(index)).ifindex,
        )
    };
    if ifindex == UNKNOWN_IFINDEX {
        UNKNOWN_SLOT
    } else {
        slot
    }
}

/// The `moved` record of `slot` under `parity`.
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
pub unsafe fn moved_of(state: *mut SocketState, slot: u32, parity: u32) -> *mut IfaceCounters {
    let slot = bounded(slot);
    let parity = parity as usize & 1;
    // SAFETY: indices bounded above.
    unsafe {
        let slot_ptr = (&raw mut (*state).slots).cast::<SocketSlot>().add(slot);
        (&raw mut (*slot_ptr).moved)
            .cast::<IfaceCounters>()
            .add(parity)
    }
}

/// Adds what an operation moved on `slot` under `parity`: to the account and to the record.
/// Returns whether an account took it (else it went to the overflow counters).
///
/// # Safety
/// `state` must point at a socket's state, inside [`begin`]/[`end`].
#[inline(always)]
pub unsafe fn count(
    state: *mut SocketState,
    slot: u32,
    parity: u32,
    field: Field,
    bytes: u64,
    packets: u64,
) -> bool {
    // SAFETY: the caller's pointer.
    unsafe {
        let slot = ready_slot(state, slot);
        let account = slot_account(state, slot, parity);
        accounts::add(account, field, bytes, packets);
        accounts::add_to(moved_of(state, slot, parity), field, bytes, packets);
        account != 0
    }
}

/// Puts the socket under `label`. Only when the caller (holding `busy` once) is alone; returns
/// whether the socket is under `label` with all its bytes moved.
///
/// # Safety
/// `state` must point at a socket's state, inside [`begin`]/[`end`].
#[inline(always)]
pub unsafe fn try_switch(state: *mut SocketState, label: u32) -> bool {
    // SAFETY: the caller's pointer.
    unsafe {
        if !try_finish(state) || !alone(state) {
            counters::bump(Counter::RelabelsBusy);
            return false;
        }
        let generation = read_volatile(&raw const (*state).generation);
        let old = (generation & 1) as usize;
        let new = old ^ 1;
        let old_label = read_volatile((&raw const (*state).label).cast::<u32>().add(old));
        if old_label == label {
            return true;
        }
        write_volatile((&raw mut (*state).label).cast::<u32>().add(new), label);
        for slot in 0..SLOTS {
            let slot_ptr = (&raw mut (*state).slots).cast::<SocketSlot>().add(slot);
            write_volatile((&raw mut (*slot_ptr).account).cast::<u32>().add(new), 0);
        }
        write_volatile(&raw mut (*state).pending, 1);
        // Publish: from here on new operations work under the new label.
        atomic_add32(&raw mut (*state).generation, 1);
        if read_volatile((&raw const (*state).flags).cast::<u8>().add(FLAG_HELD)) != 0 {
            accounts::move_live(old_label, u64::MAX);
            accounts::move_live(label, 1);
        }
        counters::bump(Counter::Relabels);
        try_finish(state)
    }
}

/// Moves the bytes of the previous generation to the current one's accounts, if a relabel is
/// pending and the caller (holding `busy` once) is alone. Returns whether none is pending now.
///
/// # Safety
/// `state` must point at a socket's state, inside [`begin`]/[`end`].
#[inline(always)]
pub unsafe fn try_finish(state: *mut SocketState) -> bool {
    // SAFETY: the caller's pointer.
    unsafe {
        if read_volatile(&raw const (*state).pending) == 0 {
            return true;
        }
        if !alone(state) {
            return false;
        }
        counters::bump(Counter::MovesStarted);
        let current = read_volatile(&raw const (*state).generation) & 1;
        let previous = current ^ 1;
        for slot in 0..=OTHER_SLOT {
            let from = moved_of(state, slot, previous);
            let moved = read_volatile(from);
            if moved.is_zero() {
                continue;
            }
            let old_account = slot_account(state, slot, previous);
            let new_account = slot_account(state, slot, current);
            accounts::transfer(old_account, new_account, &moved);
            accounts::add_all_to(moved_of(state, slot, current), &moved);
            // No operation of the previous generation is left to add to it.
            write_volatile(from, IfaceCounters::default());
        }
        write_volatile(&raw mut (*state).pending, 0);
        counters::bump(Counter::MovesFinished);
        true
    }
}
