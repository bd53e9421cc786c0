//! Attribution arithmetic: from what the kernel's accounts hold to bytes per label and
//! interface. Pure functions over a [`KernelSnapshot`], so tests need no kernel.
//!
//! The kernel keeps running totals per account (label, interface, destination) and per owner
//! (uid, cgroup, destination)
//! for live and closed sockets alike, so a snapshot is as large as the accounts, not as the
//! sockets (docs/architecture.md).
use std::collections::{BTreeMap, HashMap};

use sockstats_common::{
    AccountKey, Counter, IfaceCounters, OwnerAccountKey, Totals, OTHER_IFINDEX, UNKNOWN_IFINDEX,
    UNLABELED_ID,
};

/// What the kernel maps held at one moment (see [`crate::kernel::KernelMaps::snapshot`]).
#[derive(Debug, Clone, Default)]
pub struct KernelSnapshot {
    /// Bytes per (label, interface, destination), live and closed sockets together.
    pub accounts: HashMap<AccountKey, IfaceCounters>,
    /// Payload and live sockets per owner (uid, cgroup) and destination (live sockets are all
    /// under [`sockstats_common::DESTINATION_UNKNOWN`]).
    pub owners: HashMap<OwnerAccountKey, OwnerTotals>,
    /// Live sockets per label id (held by a process).
    pub live_sockets_by_label: BTreeMap<u32, u64>,
    /// The COUNTERS array, summed over CPUs.
    pub counters: [u64; Counter::COUNT as usize],
}

/// Payload and live sockets of one owner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerTotals {
    pub payload: Totals,
    pub live_sockets: u64,
}

impl KernelSnapshot {
    #[must_use]
    pub fn counter(&self, counter: Counter) -> u64 {
        self.counters[counter as usize]
    }

    /// Payload bytes that no account could take (a map was full).
    #[must_use]
    pub fn overflow(&self) -> Totals {
        Totals::new(
            self.counter(Counter::OverflowTxBytes),
            self.counter(Counter::OverflowRxBytes),
        )
    }

    /// IP-layer bytes that no account could take (a map was full).
    #[must_use]
    pub fn wire_overflow(&self) -> Totals {
        Totals::new(
            self.counter(Counter::OverflowWireTxBytes),
            self.counter(Counter::OverflowWireRxBytes),
        )
    }

    /// Live sockets held by processes, over all labels.
    #[must_use]
    pub fn live_sockets(&self) -> u64 {
        self.live_sockets_by_label
            .values()
            .fold(0u64, |sum, live| sum.wrapping_add(*live))
    }
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
    #[must_use]
    pub fn of_key(key: &AccountKey) -> Self {
        match key.ifindex {
            OTHER_IFINDEX => Interface::Other,
            UNKNOWN_IFINDEX => Interface::Unknown,
            ifindex => Interface::Known {
                netns_cookie: key.netns_cookie,
                ifindex,
            },
        }
    }
}

/// Where a socket's bytes went: the interface they used and the destination (class or named
/// network id, [`sockstats_common::DESTINATION_UNKNOWN`] where no one remote address stands
/// for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub interface: Interface,
    pub destination: u32,
}

impl Route {
    #[must_use]
    pub fn of_key(key: &AccountKey) -> Self {
        Self {
            interface: Interface::of_key(key),
            destination: key.destination,
        }
    }
}

/// Per label id, per route. `unlabeled` (id 0) is always present.
#[must_use]
pub fn per_label_route(snapshot: &KernelSnapshot) -> BTreeMap<u32, BTreeMap<Route, IfaceCounters>> {
    let mut out: BTreeMap<u32, BTreeMap<Route, IfaceCounters>> = BTreeMap::new();
    out.insert(UNLABELED_ID, BTreeMap::new());
    for (key, counters) in &snapshot.accounts {
        out.entry(key.label)
            .or_default()
            .entry(Route::of_key(key))
            .or_default()
            .add(counters);
    }
    out
}

/// Per label id, per interface (over all destinations). `unlabeled` (id 0) is always
/// present.
#[must_use]
pub fn per_label_interface(
    snapshot: &KernelSnapshot,
) -> BTreeMap<u32, BTreeMap<Interface, IfaceCounters>> {
    per_label_route(snapshot)
        .into_iter()
        .map(|(label, routes)| {
            let mut by_interface: BTreeMap<Interface, IfaceCounters> = BTreeMap::new();
            for (route, counters) in routes {
                by_interface
                    .entry(route.interface)
                    .or_default()
                    .add(&counters);
            }
            (label, by_interface)
        })
        .collect()
}

