//! Totals of closed sockets per (label, interface), folded in by `sock_release`.
use aya_ebpf::{bindings::BPF_NOEXIST, macros::map, maps::HashMap, EbpfContext};
use aya_log_ebpf::warn;
use sockstats_common::{
    Counter, IfaceCounters, LabelIfaceKey, SocketEntry, Totals, MAX_LABEL_INTERFACES,
    OTHER_IFINDEX, OTHER_SLOT, UNKNOWN_IFINDEX, UNKNOWN_SLOT,
};

use crate::counters::{self, atomic_add};

#[map(name = "LABEL_TOTALS")]
static LABEL_TOTALS: HashMap<LabelIfaceKey, IfaceCounters> =
    HashMap::pinned(MAX_LABEL_INTERFACES, 0);

/// Adds a packet of a socket that has already been folded (FIN, retransmits and ACKs after
/// `close`) to the totals of (`label`, interface).
pub fn add_late_packet<C: EbpfContext>(
    ctx: &C,
    label: u32,
    netns_cookie: u64,
    ifindex: u32,
    wire: &IfaceCounters,
) {
    let _ = add(
        ctx,
        &LabelIfaceKey {
            label,
            ifindex,
            netns_cookie,
        },
        wire,
    );
}

/// Adds every slot of `entry` to the totals of (`label`, the slot's interface). Returns the
/// payload that went to the overflow bucket instead (the map was full).
pub fn fold<C: EbpfContext>(ctx: &C, label: u32, entry: &SocketEntry) -> Totals {
    let mut overflowed = Totals::default();
    for (index, slot) in (0_u32..).zip(entry.slots.iter()) {
        if slot.counters.is_zero() {
            continue;
        }
        let key = match index {
            OTHER_SLOT => LabelIfaceKey {
                label,
                ifindex: OTHER_IFINDEX,
                netns_cookie: 0,
            },
            UNKNOWN_SLOT => LabelIfaceKey {
                label,
                ifindex: UNKNOWN_IFINDEX,
                netns_cookie: 0,
            },
            _ => LabelIfaceKey {
                label,
                ifindex: slot.ifindex,
                netns_cookie: slot.netns_cookie,
            },
        };
        if !add(ctx, &key, &slot.counters) {
            overflowed.add(slot.counters.payload);
        }
    }
    overflowed
}

/// Adds `counters` to the totals of `key`; false if they went to the overflow bucket.
fn add<C: EbpfContext>(ctx: &C, key: &LabelIfaceKey, counters: &IfaceCounters) -> bool {
    let totals = if let Some(totals) = LABEL_TOTALS.get_ptr_mut(key) {
        totals
    } else {
        {
            let _ = LABEL_TOTALS.insert(key, IfaceCounters::default(), u64::from(BPF_NOEXIST));
            let Some(totals) = LABEL_TOTALS.get_ptr_mut(key) else {
                counters::bump(Counter::LabelTotalsFull);
                counters::add(Counter::OverflowTxBytes, counters.payload.tx_bytes);
                counters::add(Counter::OverflowRxBytes, counters.payload.rx_bytes);
                counters::add(Counter::OverflowWireTxBytes, counters.wire_bytes.tx_bytes);
                counters::add(Counter::OverflowWireRxBytes, counters.wire_bytes.rx_bytes);
                warn!(
                    ctx,
                    "sockstats: LABEL_TOTALS map full, label {} goes to overflow", key.label
                );
                return false;
            };
            totals
        }
    };
    // SAFETY: `totals` points at a value of LABEL_TOTALS; the adds are atomic.
    unsafe {
        atomic_add(
            &raw mut (*totals).payload.tx_bytes,
            counters.payload.tx_bytes,
        );
        atomic_add(
            &raw mut (*totals).payload.rx_bytes,
            counters.payload.rx_bytes,
        );
        atomic_add(
            &raw mut (*totals).wire_bytes.tx_bytes,
            counters.wire_bytes.tx_bytes,
        );
        atomic_add(
            &raw mut (*totals).wire_bytes.rx_bytes,
            counters.wire_bytes.rx_bytes,
        );
        atomic_add(
            &raw mut (*totals).wire_packets.tx_packets,
            counters.wire_packets.tx_packets,
        );
        atomic_add(
            &raw mut (*totals).wire_packets.rx_packets,
            counters.wire_packets.rx_packets,
        );
    }
    true
}
