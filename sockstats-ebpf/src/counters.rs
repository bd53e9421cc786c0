//! The failure and event counters, and the atomic operations everything uses.
//!
//! Counters are per CPU, so a counter bumped once per connection never bounces a cache line
//! between CPUs; the adds stay atomic because a packet program in softirq can interrupt a
//! program of the same CPU in the middle of its read-modify-write.
use crate::maps::COUNTERS;
use sockstats_common::Counter;

/// Adds `value` to `*dst` with the BPF `lock xadd` instruction, safe against other CPUs. On
/// x86-64 it is a full memory barrier too (`lock add`), which the relabel handshake of
/// [`crate::relabel`] relies on.
///
/// # Safety
/// `dst` must point into a map value.
#[inline(always)]
pub unsafe fn atomic_add(dst: *mut u64, value: u64) {
    // SAFETY: the caller guarantees `dst` is valid for writes.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            dst, value,
        );
    }
}

/// Sets `*dst` from 0 to `value` if it is still 0 (64-bit BPF `cmpxchg`; the 32-bit one needs
/// a newer BPF CPU version). Returns whether it did.
///
/// # Safety
/// `dst` must point into a map value.
#[inline(always)]
pub unsafe fn claim(dst: *mut u64, value: u64) -> bool {
    // SAFETY: the caller's pointer.
    unsafe { compare_exchange(dst, 0, value) }
}

/// Sets `*dst` from `old` to `new` if it is still `old` (64-bit BPF `cmpxchg`, Linux 5.12+).
/// Returns whether it did.
///
/// # Safety
/// `dst` must point into a map value.
#[inline(always)]
pub unsafe fn compare_exchange(dst: *mut u64, old: u64, new: u64) -> bool {
    // SAFETY: the caller guarantees `dst` is valid for writes.
    unsafe {
        core::intrinsics::atomic_cxchg::<
            u64,
            { core::intrinsics::AtomicOrdering::SeqCst },
            { core::intrinsics::AtomicOrdering::SeqCst },
        >(dst, old, new)
        .1
    }
}

/// Adds `value` to the counter `counter`.
#[inline(always)]
pub fn add(counter: Counter, value: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: `slot` points at a value of the COUNTERS array.
        unsafe { atomic_add(slot, value) };
    }
}

/// Adds one to the counter `counter`.
#[inline(always)]
pub fn bump(counter: Counter) {
    add(counter, 1);
}

/// Adds `value` to the `u32` at `dst` atomically (32-bit `lock xadd`).
///
/// # Safety
/// `dst` must point into a map value.
#[inline(always)]
pub unsafe fn atomic_add32(dst: *mut u32, value: u32) {
    // SAFETY: the caller guarantees `dst` is valid for writes.
    unsafe {
        core::intrinsics::atomic_xadd::<u32, u32, { core::intrinsics::AtomicOrdering::Relaxed }>(
            dst, value,
        );
    }
}
