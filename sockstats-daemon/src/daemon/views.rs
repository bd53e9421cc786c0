//! Kernel snapshots turned into names: label names (from the registry) and interface names
//! (from rtnetlink). Shared by `get_interfaces`, the metrics endpoint and the stats log.
use std::collections::BTreeMap;

use sockstats_common::{protocol::GroupCounts, IfaceCounters, Totals};

use super::state::Daemon;
use crate::{
    attribution::{self, KernelSnapshot},
    grouping::{Group, GroupTotals},
    labels::LabelRegistry,
    sys::owners,
};

/// The label name of `id`. Ids the registry does not know (a state dir reset under live pins)
/// stay visible as "#<id>": '#' is not allowed in label names, so this never clashes with one.
#[must_use]
pub fn label_name(registry: &LabelRegistry, id: u32) -> String {
    registry
        .name_of(id)
        .map_or_else(|| format!("#{id}"), str::to_owned)
}

/// The ids of every label, `unlabeled` included.
pub fn label_ids(daemon: &Daemon) -> Vec<u32> {
    let registry = daemon.registry.lock().expect("registry lock");
    std::iter::once(sockstats_common::UNLABELED_ID)
        .chain(registry.iter().map(|(id, _)| id))
        .collect()
}

/// Reads the kernel's accounts once (consistently, see
/// [`crate::kernel::KernelMaps::snapshot`]).
pub fn snapshot(daemon: &Daemon) -> Result<KernelSnapshot, String> {
    let label_ids = label_ids(daemon);
    daemon
        .kernel
        .lock()
        .expect("kernel lock")
        .snapshot(&label_ids)
        .map_err(|error| format!("cannot read the kernel maps: {error}"))
}

/// Every live socket state (for the views of live sockets: `get --by process`, validation).
pub fn live_sockets(daemon: &Daemon) -> Result<Vec<sockstats_common::SocketRecord>, String> {
    daemon
        .kernel
        .lock()
        .expect("kernel lock")
        .live_socket_records()
        .map_err(|error| format!("cannot list the live sockets: {error}"))
}

/// Every label (registered ones included, even without traffic) → interface name → counters.
#[derive(Debug, Default)]
pub struct NamedTotals {
    pub labels: BTreeMap<String, BTreeMap<String, IfaceCounters>>,
    /// The snapshot they come from (counters, overflow).
    pub snapshot: KernelSnapshot,
}

impl NamedTotals {
    /// Payload bytes per label over all interfaces.
    #[must_use]
    pub fn payload_per_label(&self) -> BTreeMap<String, Totals> {
        self.labels
            .iter()
            .map(|(label, interfaces)| {
                let mut total = Totals::default();
                for counters in interfaces.values() {
                    total.add(counters.payload);
                }
                (label.clone(), total)
            })
            .collect()
    }
}

/// Reads the maps, refreshes interface names over rtnetlink and names everything.
pub fn named_totals(daemon: &Daemon) -> Result<NamedTotals, String> {
    let snapshot = snapshot(daemon)?;
    let per_label = attribution::per_label_interface(&snapshot);
    let mut names = daemon.interfaces.lock().expect("interfaces lock");
    names.refresh();
    let registry = daemon.registry.lock().expect("registry lock");
    let mut labels: BTreeMap<String, BTreeMap<String, IfaceCounters>> = registry
        .iter()
        .map(|(_, name)| (name.to_owned(), BTreeMap::new()))
        .collect();
    for (id, by_interface) in per_label {
        let interfaces = labels.entry(label_name(&registry, id)).or_default();
        for (interface, counters) in by_interface {
            // Two keys can share a name (an interface removed and another made with its
            // name): their bytes add up under it.
            interfaces
                .entry(names.name_of(&interface))
                .or_default()
                .add(&counters);
        }
    }
    Ok(NamedTotals { labels, snapshot })
}

/// Names the groups of a grouping: label names, user names, cgroup paths, `<pid> (<comm>)`,
/// and names in parentheses for the groups no owner has. Groups that end up with one name
/// (two removed cgroups, say) add up under it.
#[must_use]
pub fn group_names(
    daemon: &Daemon,
    groups: BTreeMap<Group, GroupTotals>,
) -> BTreeMap<String, GroupCounts> {
    let cgroup_paths = groups
        .keys()
        .any(|group| matches!(group, Group::Cgroup(_)))
        .then(|| daemon.cgroups.paths_by_id());
    // Only label groups need the registry; user and process names (NSS, /proc) are looked up
    // without holding it.
    let registry = groups
        .keys()
        .any(|group| matches!(group, Group::Label(_)))
        .then(|| daemon.registry.lock().expect("registry lock"));
    let mut named: BTreeMap<String, GroupCounts> = BTreeMap::new();
    for (group, totals) in groups {
        let name = match group {
            Group::Label(id) => label_name(registry.as_ref().expect("locked for labels"), id),
            Group::Uid(uid) => owners::user_name(uid),
            Group::Cgroup(id) => cgroup_paths
                .as_ref()
                .and_then(|paths| paths.get(&id).cloned())
                .unwrap_or_else(|| format!("(removed cgroup {id})")),
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
    }
    named
}
