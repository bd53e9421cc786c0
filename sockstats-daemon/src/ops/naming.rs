//! Kernel snapshots turned into names: label names (from the registry) and interface names
//! (from rtnetlink). Shared by the `get` ops, the metrics endpoint and the stats log.
use std::collections::{BTreeMap, BTreeSet};

use sockstats_common::{
    protocol::{GroupCounts, Grouping},
    IfaceCounters, Totals,
};

use super::Refusal;
use crate::{
    attribution::{self, KernelSnapshot},
    daemon::state::Daemon,
    grouping::{Group, GroupTotals},
    sys::owners,
};

/// Registered label names by id, to name label ids with [`label_name`].
pub type LabelNames = BTreeMap<u32, String>;

/// The label name of `id`. Ids the registry does not know (a state dir reset under live pins)
/// stay visible as "#<id>": '#' is not allowed in label names, so this never clashes with one.
#[must_use]
pub fn label_name(names: &LabelNames, id: u32) -> String {
    if id == sockstats_common::UNLABELED_ID {
        return sockstats_common::label_name::UNLABELED_NAME.to_owned();
    }
    names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"))
}

/// Reads the kernel's accounts once (consistently, see
/// [`crate::kernel::KernelMaps::snapshot`]), with the label names of that moment.
pub fn snapshot(daemon: &Daemon) -> Result<(KernelSnapshot, LabelNames), Refusal> {
    daemon.with_core(|core| {
        let snapshot = core
            .kernel
            .snapshot(&core.label_ids())
            .map_err(Refusal::ReadAccounts)?;
        Ok((snapshot, core.label_names()))
    })
}

/// Every live socket state (for the views of live sockets: `get --by process`, validation).
pub fn live_sockets(daemon: &Daemon) -> Result<Vec<sockstats_common::SocketRecord>, Refusal> {
    daemon.with_core(|core| {
        core.kernel
            .live_socket_records()
            .map_err(Refusal::ListSockets)
    })
}

/// Where bytes went, by name: an interface name and a destination name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamedRoute {
    pub interface: String,
    pub destination: String,
}

/// Every label (registered ones included, even without traffic) → route → counters.
#[derive(Debug, Default)]
pub struct NamedTotals {
    pub labels: BTreeMap<String, BTreeMap<NamedRoute, IfaceCounters>>,
    /// The snapshot they come from (counters, overflow).
    pub snapshot: KernelSnapshot,
}

impl NamedTotals {
    /// Payload bytes per label over all routes.
    #[must_use]
    pub fn payload_per_label(&self) -> BTreeMap<String, Totals> {
        self.labels
            .iter()
            .map(|(label, routes)| {
                let mut total = Totals::default();
                for counters in routes.values() {
                    total.add(counters.payload);
                }
                (label.clone(), total)
            })
            .collect()
    }

    /// Label → interface name → counters (over all destinations).
    #[must_use]
    pub fn by_interface(&self) -> BTreeMap<String, BTreeMap<String, IfaceCounters>> {
        self.by(|route| route.interface.clone())
    }

    /// Label → destination name → counters (over all interfaces).
    #[must_use]
    pub fn by_destination(&self) -> BTreeMap<String, BTreeMap<String, IfaceCounters>> {
        self.by(|route| route.destination.clone())
    }

    fn by(
        &self,
        part: impl Fn(&NamedRoute) -> String,
    ) -> BTreeMap<String, BTreeMap<String, IfaceCounters>> {
        self.labels
            .iter()
            .map(|(label, routes)| {
                let mut by: BTreeMap<String, IfaceCounters> = BTreeMap::new();
                for (route, counters) in routes {
                    by.entry(part(route)).or_default().add(counters);
                }
                (label.clone(), by)
            })
            .collect()
    }
}

