//! Attribution arithmetic: from what the kernel maps hold to bytes per label and interface.
//!
//! A label's bytes on an interface = what `sock_release` folded in for its closed sockets +
//! the slots of its live sockets on that interface. Pure functions over a [`KernelSnapshot`],
//! so tests need no kernel.
//!
//! Live sockets are folded into per-(label, interface) sums as the snapshot is read
//! ([`KernelSnapshot::add_socket`]): a copy of every 352-byte entry would cost the daemon
//! 35 MB and most of a `get`'s time at 100,000 sockets (docs/benchmarks.md).
use std::collections::{BTreeMap, HashMap, HashSet};

use sockstats_common::{
    Counter, IfaceCounters, LabelIfaceKey, OwnerKey, SocketEntry, Totals, INTERFACE_SLOTS,
    OTHER_IFINDEX, OTHER_SLOT, UNKNOWN_IFINDEX, UNLABELED_ID,
};

/// What the kernel maps held at one moment (see [`crate::kernel::KernelMaps::snapshot`]).
#[derive(Debug, Clone, Default)]
pub struct KernelSnapshot {
    /// Cookies of the live sockets added with [`KernelSnapshot::add_socket`].
    pub live_cookies: HashSet<u64>,
    /// Their bytes per label id, per interface.
    pub live: BTreeMap<u32, BTreeMap<Interface, IfaceCounters>>,
    /// Labels of live sockets: cookie → label id. Read before the sockets are added.
    pub socket_labels: HashMap<u64, u32>,
    /// Bytes of closed sockets per (label id, interface).
    pub label_totals: HashMap<LabelIfaceKey, IfaceCounters>,
    /// Payload of closed sockets per uid and per cgroup.
    pub owner_totals: HashMap<OwnerKey, Totals>,
    /// Payload and count of the live sockets per owner, for `get_by`.
    pub live_owners: HashMap<Owner, LiveTotals>,
    /// Live sockets per label id.
    pub live_sockets_by_label: BTreeMap<u32, u64>,
    /// The COUNTERS array.
    pub counters: [u64; Counter::COUNT as usize],
}

impl KernelSnapshot {
    /// Adds the live socket `cookie` under its label (from `socket_labels`, which must be
    /// filled first). A cookie seen before is skipped: a key-by-key map walk can repeat keys.
    pub fn add_socket(&mut self, cookie: u64, entry: &SocketEntry) {
        if !self.live_cookies.insert(cookie) {
            return;
        }
        let label = self
            .socket_labels
            .get(&cookie)
            .copied()
            .unwrap_or(UNLABELED_ID);
        let interfaces = self.live.entry(label).or_default();
        for (index, slot) in (0..).zip(&entry.slots) {
            if slot.counters.is_zero() {
                continue;
            }
            let interface = Interface::of_slot(index, slot.netns_cookie, slot.ifindex);
            interfaces.entry(interface).or_default().add(&slot.counters);
        }
        *self.live_sockets_by_label.entry(label).or_default() += 1;
        let owner = self.live_owners.entry(Owner::of(entry)).or_default();
        owner.payload.add(entry.payload());
        owner.sockets += 1;
    }

    /// Is `cookie` one of the live sockets read?
    #[must_use]
    pub fn is_live(&self, cookie: u64) -> bool {
        self.live_cookies.contains(&cookie)
    }

    #[must_use]
    pub fn counter(&self, counter: Counter) -> u64 {
        self.counters[counter as usize]
    }

    /// Payload bytes of sockets the kernel could not track (a map was full).
    #[must_use]
    pub fn overflow(&self) -> Totals {
        Totals::new(
            self.counter(Counter::OverflowTxBytes),
            self.counter(Counter::OverflowRxBytes),
        )
    }

    /// IP-layer bytes of sockets the kernel could not track (a map was full).
    #[must_use]
    pub fn wire_overflow(&self) -> Totals {
        Totals::new(
            self.counter(Counter::OverflowWireTxBytes),
            self.counter(Counter::OverflowWireRxBytes),
        )
    }
}

/// Who made a live socket: uid, cgroup id and process id (`tgid` 0: no task has used a socket
/// made from a packet yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Owner {
    pub uid: u32,
    pub cgroup_id: u64,
    pub tgid: u32,
}

impl Owner {
    #[must_use]
    pub fn of(entry: &SocketEntry) -> Self {
        Self {
            uid: entry.uid,
            cgroup_id: entry.cgroup_id,
            tgid: entry.tgid,
        }
    }
}

/// Payload and number of live sockets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveTotals {
    pub payload: Totals,
    pub sockets: u64,
}

/// Where a socket's bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Interface {
    /// A real interface: (network namespace cookie, ifindex).
    Known { netns_cookie: u64, ifindex: u32 },
    /// Interfaces beyond the slots a socket has: not told apart.
    Other,
    /// Payload moved before any packet showed the socket's interface.
    Unknown,
}

impl Interface {
    fn of_key(key: &LabelIfaceKey) -> Self {
        match key.ifindex {
            OTHER_IFINDEX => Interface::Other,
            UNKNOWN_IFINDEX => Interface::Unknown,
            ifindex => Interface::Known {
                netns_cookie: key.netns_cookie,
                ifindex,
            },
        }
    }

