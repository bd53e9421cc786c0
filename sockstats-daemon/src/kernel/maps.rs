//! The daemon's handles on the kernel maps: consistent snapshots of the accounts for queries,
//! the relabel of live sockets, the rules and the control values it writes.
//!
//! Userspace never writes a map the kernel adds into (accounts, socket states, counters): a
//! whole-value write from here would lose the kernel's concurrent increments. A relabel is a
//! request to the kernel program that moves the bytes (see [`crate::sys::relabel`]).
//!
//! [`KernelMaps`] is the real [`Kernel`]: the daemon's operations reach it through that trait.
use std::{
    collections::HashMap as StdHashMap,
    os::fd::{AsFd, BorrowedFd},
};

use aya::{
    maps::{
        lpm_trie::{Key, LpmTrie},
        Array, HashMap, IterableMap as _, MapData, MapError, PerCpuArray, PerCpuValues, RingBuf,
    },
    programs::ProgramFd,
};
use sockstats_common::{
    protocol::MapFill, AccountKey, Control, Counter, IfaceCounters, OwnerAccountKey, OwnerCounters,
    OwnerKey, SocketRecord, SocketState, Totals, ACCOUNT_KEYS_MAP, OWNER_KEYS_MAP, RULES_MAP,
    SOCKET_STATE_BY_COOKIE_MAP, VALIDATION_MAP,
};

use super::interface::{AccessError, Counters, Kernel, LabelError, ProgramRunStats};
use crate::{
    attribution::KernelSnapshot,
    sys::{bpf_batch, bpf_link, relabel, sk_storage, sock_diag},
};

/// Attempts at a snapshot no relabel's move interleaves with, before settling for one that
/// may count a moving socket's bytes under both labels for one reply.
const SNAPSHOT_ATTEMPTS: u32 = 8;

/// Where the live sockets' states are, to list them (views of live sockets only).
pub enum LiveStates {
    /// Socket-local storage, walked by the iterator program.
    SocketStorage { map: MapData, iterator: ProgramFd },
    /// The cookie-keyed hash of kernels before 5.11 ([`KernelMaps::states_by_cookie`]).
    ByCookie,
}

pub struct KernelMaps {
    pub(crate) accounts: PerCpuArray<MapData, IfaceCounters>,
    pub(crate) account_keys: HashMap<MapData, u32, AccountKey>,
    pub(crate) owner_accounts: PerCpuArray<MapData, OwnerCounters>,
    pub(crate) owner_keys: HashMap<MapData, u32, OwnerAccountKey>,
    pub(crate) label_sockets: PerCpuArray<MapData, u64>,
    pub(crate) counters: PerCpuArray<MapData, u64>,
    pub(crate) control: Array<MapData, u64>,
    /// The secret relabel requests carry ([`Control::Token`]).
    pub(crate) token: u64,
    pub(crate) validation: HashMap<MapData, u32, Totals>,
    /// Labeling rules: uid or cgroup → label id. Written only by the daemon.
    pub(crate) rules: HashMap<MapData, OwnerKey, u32>,
    /// Which kinds of rules exist (one `u32` of bits). Written only by the daemon.
    pub(crate) rule_kinds: Array<MapData, u32>,
    /// Remote address prefixes → destination id. Written only by the daemon, at start.
    pub(crate) destinations: LpmTrie<MapData, [u8; 16], u32>,
    /// Closing sockets' label, peer and payload, written by `sock_release`.
    pub(crate) closed_sockets: RingBuf<MapData>,
    pub(crate) live_states: LiveStates,
    /// The cookie-keyed states: in use before 5.11 only, but held on every kernel (the loaded
    /// programs refer to it).
    pub(crate) states_by_cookie: HashMap<MapData, u64, SocketState>,
}

/// A wrapping sum of the per-CPU shares of a value.
fn sum_counters(values: &PerCpuValues<IfaceCounters>) -> IfaceCounters {
    let mut total = IfaceCounters::default();
    for value in values.iter() {
        total.wrapping_add(value);
    }
    total
}

fn sum_u64(values: &PerCpuValues<u64>) -> u64 {
    values
        .iter()
        .fold(0u64, |sum, value| sum.wrapping_add(*value))
}

impl KernelMaps {
    /// Gives the programs this daemon's secret (only requests with it relabel) and whether
    /// closed TCP sockets are validated.
    pub fn set_control(&mut self, token: u64, validate_closed: bool) -> Result<(), MapError> {
        self.token = token;
        self.control.set(Control::Token as u32, token, 0)?;
        self.control.set(
            Control::ValidateClosed as u32,
            u64::from(validate_closed),
            0,
        )
    }