/// Payload bytes per (label id, destination id) over all interfaces. (`unlabeled`, unknown) is
/// always present.
#[must_use]
pub fn per_label_destination(snapshot: &KernelSnapshot) -> BTreeMap<(u32, u32), Totals> {
    let mut out: BTreeMap<(u32, u32), Totals> = BTreeMap::new();
    out.insert(
        (UNLABELED_ID, sockstats_common::DESTINATION_UNKNOWN),
        Totals::default(),
    );
    for (key, counters) in &snapshot.accounts {
        out.entry((key.label, key.destination))
            .or_default()
            .add(counters.payload);
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
    use sockstats_common::Packets;

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

    fn key(label: u32, netns_cookie: u64, ifindex: u32) -> AccountKey {
        AccountKey {
            label,
            ifindex,
            netns_cookie,
            ..AccountKey::default()
        }
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
    fn accounts_add_up_per_label_and_interface() {
        let snapshot = KernelSnapshot {
            accounts: HashMap::from([
                (key(1, 1, 2), counters(1100, 2001)),
                (key(1, 1, 1), counters(5, 0)),
                (key(1, 9, 2), counters(7, 70)),
                (key(0, 0, UNKNOWN_IFINDEX), counters(3, 0)),
                (key(0, 0, OTHER_IFINDEX), counters(4, 4)),
            ]),
            ..KernelSnapshot::default()
        };
        let by_interface = per_label_interface(&snapshot);
        assert_eq!(by_interface[&1][&ETH].payload, Totals::new(1100, 2001));
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
    fn destinations_of_one_interface_are_routes_of_their_own_and_add_up_per_interface() {
        use sockstats_common::{DESTINATION_INTERNET, DESTINATION_PRIVATE};
        let to = |destination| AccountKey {
            destination,
            ..key(1, 1, 2)
        };
        let snapshot = KernelSnapshot {
            accounts: HashMap::from([
                (to(DESTINATION_PRIVATE), counters(10, 20)),
                (to(DESTINATION_INTERNET), counters(300, 400)),
            ]),
            ..KernelSnapshot::default()
        };
        let routes = per_label_route(&snapshot);
        let route = |destination| Route {
            interface: ETH,
            destination,
        };
        assert_eq!(
            routes[&1][&route(DESTINATION_PRIVATE)].payload,
            Totals::new(10, 20)
        );
        assert_eq!(
            routes[&1][&route(DESTINATION_INTERNET)].payload,
            Totals::new(300, 400)
        );
        assert_eq!(
            per_label_interface(&snapshot)[&1][&ETH].payload,
            Totals::new(310, 420)
        );
        assert_eq!(per_label(&snapshot)[&1], Totals::new(310, 420));
    }

    #[test]
    fn unlabeled_is_always_there() {
        assert_eq!(
            per_label(&KernelSnapshot::default()),
            BTreeMap::from([(0, Totals::default())])
        );
    }

    #[test]
    fn per_cpu_shares_that_wrap_sum_to_the_count() {
        // A relabel moved 100 bytes out of an account on CPU 1, which had seen none of them:
        // that CPU's share wrapped below zero; the wrapping sum is exact.
        let mut total = IfaceCounters::default();
        total.wrapping_add(&counters(150, 0));
        total.wrapping_add(&IfaceCounters {
            payload: Totals::new(100u64.wrapping_neg(), 0),
            ..IfaceCounters::default()
        });
        assert_eq!(total.payload, Totals::new(50, 0));
    }

    #[test]
    fn overflow_and_live_sockets_come_from_the_counters_and_gauges() {
        let mut snapshot = KernelSnapshot::default();
        snapshot.counters[Counter::OverflowTxBytes as usize] = 9;
        snapshot.counters[Counter::OverflowRxBytes as usize] = 8;
        snapshot.counters[Counter::OverflowWireTxBytes as usize] = 90;
        snapshot.live_sockets_by_label = BTreeMap::from([(0, 3), (4, 2)]);
        assert_eq!(snapshot.overflow(), Totals::new(9, 8));
        assert_eq!(snapshot.wire_overflow(), Totals::new(90, 0));
        assert_eq!(snapshot.live_sockets(), 5);
    }
}
