//! The daemon's handles on the kernel maps: consistent snapshots for queries, and the one
//! map userspace writes (cookie → label id).
//!
//! Userspace never writes a map the kernel adds into (`SOCKETS`, `LABEL_TOTALS`, `COUNTERS`): a
//! whole-value write from here would lose the kernel's concurrent increments.
use std::collections::HashMap as StdHashMap;

use aya::maps::{Array, HashMap, IterableMap as _, MapData, MapError};
use sockstats_common::{
    protocol::MapFill, Counter, IfaceCounters, LabelIfaceKey, OwnerKey, SocketEntry, Totals,
    LABEL_TOTALS_MAP, OWNER_TOTALS_MAP, RULES_MAP, SOCKETS_MAP, SOCKET_LABELS_MAP,
};

use crate::{attribution::KernelSnapshot, sys::bpf_batch};

/// Attempts at a snapshot no `sock_release` fold interleaves with, before settling for one
/// that may miss the bytes of sockets that closed while it was taken (never count them twice).
const SNAPSHOT_ATTEMPTS: u32 = 8;

pub struct KernelMaps {
    pub(crate) sockets: HashMap<MapData, u64, SocketEntry>,
    pub(crate) socket_labels: HashMap<MapData, u64, u32>,
    pub(crate) label_totals: HashMap<MapData, LabelIfaceKey, IfaceCounters>,
    pub(crate) counters: Array<MapData, u64>,
    /// Tombstones of released sockets (LRU): cookie → label id.
    pub(crate) released: HashMap<MapData, u64, u32>,
    /// Labeling rules: uid or cgroup → label id. Written only by the daemon.
    pub(crate) rules: HashMap<MapData, OwnerKey, u32>,
    /// Which kinds of rules exist (one `u32` of bits). Written only by the daemon.
    pub(crate) rule_kinds: Array<MapData, u32>,
    /// Payload of closed sockets per uid and per cgroup.
    pub(crate) owner_totals: HashMap<MapData, OwnerKey, Totals>,
}

impl KernelMaps {
    /// Puts the socket `cookie` under `label_id`.
    pub fn set_label(&mut self, cookie: u64, label_id: u32) -> Result<(), MapError> {
        self.socket_labels.insert(cookie, label_id, 0)
    }

    /// Puts every socket of `cookies` under `label_id`, or, if a write fails, restores the
    /// labels the earlier ones had and returns the error.
    pub fn set_labels_all_or_nothing(
        &mut self,
        cookies: &[u64],
        label_id: u32,
    ) -> Result<(), MapError> {
        let mut done: Vec<(u64, Option<u32>)> = Vec::with_capacity(cookies.len());
        for cookie in cookies {
            let previous = self.socket_labels.get(cookie, 0).ok();
            if let Err(error) = self.set_label(*cookie, label_id) {
                for (cookie, previous) in done.into_iter().rev() {
                    let _ = match previous {
                        Some(label) => self.set_label(cookie, label),
                        None => self.remove_label(cookie).map(drop),
                    };
                }
                return Err(error);
            }
            done.push((*cookie, previous));
        }
        Ok(())
    }

