//! A kernel snapshot as history samples: one per kernel account (label, interface,
//! destination) and one per owner account (uid, cgroup, destination), each named by the
//! kernel's own key, so that a rename (of an
//! interface, of a cgroup) never makes bytes already recorded count again: only the series
//! the deltas go to follow the names.
use std::{
    collections::{BTreeSet, HashMap},
    hash::BuildHasher,
};

use sockstats_common::UNKNOWN_UID;

use super::store::{Sample, Series};
use crate::{
    attribution::{Interface, KernelSnapshot},
    destinations::DestinationNames,
    ops::naming::{label_name, LabelNames},
};

/// The series of unknown owners (sockets no task has used yet), in the uid dimension.
pub const UNKNOWN_OWNER: &str = "(unknown owner)";

/// The interfaces the snapshot's accounts name (for naming them in one go).
#[must_use]
pub fn interfaces(snapshot: &KernelSnapshot) -> BTreeSet<Interface> {
    snapshot.accounts.keys().map(Interface::of_key).collect()
}

/// How a snapshot's ids are named in its samples' series.
pub struct Names<'a, S, T> {
    pub labels: &'a LabelNames,
    /// The interfaces of [`interfaces`].
    pub interfaces: &'a HashMap<Interface, String, S>,
    /// By cgroup id; removed cgroups are named by their id.
    pub cgroup_paths: &'a HashMap<u64, String, T>,
    pub destinations: &'a DestinationNames,
}

/// Samples of `snapshot`, named with `names`.
#[must_use]
pub fn samples<S: BuildHasher, T: BuildHasher>(
    snapshot: &KernelSnapshot,
    names: &Names<'_, S, T>,
) -> Vec<Sample> {
    let mut samples = Vec::with_capacity(snapshot.accounts.len() + snapshot.owners.len());
    for (key, counters) in &snapshot.accounts {
        let interface = names
            .interfaces
            .get(&Interface::of_key(key))
            .cloned()
            .unwrap_or_else(|| format!("#{}", key.ifindex));
        samples.push(Sample {
            source: format!(
                "account {} {} {} {}",
                key.label, key.netns_cookie, key.ifindex, key.destination
            ),
            counters: [
                counters.payload.tx_bytes,
                counters.payload.rx_bytes,
                counters.wire_bytes.tx_bytes,
                counters.wire_bytes.rx_bytes,
            ],
            series: vec![Series {
                dimension: "label",
                key: label_name(names.labels, key.label),
                interface,
                destination: names.destinations.name(key.destination),
            }],
        });
    }
    for (key, totals) in &snapshot.owners {
        let uid = if key.uid == UNKNOWN_UID {
            UNKNOWN_OWNER.to_owned()
        } else {
            key.uid.to_string()
        };
        let cgroup = names
            .cgroup_paths
            .get(&key.cgroup_id)
            .cloned()
            .unwrap_or_else(|| format!("(removed cgroup {})", key.cgroup_id));
        let destination = names.destinations.name(key.destination);
        samples.push(Sample {
            source: format!("owner {} {} {}", key.uid, key.cgroup_id, key.destination),
            counters: [totals.payload.tx_bytes, totals.payload.rx_bytes, 0, 0],
            series: vec![
                Series {
                    dimension: "uid",
                    key: uid,
                    interface: String::new(),
                    destination: destination.clone(),
                },
                Series {
                    dimension: "cgroup",
                    key: cgroup,
                    interface: String::new(),
                    destination,
                },
            ],
        });
    }
    samples.sort_by(|a, b| a.source.cmp(&b.source));
    samples
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sockstats_common::{AccountKey, IfaceCounters, OwnerAccountKey, DESTINATION_INTERNET};

    use super::*;
    use crate::attribution::OwnerTotals;

    #[test]
    fn accounts_and_owners_of_two_destinations_are_two_sources() {
        let mut snapshot = KernelSnapshot::default();
        for destination in [0, DESTINATION_INTERNET] {
            snapshot.accounts.insert(
                AccountKey {
                    label: 1,
                    ifindex: 2,
                    destination,
                    ..AccountKey::default()
                },
                IfaceCounters::default(),
            );
            snapshot.owners.insert(
                OwnerAccountKey {
                    uid: 0,
                    cgroup_id: 9,
                    destination,
                },
                OwnerTotals::default(),
            );
        }
        let samples = samples(
            &snapshot,
            &Names {
                labels: &LabelNames::new(),
                interfaces: &HashMap::<Interface, String>::new(),
                cgroup_paths: &HashMap::<u64, String>::new(),
                destinations: &DestinationNames::from_networks(std::collections::BTreeMap::new()),
            },
        );
        let sources: BTreeSet<&str> = samples.iter().map(|s| s.source.as_str()).collect();
        assert_eq!(sources.len(), 4, "{sources:?}");
        let destinations: BTreeSet<&str> = samples
            .iter()
            .flat_map(|sample| &sample.series)
            .map(|series| series.destination.as_str())
            .collect();
        assert_eq!(
            destinations,
            BTreeSet::from([":unknown", "internet"]),
            "each series is named by its destination"
        );
    }
}