    /// Makes the destination trie hold exactly `entries` (prefix → destination id): new and
    /// changed entries are written before the ones no longer wanted are removed, so running
    /// programs never miss a prefix both configs have; where both configs together do not fit
    /// the trie, the stale ones go first.
    pub fn set_destinations(
        &mut self,
        entries: &[(sockstats_common::DestinationPrefix, u32)],
    ) -> Result<(), MapError> {
        let wanted: std::collections::HashSet<(u32, [u8; 16])> = entries
            .iter()
            .map(|(prefix, _)| (prefix.prefix_len, prefix.address))
            .collect();
        let existing: Vec<Key<[u8; 16]>> = self.destinations.keys().collect::<Result<_, _>>()?;
        let (kept, stale): (Vec<_>, Vec<_>) = existing
            .into_iter()
            .partition(|key| wanted.contains(&(key.prefix_len(), key.data())));
        let both = kept.len() + stale.len() + wanted.len().saturating_sub(kept.len());
        let remove_first = both > sockstats_common::MAX_DESTINATION_PREFIXES as usize;
        if remove_first {
            for key in &stale {
                self.destinations.remove(key)?;
            }
        }
        for (prefix, id) in entries {
            self.destinations
                .insert(&Key::new(prefix.prefix_len, prefix.address), id, 0)?;
        }
        if !remove_first {
            for key in &stale {
                self.destinations.remove(key)?;
            }
        }
        Ok(())
    }

    /// The label of the live socket `fd` (cookie `cookie`) now.
    pub fn label_of(&self, fd: BorrowedFd<'_>, cookie: u64) -> Result<u32, LabelError> {
        let state = match &self.live_states {
            LiveStates::SocketStorage { map, .. } => {
                sk_storage::lookup::<SocketState>(map.fd().as_fd(), fd).map_err(LabelError::Read)?
            }
            LiveStates::ByCookie => self.states_by_cookie.get(&cookie, 0).ok(),
        };
        Ok(state.map_or(sockstats_common::UNLABELED_ID, |s| s.current_label()))
    }

    /// Puts the socket `fd` (cookie `cookie`) under `label_id`: the kernel moves its bytes.
    pub fn relabel(
        &self,
        fd: BorrowedFd<'_>,
        cookie: u64,
        label_id: u32,
    ) -> Result<(), LabelError> {
        let attempts = relabel::relabel(fd, cookie, label_id, self.token)?;
        if attempts > 1 {
            log::debug!("socket {cookie} relabeled after {attempts} attempts (it was busy)");
        }
        Ok(())
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

    /// Entries and capacity of the maps that can fill up.
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
        let mut maps = vec![
            fill(ACCOUNT_KEYS_MAP, &self.account_keys),
            fill(OWNER_KEYS_MAP, &self.owner_keys),
            fill(RULES_MAP, &self.rules),
            fill(VALIDATION_MAP, &self.validation),
        ];
        if let LiveStates::ByCookie = &self.live_states {
            maps.push(fill(SOCKET_STATE_BY_COOKIE_MAP, &self.states_by_cookie));
        }
        maps
    }

    /// Live sockets held by processes (the sum of the per-label gauges).
    pub fn live_sockets(&self, label_ids: impl IntoIterator<Item = u32>) -> u64 {
        label_ids
            .into_iter()
            .filter_map(|label| self.label_sockets.get(&label, 0).ok())
            .map(|values| sum_u64(&values))
            .fold(0u64, u64::wrapping_add)
    }

    /// The failure and event counters, indexed by [`Counter`].
    pub fn counters(&self) -> Result<[u64; Counter::COUNT as usize], MapError> {
        let mut counters = [0; Counter::COUNT as usize];
        for (index, slot) in (0u32..).zip(counters.iter_mut()) {
            *slot = sum_u64(&self.counters.get(&index, 0)?);
        }
        Ok(counters)
    }

    /// Final TCP counters of closed sockets per label id (validation).
    pub fn validation(&self) -> Result<StdHashMap<u32, Totals>, MapError> {
        read_all(&self.validation)
    }

    /// Every live socket state: cookie, owner process, label and payload.
    pub fn live_socket_records(&self) -> Result<Vec<SocketRecord>, std::io::Error> {
        match &self.live_states {
            LiveStates::SocketStorage { map, iterator } => {
                let bytes = bpf_link::read_all(iterator.as_fd(), map.fd().as_fd())?;
                Ok(bytes
                    .chunks_exact(size_of::<SocketRecord>())
                    .filter_map(SocketRecord::from_bytes)
                    .collect())
            }
            LiveStates::ByCookie => {
                let mut records = StdHashMap::new();
                for_each(&self.states_by_cookie, |cookie, state| {
                    records.insert(cookie, state.records(cookie));
                })
                .map_err(std::io::Error::other)?;
                Ok(records.into_values().flatten().collect())
            }
        }
    }

