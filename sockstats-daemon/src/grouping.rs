//! Grouping arithmetic: payload bytes per uid, cgroup, process or label, from one kernel
//! snapshot. Pure functions, so tests need no kernel; the names come from [`crate::sys::owners`].
//!
//! Every grouping covers the same bytes, so each one's groups sum to the same total: live
//! sockets count for their owner, closed sockets for the owner the kernel folded them under
//! (uid and cgroup; the process of a closed socket is not kept, so those bytes are one group
//! of their own), and bytes of sockets the kernel could not track are one group too.
use std::collections::BTreeMap;

use sockstats_common::{protocol::Grouping, Counter, OwnerKey, OwnerKind, Totals, UNKNOWN_UID};

use crate::attribution::{per_label, KernelSnapshot};

/// One group of a grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Label(u32),
    Uid(u32),
    Cgroup(u64),
    Process(u32),
    /// Closed sockets, in the process grouping (their process is not kept).
    ClosedSockets,
    /// Sockets made from a packet and closed (or not yet used) before a task used them.
    UnknownOwner,
    /// Sockets the kernel could not track because a map was full (`overflow` of `get`).
    Overflow,
    /// Closed sockets whose owner totals were full (uid and cgroup groupings only).
    OwnerOverflow,
}

/// Bytes and live sockets of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupTotals {
    pub payload: Totals,
    pub live_sockets: u64,
}

/// Payload bytes per group of `by`.
#[must_use]
pub fn group(snapshot: &KernelSnapshot, by: Grouping) -> BTreeMap<Group, GroupTotals> {
    let mut out: BTreeMap<Group, GroupTotals> = BTreeMap::new();
    if by == Grouping::Label {
        for (label, sockets) in &snapshot.live_sockets_by_label {
            out.entry(Group::Label(*label)).or_default().live_sockets += sockets;
        }
        // Closed and live bytes per label, by the same arithmetic as `get`.
        for (label, payload) in per_label(snapshot) {
            out.entry(Group::Label(label)).or_default().payload = payload;
        }
    } else {
        for (owner, live) in &snapshot.live_owners {
            let group = match by {
                _ if owner.tgid == 0 => Group::UnknownOwner,
                Grouping::Uid => Group::Uid(owner.uid),
                Grouping::Cgroup => Group::Cgroup(owner.cgroup_id),
                Grouping::Process | Grouping::Label => Group::Process(owner.tgid),
            };
            let totals = out.entry(group).or_default();
            totals.live_sockets += live.sockets;
            totals.payload.add(live.payload);
        }
        closed_by_owner(snapshot, by, &mut out);
    }
    let overflow = snapshot.overflow();
    if overflow != Totals::default() {
        out.entry(Group::Overflow).or_default().payload = overflow;
    }
    out
}

fn closed_by_owner(
    snapshot: &KernelSnapshot,
    by: Grouping,
    out: &mut BTreeMap<Group, GroupTotals>,
) {
    if by == Grouping::Process {
        let mut closed = Totals::default();
        for counters in snapshot.label_totals.values() {
            closed.add(counters.payload);
        }
        if closed != Totals::default() {
            out.entry(Group::ClosedSockets)
                .or_default()
                .payload
                .add(closed);
        }
        return;
    }
    let kind = if by == Grouping::Uid {
        OwnerKind::Uid
    } else {
        OwnerKind::Cgroup
    };
    for (key, payload) in &snapshot.owner_totals {
        if key.kind != kind as u32 {
            continue;
        }
        let group = match kind {
            OwnerKind::Uid if key == &OwnerKey::uid(UNKNOWN_UID) => Group::UnknownOwner,
            OwnerKind::Uid => Group::Uid(u32::try_from(key.id).unwrap_or(UNKNOWN_UID)),
            OwnerKind::Cgroup if key.id == 0 => Group::UnknownOwner,
            OwnerKind::Cgroup => Group::Cgroup(key.id),
        };
        out.entry(group).or_default().payload.add(*payload);
    }
    let owner_overflow = if kind == OwnerKind::Uid {
        Totals::new(
            snapshot.counter(Counter::UidOverflowTxBytes),
            snapshot.counter(Counter::UidOverflowRxBytes),
        )
    } else {
        Totals::new(
            snapshot.counter(Counter::CgroupOverflowTxBytes),
            snapshot.counter(Counter::CgroupOverflowRxBytes),
        )
    };
    if owner_overflow != Totals::default() {
        out.entry(Group::OwnerOverflow).or_default().payload = owner_overflow;
    }
}

