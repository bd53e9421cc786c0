//! Grouping arithmetic: payload bytes per uid, cgroup, process or label, from one kernel
//! snapshot (units and containers are groups of cgroups, named in [`crate::ops::naming`]). Pure functions, so tests need no kernel; the names come from [`crate::sys::owners`].
//!
//! Every grouping covers the same bytes, so each one's groups sum to the same total: the
//! kernel adds each payload byte to its label's account and its owner's (uid, cgroup) account
//! at once, live and closed sockets alike; the process grouping lists the live sockets (their
//! process is not kept once they close, so the bytes of closed ones are one group of their
//! own); bytes no account could take are one group too.
use std::collections::BTreeMap;

use sockstats_common::{
    protocol::Grouping, Counter, SocketRecord, Totals, DESTINATION_UNKNOWN, UNKNOWN_UID,
};

use crate::attribution::{per_label_destination, KernelSnapshot};

/// One group of a grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Label(u32),
    Uid(u32),
    Cgroup(u64),
    Process(u32),
    /// Closed sockets, in the process grouping (their process is not kept).
    ClosedSockets,
    /// Sockets no task has used yet (made from a packet, or older than the daemon).
    UnknownOwner,
    /// Sockets the kernel could not track because a map was full (`overflow` of `get`).
    Overflow,
    /// Payload of sockets whose owner had no account (uid and cgroup groupings only).
    OwnerOverflow,
}

/// Bytes and live sockets of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupTotals {
    pub payload: Totals,
    pub live_sockets: u64,
}

/// Payload bytes per group of `by`. `live` lists the live socket states (needed for
/// [`Grouping::Process`] only).
#[must_use]
pub fn group(
    snapshot: &KernelSnapshot,
    by: Grouping,
    live: &[SocketRecord],
) -> BTreeMap<Group, GroupTotals> {
    let mut out: BTreeMap<Group, GroupTotals> = BTreeMap::new();
    for ((group, _), totals) in group_by_destination(snapshot, by, live) {
        let entry = out.entry(group).or_default();
        entry.payload.add(totals.payload);
        entry.live_sockets += totals.live_sockets;
    }
    out
}

/// Payload bytes per group of `by` and destination id. Live sockets are counted under
/// [`DESTINATION_UNKNOWN`] (a socket is not of one destination).
#[must_use]
pub fn group_by_destination(
    snapshot: &KernelSnapshot,
    by: Grouping,
    live: &[SocketRecord],
) -> BTreeMap<(Group, u32), GroupTotals> {
    let mut out: BTreeMap<(Group, u32), GroupTotals> = BTreeMap::new();
    match by {
        Grouping::Label => {
            for (label, sockets) in &snapshot.live_sockets_by_label {
                out.entry((Group::Label(*label), DESTINATION_UNKNOWN))
                    .or_default()
                    .live_sockets += sockets;
            }
            for ((label, destination), payload) in per_label_destination(snapshot) {
                out.entry((Group::Label(label), destination))
                    .or_default()
                    .payload = payload;
            }
        }
        Grouping::Uid | Grouping::Cgroup | Grouping::Unit | Grouping::Container => {
            for (owner, totals) in &snapshot.owners {
                let group = match by {
                    Grouping::Uid if owner.uid == UNKNOWN_UID => Group::UnknownOwner,
                    Grouping::Uid => Group::Uid(owner.uid),
                    _ => Group::Cgroup(owner.cgroup_id),
                };
                let entry = out.entry((group, owner.destination)).or_default();
                entry.payload.add(totals.payload);
                entry.live_sockets += totals.live_sockets;
            }
            let owner_overflow = Totals::new(
                snapshot.counter(Counter::OwnerOverflowTxBytes),
                snapshot.counter(Counter::OwnerOverflowRxBytes),
            );
            if owner_overflow != Totals::default() {
                out.entry((Group::OwnerOverflow, DESTINATION_UNKNOWN))
                    .or_default()
                    .payload = owner_overflow;
            }
        }
        Grouping::Process => {
            let mut live_payload: BTreeMap<u32, Totals> = BTreeMap::new();
            for record in live {
                let group = if record.tgid == 0 {
                    Group::UnknownOwner
                } else {
                    Group::Process(record.tgid)
                };
                let entry = out.entry((group, record.destination)).or_default();
                entry.payload.add(record.payload);
                entry.live_sockets += u64::from(record.held);
                live_payload
                    .entry(record.destination)
                    .or_default()
                    .add(record.payload);
            }
            let mut all_payload: BTreeMap<u32, Totals> = BTreeMap::new();
            for ((_, destination), payload) in per_label_destination(snapshot) {
                all_payload.entry(destination).or_default().add(payload);
            }
            for (destination, all) in all_payload {
                let live = live_payload.get(&destination).copied().unwrap_or_default();
                let closed = Totals::new(
                    all.tx_bytes.saturating_sub(live.tx_bytes),
                    all.rx_bytes.saturating_sub(live.rx_bytes),
                );
                if closed != Totals::default() {
                    out.entry((Group::ClosedSockets, destination))
                        .or_default()
                        .payload = closed;
                }
            }
        }
    }
    let overflow = snapshot.overflow();
    if overflow != Totals::default() {
        out.entry((Group::Overflow, DESTINATION_UNKNOWN))
            .or_default()
            .payload = overflow;
    }
    out
}

