//! Running totals per account, so `get` reads accounts, not sockets.
//!
//! An account is a small id for one (label, network namespace, interface, destination); an
//! owner account one for a (uid, cgroup, destination). Ids are handed out here, the first time a socket needs one: the
//! insert into the id → key map (`BPF_NOEXIST`) decides which CPU gets a candidate id, so ids
//! are unique without any atomic beyond the hash map's own. The totals are per-CPU arrays
//! indexed by id, added to atomically (softirq can interrupt a program of the same CPU).
use aya_ebpf::{bindings::BPF_NOEXIST, maps::HashMap};
use sockstats_common::{
    AccountKey, Counter, IfaceCounters, OwnerAccountKey, ALLOC_NEXT_ACCOUNT, ALLOC_NEXT_OWNER,
    MAX_OWNERS,
};

use crate::counters::{self, atomic_add};
use crate::{
    globals::MAX_ACCOUNTS,
    maps::{
        ACCOUNTS, ACCOUNT_IDS, ACCOUNT_KEYS, ALLOCATOR, LABEL_SOCKETS, OWNER_ACCOUNTS, OWNER_IDS,
        OWNER_KEYS,
    },
};

/// Candidate ids tried before giving up (another CPU taking the same candidate costs one).
const ATTEMPTS: u32 = 8;

/// An id for `key` of the id maps `ids`/`keys` (capacity `capacity`), made if it has none;
/// 0 when they are full.
#[inline(always)]
fn id_for<K: Copy>(
    key: &K,
    ids: &HashMap<K, u32>,
    keys: &HashMap<u32, K>,
    next: u32,
    capacity: u32,
) -> u32 {
    // SAFETY: the value is copied out at once.
    if let Some(id) = unsafe { ids.get(key) } {
        return *id;
    }
    let Some(next) = ALLOCATOR.get_ptr_mut(next) else {
        return 0;
    };
    // SAFETY: `next` points into ALLOCATOR; a racy read only costs an attempt.
    let first = unsafe { core::ptr::read_volatile(next) }.max(1);
    for candidate in (first..first + ATTEMPTS).take(ATTEMPTS as usize) {
        if candidate >= capacity {
            return 0;
        }
        if keys.insert(candidate, key, u64::from(BPF_NOEXIST)).is_ok() {
            // SAFETY: as above; a stale store only makes a later allocation try more.
            unsafe { core::ptr::write_volatile(next, candidate + 1) };
            if ids.insert(key, candidate, u64::from(BPF_NOEXIST)).is_ok() {
                return candidate;
            }
            // Another CPU gave `key` an id at the same moment: use it, free ours.
            let _ = keys.remove(candidate);
            // SAFETY: the value is copied out at once.
            return unsafe { ids.get(key) }.copied().unwrap_or(0);
        }
    }
    0
}

/// The account of (`label`, interface `ifindex` in namespace `netns_cookie`, `destination`);
/// 0 when the accounts are full (counted).
#[inline(always)]
pub fn account_of(label: u32, netns_cookie: u64, ifindex: u32, destination: u32) -> u32 {
    let key = AccountKey {
        label,
        ifindex,
        netns_cookie,
        destination,
        pad: 0,
    };
    let id = id_for(
        &key,
        &ACCOUNT_IDS,
        &ACCOUNT_KEYS,
        ALLOC_NEXT_ACCOUNT,
        MAX_ACCOUNTS.load(),
    );
    if id == 0 {
        counters::bump(Counter::AccountsFull);
    }
    id
}

/// The owner account of (`uid`, `cgroup_id`, `destination`); 0 when the owner accounts are
/// full (counted).
#[inline(always)]
pub fn owner_account_of(uid: u32, cgroup_id: u64, destination: u32) -> u32 {
    let key = OwnerAccountKey {
        cgroup_id,
        uid,
        destination,
    };
    let id = id_for(&key, &OWNER_IDS, &OWNER_KEYS, ALLOC_NEXT_OWNER, MAX_OWNERS);
    if id == 0 {
        counters::bump(Counter::OwnerAccountsFull);
    }
    id
}

/// Which counter of an account an operation adds to.
#[derive(Clone, Copy)]
pub enum Field {
    PayloadTx,
    PayloadRx,
    WireTx,
    WireRx,
}

/// The two `u64`s of `counters` that `field` adds to (bytes, and packets for wire fields).
///
/// # Safety
/// `counters` must point into a map value.
#[inline(always)]
pub unsafe fn fields_of(counters: *mut IfaceCounters, field: Field) -> (*mut u64, *mut u64) {
    // SAFETY: field projections of a valid pointer.
    unsafe {
        match field {
            Field::PayloadTx => (&raw mut (*counters).payload.tx_bytes, core::ptr::null_mut()),
            Field::PayloadRx => (&raw mut (*counters).payload.rx_bytes, core::ptr::null_mut()),
            Field::WireTx => (
                &raw mut (*counters).wire_bytes.tx_bytes,
                &raw mut (*counters).wire_packets.tx_packets,
            ),
            Field::WireRx => (
                &raw mut (*counters).wire_bytes.rx_bytes,
                &raw mut (*counters).wire_packets.rx_packets,
            ),
        }
    }
}