    /// Takes any label off the socket `cookie`. Returns whether it had one.
    pub fn remove_label(&mut self, cookie: u64) -> Result<bool, MapError> {
        match self.socket_labels.remove(&cookie) {
            Ok(()) => Ok(true),
            Err(error) if is_not_found(&error) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Makes the kernel's rules exactly `rules` (uid or cgroup → label id): rules that went away
    /// are removed, new and changed ones written, then the kinds in use published.
    pub fn sync_rules(
        &mut self,
        rules: &std::collections::BTreeMap<OwnerKey, u32>,
    ) -> Result<(), MapError> {
        let present: Vec<OwnerKey> = self.rules.keys().collect::<Result<_, _>>()?;
        let mut kinds = 0;
        for key in rules.keys() {
            kinds |= 1 << key.kind;
        }
        // Publish new kinds before their rules and drop old kinds after theirs are gone: a
        // socket made meanwhile does one lookup too many, never one too few.
        let before = self.rule_kinds.get(&0, 0)?;
        self.rule_kinds.set(0, before | kinds, 0)?;
        for key in present {
            if !rules.contains_key(&key) {
                match self.rules.remove(&key) {
                    Err(error) if !is_not_found(&error) => return Err(error),
                    _ => {}
                }
            }
        }
        for (key, label) in rules {
            if self.rules.get(key, 0).ok() != Some(*label) {
                self.rules.insert(key, label, 0)?;
            }
        }
        self.rule_kinds.set(0, kinds, 0)
    }

    /// Entries and capacity of the per-socket and totals maps.
    #[must_use]
    pub fn fill(&self) -> Vec<MapFill> {
        fn fill<K: aya::Pod + Eq + std::hash::Hash, V: aya::Pod>(
            name: &str,
            map: &HashMap<MapData, K, V>,
        ) -> MapFill {
            MapFill {
                name: name.to_owned(),
                entries: map
                    .keys()
                    .flatten()
                    .collect::<std::collections::HashSet<K>>()
                    .len() as u64,
                capacity: map
                    .map()
                    .info()
                    .map_or(0, |info| u64::from(info.max_entries())),
            }
        }
        vec![
            fill(SOCKETS_MAP, &self.sockets),
            fill(SOCKET_LABELS_MAP, &self.socket_labels),
            fill(LABEL_TOTALS_MAP, &self.label_totals),
            fill(OWNER_TOTALS_MAP, &self.owner_totals),
            fill(RULES_MAP, &self.rules),
        ]
    }

    /// The label a released socket was folded under, while its tombstone lasts.
    #[must_use]
    pub fn released_label(&self, cookie: u64) -> Option<u32> {
        self.released.get(&cookie, 0).ok()
    }

    /// Number of live socket entries.
    #[must_use]
    pub fn live_sockets(&self) -> u64 {
        self.sockets
            .keys()
            .flatten()
            .collect::<std::collections::HashSet<u64>>()
            .len() as u64
    }

    /// The failure and event counters, indexed by [`Counter`].
    pub fn counters(&self) -> Result<[u64; Counter::COUNT as usize], MapError> {
        let mut counters = [0; Counter::COUNT as usize];
        for (slot, value) in counters.iter_mut().zip(self.counters.iter()) {
            *slot = value?;
        }
        Ok(counters)
    }

    fn read_once(&self) -> Result<(KernelSnapshot, bool), MapError> {
        // Order matters. `sock_release` bumps ReleasesStarted, deletes the socket's entry, folds
        // its bytes into LABEL_TOTALS, then bumps SocketsReleased. Reading the totals before the
        // entries, a socket is in the entries we read, or in the totals we read, or (while its
        // release overlaps this read) in neither: never in both. "Finished before" == "started
        // after" proves no release overlapped, so nothing was missed either.
        let finished_before = self.counters()?[Counter::SocketsReleased as usize];
        let label_totals: StdHashMap<LabelIfaceKey, IfaceCounters> =
            self.label_totals.iter().collect::<Result<_, _>>()?;
        let mut snapshot = KernelSnapshot {
            // Labels before entries: live sockets are folded under their label as they are
            // read. A socket made and labeled by a rule in between shows unlabeled in this
            // reply only; the next one has it under its label.
            socket_labels: read_all(&self.socket_labels)?,
            label_totals,
            owner_totals: read_all(&self.owner_totals)?,
            ..KernelSnapshot::default()
        };
        // Folded as read: no copy of every entry (see `attribution`).
        for_each(&self.sockets, |cookie, entry| {
            snapshot.add_socket(cookie, &entry);
        })?;
        snapshot.counters = self.counters()?;
        let consistent = snapshot.counters[Counter::ReleasesStarted as usize] == finished_before;
        Ok((snapshot, consistent))
    }

    /// Reads all maps, retrying while socket releases overlap the read.
    pub fn snapshot(&self) -> Result<KernelSnapshot, MapError> {
        let mut attempt = 1;
        loop {
            let (snapshot, consistent) = self.read_once()?;
            if consistent || attempt == SNAPSHOT_ATTEMPTS {
                if !consistent {
                    log::debug!("snapshot overlapped socket releases {attempt} times in a row");
                }
                return Ok(snapshot);
            }
            attempt += 1;
        }
    }
}

/// Calls `visit` with every entry of a hash map: in batches where the kernel can (a few
/// hundred syscalls for 100,000 sockets), else key by key. A deletion during a key-by-key walk
/// restarts the kernel's key iteration, so there (only) a key can be visited twice.
fn for_each<K: aya::Pod, V: aya::Pod>(
    map: &HashMap<MapData, K, V>,
    mut visit: impl FnMut(K, V),
) -> Result<(), MapError> {
    match bpf_batch::for_each(map.map().fd(), &mut visit) {
        Ok(()) => return Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::Unsupported => {}
        Err(io_error) => {
            return Err(MapError::SyscallError(aya::sys::SyscallError {
                call: "bpf_map_lookup_batch",
                io_error,
            }))
        }
    }
    for item in map.iter().filter_map(skip_vanished) {
        let (key, value) = item?;
        visit(key, value);
    }
    Ok(())
}

/// Every entry of a hash map (collecting into a map counts a repeated key once).
fn read_all<K, V>(map: &HashMap<MapData, K, V>) -> Result<StdHashMap<K, V>, MapError>
where
    K: aya::Pod + Eq + std::hash::Hash,
    V: aya::Pod,
{
    let mut entries = StdHashMap::new();
    for_each(map, |key, value| {
        entries.insert(key, value);
    })?;
    Ok(entries)
}

/// An entry deleted between "next key" and "lookup" is not an error, just gone.
fn skip_vanished<K, V>(item: Result<(K, V), MapError>) -> Option<Result<(K, V), MapError>> {
    match item {
        Err(ref error) if is_not_found(error) => None,
        other => Some(other),
    }
}

/// Does `error` say the key is not (or no longer) in the map?
fn is_not_found(error: &MapError) -> bool {
    match error {
        MapError::KeyNotFound => true,
        MapError::SyscallError(error) => error.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}
