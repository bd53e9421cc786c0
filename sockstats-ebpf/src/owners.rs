//! Payload totals of closed sockets per owner (uid and cgroup), folded in by `sock_release`
//! beside the per-label totals, so `sockstats get --by uid|cgroup` covers closed sockets too.
use aya_ebpf::{bindings::BPF_NOEXIST, macros::map, maps::HashMap};
use sockstats_common::{Counter, OwnerKey, SocketEntry, Totals, MAX_OWNERS, UNKNOWN_UID};

use crate::counters::{self, atomic_add};

#[map(name = "OWNER_TOTALS")]
static OWNER_TOTALS: HashMap<OwnerKey, Totals> = HashMap::pinned(MAX_OWNERS, 0);

/// Adds the payload of the closing socket `entry` to its uid's and its cgroup's totals, except
/// `in_overflow`: the part the label totals could not take, which every view shows in the
/// overflow bucket instead.
#[inline(always)]
pub fn fold(entry: &SocketEntry, in_overflow: Totals) {
    let all = entry.payload();
    let payload = Totals::new(
        all.tx_bytes.saturating_sub(in_overflow.tx_bytes),
        all.rx_bytes.saturating_sub(in_overflow.rx_bytes),
    );
    if payload.tx_bytes == 0 && payload.rx_bytes == 0 {
        return;
    }
    // An entry made from a packet has no owner until a task uses the socket.
    let (uid, cgroup_id) = if entry.tgid == 0 {
        (UNKNOWN_UID, 0)
    } else {
        (entry.uid, entry.cgroup_id)
    };
    add(
        &OwnerKey::uid(uid),
        payload,
        (Counter::UidOverflowTxBytes, Counter::UidOverflowRxBytes),
    );
    add(
        &OwnerKey::cgroup(cgroup_id),
        payload,
        (
            Counter::CgroupOverflowTxBytes,
            Counter::CgroupOverflowRxBytes,
        ),
    );
}

/// Adds `payload` to the totals of `key`, or to that kind's `overflow` counters (tx, rx).
#[inline(always)]
fn add(key: &OwnerKey, payload: Totals, overflow: (Counter, Counter)) {
    let totals = if let Some(totals) = OWNER_TOTALS.get_ptr_mut(key) {
        totals
    } else {
        let _ = OWNER_TOTALS.insert(key, Totals::default(), u64::from(BPF_NOEXIST));
        let Some(totals) = OWNER_TOTALS.get_ptr_mut(key) else {
            counters::bump(Counter::OwnerTotalsFull);
            counters::add(overflow.0, payload.tx_bytes);
            counters::add(overflow.1, payload.rx_bytes);
            return;
        };
        totals
    };
    // SAFETY: `totals` points at a value of OWNER_TOTALS; the adds are atomic.
    unsafe {
        atomic_add(&raw mut (*totals).tx_bytes, payload.tx_bytes);
        atomic_add(&raw mut (*totals).rx_bytes, payload.rx_bytes);
    }
}