/// Adds `bytes` (and `packets`, for wire fields) to `field` of `counters`.
///
/// # Safety
/// `counters` must point into a map value.
#[inline(always)]
pub unsafe fn add_to(counters: *mut IfaceCounters, field: Field, bytes: u64, packets: u64) {
    // SAFETY: the caller's pointer; the adds are atomic.
    unsafe {
        let (bytes_ptr, packets_ptr) = fields_of(counters, field);
        atomic_add(bytes_ptr, bytes);
        if !packets_ptr.is_null() {
            atomic_add(packets_ptr, packets);
        }
    }
}

fn overflow_counters(field: Field) -> Counter {
    match field {
        Field::PayloadTx => Counter::OverflowTxBytes,
        Field::PayloadRx => Counter::OverflowRxBytes,
        Field::WireTx => Counter::OverflowWireTxBytes,
        Field::WireRx => Counter::OverflowWireRxBytes,
    }
}

/// Adds to `field` of account `account` (this CPU's share), or to the overflow counters when
/// there is no account.
#[inline(always)]
pub fn add(account: u32, field: Field, bytes: u64, packets: u64) {
    if account != 0 {
        if let Some(counters) = ACCOUNTS.get_ptr_mut(account) {
            // SAFETY: `counters` points at this CPU's value of ACCOUNTS.
            unsafe { add_to(counters, field, bytes, packets) };
            return;
        }
    }
    counters::add(overflow_counters(field), bytes);
}

/// The (field, bytes, packets) parts of `counters`, one per [`Field`].
#[inline(always)]
fn parts(counters: &IfaceCounters) -> [(Field, u64, u64); 4] {
    [
        (Field::PayloadTx, counters.payload.tx_bytes, 0),
        (Field::PayloadRx, counters.payload.rx_bytes, 0),
        (
            Field::WireTx,
            counters.wire_bytes.tx_bytes,
            counters.wire_packets.tx_packets,
        ),
        (
            Field::WireRx,
            counters.wire_bytes.rx_bytes,
            counters.wire_packets.rx_packets,
        ),
    ]
}

/// Adds all of `moved` to `counters`.
///
/// # Safety
/// `counters` must point into a map value.
#[inline(always)]
pub unsafe fn add_all_to(counters: *mut IfaceCounters, moved: &IfaceCounters) {
    for (field, bytes, packets) in parts(moved) {
        // SAFETY: the caller's pointer.
        unsafe { add_to(counters, field, bytes, packets) };
    }
}

/// Moves `moved` from account `from` to account `to` (either may be 0: the overflow bucket).
/// Adds before it subtracts (adds the two's complement): a reader that overlaps sees the bytes
/// twice rather than not at all, and the daemon's snapshot retries while a move is in flight.
#[inline(always)]
pub fn transfer(from: u32, to: u32, moved: &IfaceCounters) {
    for (field, bytes, packets) in parts(moved) {
        add(to, field, bytes, packets);
    }
    for (field, bytes, packets) in parts(moved) {
        add(from, field, bytes.wrapping_neg(), packets.wrapping_neg());
    }
}

/// Adds payload to owner account `owner` (or to the owner overflow counters).
#[inline(always)]
pub fn add_owner_payload(owner: u32, field: Field, bytes: u64) {
    if owner != 0 {
        if let Some(counters) = OWNER_ACCOUNTS.get_ptr_mut(owner) {
            // SAFETY: `counters` points at this CPU's value of OWNER_ACCOUNTS.
            unsafe {
                match field {
                    Field::PayloadTx => atomic_add(&raw mut (*counters).payload.tx_bytes, bytes),
                    _ => atomic_add(&raw mut (*counters).payload.rx_bytes, bytes),
                }
            }
            return;
        }
    }
    match field {
        Field::PayloadTx => counters::add(Counter::OwnerOverflowTxBytes, bytes),
        _ => counters::add(Counter::OwnerOverflowRxBytes, bytes),
    }
}

/// Adds `delta` (two's complement for -1) to the live sockets of owner `owner` and label
/// `label`.
#[inline(always)]
pub fn count_live(owner: u32, label: u32, delta: u64) {
    if owner != 0 {
        if let Some(counters) = OWNER_ACCOUNTS.get_ptr_mut(owner) {
            // SAFETY: `counters` points at this CPU's value of OWNER_ACCOUNTS.
            unsafe { atomic_add(&raw mut (*counters).live_sockets, delta) };
        }
    }
    move_live(label, delta);
}

/// Adds `delta` to the live sockets of `label` only (a relabel moves them).
#[inline(always)]
pub fn move_live(label: u32, delta: u64) {
    if let Some(count) = LABEL_SOCKETS.get_ptr_mut(label) {
        // SAFETY: `count` points at this CPU's value of LABEL_SOCKETS.
        unsafe { atomic_add(count, delta) };
    }
}