    fn of_slot(index: u32, netns_cookie: u64, ifindex: u32) -> Self {
        match index {
            i if i < INTERFACE_SLOTS && ifindex != 0 => Interface::Known {
                netns_cookie,
                ifindex,
            },
            OTHER_SLOT => Interface::Other,
            // A slot claimed but not yet given its ifindex only races a packet that is
            // counted a moment later; its bytes are payload-less wire counts at most.
            _ => Interface::Unknown,
        }
    }
}

/// Per label id, per interface: closed and live sockets together. `unlabeled` (id 0) is always
/// present.
#[must_use]
pub fn per_label_interface(
    snapshot: &KernelSnapshot,
) -> BTreeMap<u32, BTreeMap<Interface, IfaceCounters>> {
    let mut out: BTreeMap<u32, BTreeMap<Interface, IfaceCounters>> = BTreeMap::new();
    out.insert(UNLABELED_ID, BTreeMap::new());
    for (key, closed) in &snapshot.label_totals {
        out.entry(key.label)
            .or_default()
            .entry(Interface::of_key(key))
            .or_default()
            .add(closed);
    }
    for (label, live) in &snapshot.live {
        let interfaces = out.entry(*label).or_default();
        for (interface, counters) in live {
            interfaces.entry(*interface).or_default().add(counters);
        }
    }
    out
}

/// Payload bytes per label id over all interfaces. `unlabeled` (id 0) is always present.
#[must_use]
pub fn per_label(snapshot: &KernelSnapshot) -> BTreeMap<u32, Totals> {
    per_label_interface(snapshot)
        .into_iter()
        .map(|(label, interfaces)| {
            let mut total = Totals::default();
            for counters in interfaces.values() {
                total.add(counters.payload);
            }
            (label, total)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use sockstats_common::{IfaceSlot, Packets, UNKNOWN_SLOT};

    use super::*;

    fn counters(tx: u64, rx: u64) -> IfaceCounters {
        IfaceCounters {
            payload: Totals::new(tx, rx),
            wire_bytes: Totals::new(tx + 40, rx + 40),
            wire_packets: Packets {
                tx_packets: 1,
                rx_packets: 1,
            },
        }
    }

    fn socket(slots: &[(usize, u64, u32, IfaceCounters)]) -> SocketEntry {
        let mut entry = SocketEntry::default();
        for (index, netns_cookie, ifindex, counters) in slots {
            entry.slots[*index] = IfaceSlot {
                netns_cookie: *netns_cookie,
                ifindex: *ifindex,
                pad: 0,
                counters: *counters,
            };
        }
        entry
    }

    const LO: Interface = Interface::Known {
        netns_cookie: 1,
        ifindex: 1,
    };
    const ETH: Interface = Interface::Known {
        netns_cookie: 1,
        ifindex: 2,
    };
    const OTHER_NS_ETH: Interface = Interface::Known {
        netns_cookie: 9,
        ifindex: 2,
    };

    #[test]
    fn closed_and_live_sockets_add_up_per_label_and_interface() {
        let mut snapshot = KernelSnapshot {
            socket_labels: HashMap::from([(10, 1), (11, 1)]),
            label_totals: HashMap::from([
                (
                    LabelIfaceKey {
                        label: 1,
                        ifindex: 2,
                        netns_cookie: 1,
                    },
                    counters(1000, 2000),
                ),
                (
                    LabelIfaceKey {
                        label: 0,
                        ifindex: OTHER_IFINDEX,
                        netns_cookie: 0,
                    },
                    counters(4, 4),
                ),
            ]),
            ..KernelSnapshot::default()
        };
        let sockets = [
            (
                10,
                socket(&[(0, 1, 2, counters(100, 1)), (1, 1, 1, counters(5, 0))]),
            ),
            (11, socket(&[(0, 9, 2, counters(7, 70))])),
            (12, socket(&[(UNKNOWN_SLOT as usize, 0, 0, counters(3, 0))])),
            // A key walk that restarted repeats a key: counted once.
            (11, socket(&[(0, 9, 2, counters(7, 70))])),
        ];
        for (cookie, entry) in &sockets {
            snapshot.add_socket(*cookie, entry);
        }
        assert!(snapshot.is_live(12) && !snapshot.is_live(13));
        let by_interface = per_label_interface(&snapshot);
        assert_eq!(by_interface[&1][&ETH].payload, Totals::new(1100, 2001));
        assert_eq!(
            by_interface[&1][&ETH].wire_packets,
            Packets {
                tx_packets: 2,
                rx_packets: 2
            }
        );
        assert_eq!(by_interface[&1][&LO].payload, Totals::new(5, 0));
        assert_eq!(by_interface[&1][&OTHER_NS_ETH].payload, Totals::new(7, 70));
        assert_eq!(
            by_interface[&0][&Interface::Unknown].payload,
            Totals::new(3, 0)
        );
        assert_eq!(
            by_interface[&0][&Interface::Other].payload,
            Totals::new(4, 4)
        );

        // The per-label totals are the sums over interfaces.
        let totals = per_label(&snapshot);
        assert_eq!(totals[&1], Totals::new(1112, 2071));
        assert_eq!(totals[&0], Totals::new(7, 4));
    }

    #[test]
    fn labels_of_sockets_without_entries_add_nothing() {
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
        snapshot.counters[Counter::OverflowWireTxBytes as usize] = 90;
        assert_eq!(snapshot.overflow(), Totals::new(9, 8));
        assert_eq!(snapshot.wire_overflow(), Totals::new(90, 0));
    }
}