    fn read_once(&self, label_ids: &[u32]) -> Result<(KernelSnapshot, bool), MapError> {
        let before = self.counters()?;
        let mut snapshot = KernelSnapshot::default();
        for (id, key) in read_all(&self.account_keys)? {
            let counters = sum_counters(&self.accounts.get(&id, 0)?);
            snapshot
                .accounts
                .entry(key)
                .or_default()
                .wrapping_add(&counters);
        }
        for (id, key) in read_all(&self.owner_keys)? {
            let values = self.owner_accounts.get(&id, 0)?;
            let owner = snapshot.owners.entry(key).or_default();
            for value in values.iter() {
                owner.payload.wrapping_add(value.payload);
                owner.live_sockets = owner.live_sockets.wrapping_add(value.live_sockets);
            }
        }
        for label in label_ids {
            let live = sum_u64(&self.label_sockets.get(label, 0)?);
            if live != 0 {
                snapshot.live_sockets_by_label.insert(*label, live);
            }
        }
        snapshot.counters = self.counters()?;
        let started = snapshot.counters[Counter::MovesStarted as usize];
        let consistent = started == before[Counter::MovesFinished as usize]
            && started == snapshot.counters[Counter::MovesFinished as usize];
        Ok((snapshot, consistent))
    }

    /// Reads the accounts, retrying while relabels move bytes. `label_ids`: the labels whose
    /// live-socket gauges to read.
    pub fn snapshot(&self, label_ids: &[u32]) -> Result<KernelSnapshot, MapError> {
        let mut attempt = 1;
        loop {
            let (snapshot, consistent) = self.read_once(label_ids)?;
            if consistent || attempt == SNAPSHOT_ATTEMPTS {
                if !consistent {
                    log::debug!("snapshot overlapped relabel moves {attempt} times in a row");
                }
                return Ok(snapshot);
            }
            attempt += 1;
        }
    }
}

/// Calls `visit` with every entry of a hash map: in batches where the kernel can (a few
/// hundred syscalls for 100,000 entries), else key by key. A deletion during a key-by-key walk
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

impl Kernel for KernelMaps {
    fn snapshot(&self, label_ids: &[u32]) -> Result<KernelSnapshot, AccessError> {
        Ok(KernelMaps::snapshot(self, label_ids)?)
    }

    fn label_of(&self, fd: BorrowedFd<'_>, cookie: u64) -> Result<u32, LabelError> {
        KernelMaps::label_of(self, fd, cookie)
    }

    fn relabel(
        &mut self,
        fd: BorrowedFd<'_>,
        cookie: u64,
        label_id: u32,
    ) -> Result<(), LabelError> {
        KernelMaps::relabel(self, fd, cookie, label_id)
    }

    fn sync_rules(
        &mut self,
        rules: &std::collections::BTreeMap<OwnerKey, u32>,
    ) -> Result<(), AccessError> {
        Ok(KernelMaps::sync_rules(self, rules)?)
    }

    fn counters(&self) -> Result<Counters, AccessError> {
        Ok(KernelMaps::counters(self)?)
    }

    fn live_sockets(&self, label_ids: &[u32]) -> u64 {
        KernelMaps::live_sockets(self, label_ids.iter().copied())
    }

    fn fill(&self) -> Vec<MapFill> {
        KernelMaps::fill(self)
    }

    fn closed_tcp_counters(&self) -> Result<StdHashMap<u32, Totals>, AccessError> {
        Ok(self.validation()?)
    }

    fn live_socket_records(&self) -> Result<Vec<SocketRecord>, AccessError> {
        Ok(KernelMaps::live_socket_records(self)?)
    }

    fn take_closed_sockets(&mut self) -> Vec<sockstats_common::ClosedSocket> {
        let mut closed = Vec::new();
        while let Some(item) = self.closed_sockets.next() {
            if let Some(record) = sockstats_common::ClosedSocket::from_bytes(&item) {
                closed.push(record);
            }
        }
        closed
    }

    fn live_tcp_counters(&self) -> Result<Vec<sock_diag::TcpCounters>, AccessError> {
        Ok(sock_diag::dump_tcp()?)
    }

    fn program_stats(&self) -> StdHashMap<u32, ProgramRunStats> {
        aya::programs::loaded_programs()
            .flatten()
            .map(|program| {
                let stats = ProgramRunStats {
                    run_count: program.run_count(),
                    run_time_ns: u64::try_from(program.run_time().as_nanos()).unwrap_or(u64::MAX),
                };
                (program.id(), stats)
            })
            .collect()
    }
}