/// What the groups of `by` cover, in words (the `covers` of a `get_by` reply).
#[must_use]
pub const fn covers(by: Grouping) -> &'static str {
    match by {
        Grouping::Label => "live and closed sockets, by label",
        Grouping::Uid | Grouping::Cgroup => {
            "live and closed sockets, by the uid or cgroup of the task that made the socket (for accepted sockets and sockets older than the daemon: the first task that moved bytes on it)"
        }
        Grouping::Unit | Grouping::Container => {
            "live and closed sockets, by the systemd unit or the container of the cgroup of the task that made the socket (for accepted sockets and sockets older than the daemon: the first task that moved bytes on it); \"(no unit)\" and \"(no container)\" hold the rest, \"(unknown cgroup N)\" a cgroup removed before the daemon saw it"
        }
        Grouping::Process => {
            "live sockets by the process that made them; the bytes of closed sockets are in \"(closed sockets)\", as processes are not kept once their sockets close"
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sockstats_common::{AccountKey, IfaceCounters, OwnerAccountKey, UNKNOWN_IFINDEX};

    use super::*;
    use crate::attribution::OwnerTotals;

    fn owner(uid: u32, cgroup_id: u64) -> OwnerAccountKey {
        OwnerAccountKey {
            cgroup_id,
            uid,
            destination: 0,
        }
    }

    fn record(tgid: u32, label: u32, tx: u64, rx: u64, held: u32) -> SocketRecord {
        SocketRecord {
            cookie: u64::from(tgid) * 10 + u64::from(label),
            tgid,
            label,
            payload: Totals::new(tx, rx),
            held,
            ..SocketRecord::default()
        }
    }

    /// Label 5 has 1020/2002 (one live socket of process 200 with 20/2, the rest closed),
    /// unlabeled 40/11; uid 33 made label 5's bytes, uid 0 the unlabeled ones.
    fn snapshot() -> (KernelSnapshot, Vec<SocketRecord>) {
        let account = |label| AccountKey {
            label,
            ifindex: UNKNOWN_IFINDEX,
            ..AccountKey::default()
        };
        let payload = |tx, rx| IfaceCounters {
            payload: Totals::new(tx, rx),
            ..IfaceCounters::default()
        };
        let mut snapshot = KernelSnapshot {
            accounts: HashMap::from([
                (account(5), payload(1020, 2002)),
                (account(0), payload(40, 11)),
            ]),
            owners: HashMap::from([
                (
                    owner(33, 60),
                    OwnerTotals {
                        payload: Totals::new(920, 2002),
                        live_sockets: 1,
                    },
                ),
                (
                    owner(0, 50),
                    OwnerTotals {
                        payload: Totals::new(40, 11),
                        live_sockets: 2,
                    },
                ),
            ]),
            live_sockets_by_label: BTreeMap::from([(0, 2), (5, 1)]),
            ..KernelSnapshot::default()
        };
        snapshot.counters[Counter::OverflowTxBytes as usize] = 4;
        snapshot.counters[Counter::OwnerOverflowTxBytes as usize] = 100;
        let live = vec![
            record(200, 5, 20, 2, 1),
            record(100, 0, 10, 1, 1),
            record(101, 0, 30, 3, 1),
            record(0, 0, 0, 7, 0), // made from a packet, no task yet
        ];
        (snapshot, live)
    }

    fn sum(groups: &BTreeMap<Group, GroupTotals>) -> (Totals, u64) {
        let mut total = Totals::default();
        let mut live = 0;
        for group in groups.values() {
            total.add(group.payload);
            live += group.live_sockets;
        }
        (total, live)
    }

    #[test]
    fn every_grouping_covers_the_same_bytes_and_sockets() {
        let (snapshot, live) = snapshot();
        let by_label = group(&snapshot, Grouping::Label, &live);
        for by in [
            Grouping::Uid,
            Grouping::Cgroup,
            Grouping::Process,
            Grouping::Unit,
            Grouping::Container,
        ] {
            assert_eq!(sum(&group(&snapshot, by, &live)), sum(&by_label), "{by:?}");
        }
        assert_eq!(sum(&by_label), (Totals::new(1064, 2013), 3));
    }

    #[test]
    fn groups_by_owner_and_process() {
        let (snapshot, live) = snapshot();
        let by_uid = group(&snapshot, Grouping::Uid, &live);
        assert_eq!(
            by_uid[&Group::Uid(33)],
            GroupTotals {
                payload: Totals::new(920, 2002),
                live_sockets: 1
            }
        );
        assert_eq!(by_uid[&Group::OwnerOverflow].payload, Totals::new(100, 0));
        assert_eq!(by_uid[&Group::Overflow].payload, Totals::new(4, 0));
        let by_cgroup = group(&snapshot, Grouping::Cgroup, &live);
        assert_eq!(by_cgroup[&Group::Cgroup(50)].payload, Totals::new(40, 11));

        let by_process = group(&snapshot, Grouping::Process, &live);
        assert_eq!(by_process[&Group::Process(101)].payload, Totals::new(30, 3));
        assert_eq!(by_process[&Group::UnknownOwner].payload, Totals::new(0, 7));
        assert_eq!(
            by_process[&Group::ClosedSockets].payload,
            Totals::new(1000, 2000)
        );
    }
}