/// Reads the maps, refreshes interface names over rtnetlink and names everything.
pub fn named_totals(daemon: &Daemon) -> Result<NamedTotals, Refusal> {
    let (snapshot, label_names) = snapshot(daemon)?;
    let per_label = attribution::per_label_route(&snapshot);
    let interfaces: BTreeSet<_> = per_label
        .values()
        .flat_map(BTreeMap::keys)
        .map(|route| route.interface)
        .collect();
    let interface_names = daemon.interfaces().refresh_and_name(interfaces);
    let destinations = &daemon.info().destinations;
    let mut labels: BTreeMap<String, BTreeMap<NamedRoute, IfaceCounters>> = label_names
        .values()
        .map(|name| (name.clone(), BTreeMap::new()))
        .collect();
    for (id, routes) in per_label {
        let named = labels.entry(label_name(&label_names, id)).or_default();
        for (route, counters) in routes {
            // Two keys can share a name (an interface removed and another made with its
            // name): their bytes add up under it.
            let route = NamedRoute {
                interface: interface_names[&route.interface].clone(),
                destination: destinations.name(route.destination),
            };
            named.entry(route).or_default().add(&counters);
        }
    }
    Ok(NamedTotals { labels, snapshot })
}

/// Names the groups of the grouping `by` (and, with `split_destinations`, splits each one's
/// bytes by destination name): label names, user names, cgroup paths, units,
/// containers, `<pid> (<comm>)`, and names in parentheses for the groups no owner has.
/// Groups that end up with one name (two removed cgroups, every cgroup of a unit) add up
/// under it.
#[must_use]
pub fn group_names(
    daemon: &Daemon,
    by: Grouping,
    label_names: &LabelNames,
    groups: BTreeMap<(Group, u32), GroupTotals>,
    split_destinations: bool,
) -> BTreeMap<String, GroupCounts> {
    let destinations = &daemon.info().destinations;
    let cgroup_paths = (by == Grouping::Cgroup).then(|| daemon.cgroups().paths_by_id());
    if matches!(by, Grouping::Unit | Grouping::Container) {
        // Name the cgroups made since the last walk; a failed rule write is the resolver's
        // to report and retry, not this reply's.
        if let Err(error) = crate::rules::sync::refresh_and_sync(daemon, true) {
            log::warn!("{error}");
        }
    }
    let workload = |id: u64| {
        let Some(names) = daemon.workloads().names(id) else {
            return format!("(unknown cgroup {id})");
        };
        if by == Grouping::Unit {
            names.unit.unwrap_or_else(|| "(no unit)".to_owned())
        } else {
            names
                .container
                .map_or_else(|| "(no container)".to_owned(), |c| c.display_name())
        }
    };
    let mut named: BTreeMap<String, GroupCounts> = BTreeMap::new();
    for ((group, destination), totals) in groups {
        let name = match group {
            Group::Label(id) => label_name(label_names, id),
            Group::Uid(uid) => owners::user_name(uid),
            Group::Cgroup(id) => match &cgroup_paths {
                Some(paths) => paths
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("(removed cgroup {id})")),
                None => workload(id),
            },
            Group::Process(tgid) => owners::process_name(tgid),
            Group::ClosedSockets => "(closed sockets)".to_owned(),
            Group::UnknownOwner => "(unknown owner)".to_owned(),
            Group::Overflow => "(overflow)".to_owned(),
            Group::OwnerOverflow => "(owner accounts full)".to_owned(),
        };
        let counts = named.entry(name).or_default();
        counts.tx_bytes = counts.tx_bytes.saturating_add(totals.payload.tx_bytes);
        counts.rx_bytes = counts.rx_bytes.saturating_add(totals.payload.rx_bytes);
        counts.live_sockets += totals.live_sockets;
        if split_destinations {
            let destination = destinations.name(destination);
            add_bytes(
                &mut counts.tx_bytes_by_destination,
                &destination,
                totals.payload.tx_bytes,
            );
            add_bytes(
                &mut counts.rx_bytes_by_destination,
                &destination,
                totals.payload.rx_bytes,
            );
        }
    }
    named
}

/// Adds `bytes` under `name` of a per-destination map, keeping names without bytes out of it.
pub fn add_bytes(map: &mut BTreeMap<String, u64>, name: &str, bytes: u64) {
    if bytes == 0 {
        return;
    }
    let entry = map.entry(name.to_owned()).or_default();
    *entry = entry.saturating_add(bytes);
}

/// Payload bytes as the protocol shows them.
#[must_use]
pub fn byte_counts(totals: Totals) -> sockstats_common::protocol::ByteCounts {
    sockstats_common::protocol::ByteCounts {
        tx_bytes: totals.tx_bytes,
        rx_bytes: totals.rx_bytes,
    }
}