/// What the groups of `by` cover, in words (the `covers` of a `get_by` reply).
#[must_use]
pub const fn covers(by: Grouping) -> &'static str {
    match by {
        Grouping::Label => "live and closed sockets, by label",
        Grouping::Uid | Grouping::Cgroup => {
            "live and closed sockets, by the uid or cgroup of the task that made the socket (for accepted sockets and sockets older than the daemon: the first task that moved bytes on it)"
        }
        Grouping::Process => {
            "live sockets by the process that made them; the bytes of closed sockets are in \"(closed sockets)\", as processes are not kept once their sockets close"
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sockstats_common::{IfaceCounters, LabelIfaceKey, SocketEntry, UNKNOWN_SLOT};

    use super::*;

    fn live(uid: u32, cgroup_id: u64, tgid: u32, tx: u64, rx: u64) -> SocketEntry {
        let mut entry = SocketEntry {
            uid,
            cgroup_id,
            tgid,
            ..SocketEntry::default()
        };
        entry.slots[UNKNOWN_SLOT as usize].counters.payload = Totals::new(tx, rx);
        entry
    }

    fn snapshot() -> KernelSnapshot {
        let mut snapshot = KernelSnapshot {
            socket_labels: HashMap::from([(2, 5)]),
            label_totals: HashMap::from([(
                LabelIfaceKey {
                    label: 5,
                    ifindex: 1,
                    netns_cookie: 1,
                },
                IfaceCounters {
                    payload: Totals::new(1000, 2000),
                    ..IfaceCounters::default()
                },
            )]),
            owner_totals: HashMap::from([
                (OwnerKey::uid(33), Totals::new(900, 2000)),
                (OwnerKey::uid(UNKNOWN_UID), Totals::new(0, 0)),
                (OwnerKey::cgroup(60), Totals::new(900, 2000)),
            ]),
            ..KernelSnapshot::default()
        };
        for (cookie, entry) in [
            (1, live(0, 50, 100, 10, 1)),
            (2, live(33, 60, 200, 20, 2)),
            (3, live(33, 60, 201, 30, 3)),
            (4, live(0, 0, 0, 0, 7)), // made from a packet, no task yet
        ] {
            snapshot.add_socket(cookie, &entry);
        }
        snapshot.counters[Counter::OverflowTxBytes as usize] = 4;
        snapshot.counters[Counter::UidOverflowTxBytes as usize] = 100;
        snapshot.counters[Counter::CgroupOverflowTxBytes as usize] = 100;
        snapshot
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
        let snapshot = snapshot();
        let by_label = group(&snapshot, Grouping::Label);
        for by in [Grouping::Uid, Grouping::Cgroup, Grouping::Process] {
            assert_eq!(sum(&group(&snapshot, by)), sum(&by_label), "{by:?}");
        }
        assert_eq!(sum(&by_label), (Totals::new(1064, 2013), 4));
    }

    #[test]
    fn groups_live_and_closed_sockets_by_owner() {
        let snapshot = snapshot();
        let by_uid = group(&snapshot, Grouping::Uid);
        assert_eq!(by_uid[&Group::Uid(0)].payload, Totals::new(10, 1));
        assert_eq!(
            by_uid[&Group::Uid(33)],
            GroupTotals {
                payload: Totals::new(950, 2005),
                live_sockets: 2
            }
        );
        assert_eq!(by_uid[&Group::UnknownOwner].live_sockets, 1);
        assert_eq!(by_uid[&Group::OwnerOverflow].payload, Totals::new(100, 0));
        assert_eq!(by_uid[&Group::Overflow].payload, Totals::new(4, 0));

        let by_process = group(&snapshot, Grouping::Process);
        assert_eq!(by_process[&Group::Process(201)].payload, Totals::new(30, 3));
        assert_eq!(
            by_process[&Group::ClosedSockets].payload,
            Totals::new(1000, 2000)
        );

        let by_label = group(&snapshot, Grouping::Label);
        assert_eq!(
            by_label[&Group::Label(5)],
            GroupTotals {
                payload: Totals::new(1020, 2002),
                live_sockets: 1
            }
        );
    }
}
