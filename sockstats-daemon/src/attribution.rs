//! Attribution arithmetic: from what the kernel maps hold to bytes per label.
//!
//! A label's bytes = the totals folded in by `sock_release` for closed sockets + the counters
//! of its live sockets. Pure functions over a [`KernelSnapshot`], so tests need no kernel.
use std::collections::{BTreeMap, HashMap};

use sockstats_common::{Counter, SocketEntry, Totals, UNLABELED_ID};

/// What the kernel maps held at one moment (see [`crate::kernel::KernelMaps::snapshot`]).
#[derive(Debug, Clone, Default)]
pub struct KernelSnapshot {
    /// Live sockets: cookie → entry.
    pub sockets: HashMap<u64, SocketEntry>,
    /// Labels of live sockets: cookie → label id.
    pub socket_labels: HashMap<u64, u32>,
    /// Bytes of closed sockets per label id.
    pub label_totals: HashMap<u32, Totals>,
    /// The COUNTERS array.
    pub counters: [u64; Counter::COUNT as usize],
}

impl KernelSnapshot {
    #[must_use]
    pub fn counter(&self, counter: Counter) -> u64 {
        self.counters[counter as usize]
    }

    /// Bytes of sockets the kernel could not track (a map was full).
    #[must_use]
    pub fn overflow(&self) -> Totals {
        Totals::new(
            self.counter(Counter::OverflowTxBytes),
            self.counter(Counter::OverflowRxBytes),
        )
    }
}

/// Payload bytes per label id, closed and live sockets together. `unlabeled` (id 0) is always
/// present.
#[must_use]
pub fn per_label(snapshot: &KernelSnapshot) -> BTreeMap<u32, Totals> {
    let mut totals: BTreeMap<u32, Totals> = BTreeMap::new();
    totals.insert(UNLABELED_ID, Totals::default());
    for (label, closed) in &snapshot.label_totals {
        totals.entry(*label).or_default().add(*closed);
    }
    for (cookie, entry) in &snapshot.sockets {
        let label = snapshot
            .socket_labels
            .get(cookie)
            .copied()
            .unwrap_or(UNLABELED_ID);
        totals
            .entry(label)
            .or_default()
            .add(Totals::new(entry.tx_bytes, entry.rx_bytes));
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(tx_bytes: u64, rx_bytes: u64) -> SocketEntry {
        SocketEntry {
            tx_bytes,
            rx_bytes,
            ..SocketEntry::default()
        }
    }

    #[test]
    fn closed_and_live_sockets_add_up_per_label() {
        let snapshot = KernelSnapshot {
            sockets: HashMap::from([
                (10, socket(100, 1)),
                (11, socket(5, 50)),
                (12, socket(7, 0)),
            ]),
            socket_labels: HashMap::from([(10, 1), (11, 2)]),
            label_totals: HashMap::from([(1, Totals::new(1000, 2000)), (0, Totals::new(3, 4))]),
            ..KernelSnapshot::default()
        };
        let totals = per_label(&snapshot);
        assert_eq!(totals[&1], Totals::new(1100, 2001));
        assert_eq!(totals[&2], Totals::new(5, 50));
        assert_eq!(totals[&0], Totals::new(10, 4));
        assert_eq!(totals.len(), 3);
    }

    #[test]
    fn labels_of_sockets_without_entries_add_nothing() {
        // A socket labeled before it moved a byte has a label but no entry yet.
        let snapshot = KernelSnapshot {
            socket_labels: HashMap::from([(99, 4)]),
            ..KernelSnapshot::default()
        };
        assert_eq!(
            per_label(&snapshot),
            BTreeMap::from([(0, Totals::default())])
        );
    }

    #[test]
    fn overflow_comes_from_the_counters() {
        let mut snapshot = KernelSnapshot::default();
        snapshot.counters[Counter::OverflowTxBytes as usize] = 9;
        snapshot.counters[Counter::OverflowRxBytes as usize] = 8;
        assert_eq!(snapshot.overflow(), Totals::new(9, 8));
    }
}
