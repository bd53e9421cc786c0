//! What the daemon's operations need from the kernel, as one small trait: read the accounts,
//! relabel a live socket, write the rules, read counters, program statistics and the live
//! sockets. [`crate::kernel::KernelMaps`] implements it over the pinned maps (aya and
//! [`crate::sys`]); [`crate::kernel::fake::FakeKernel`] in memory, so that the operations'
//! logic is tested by plain `cargo test`, without root.
//!
//! This module owns the contract only: no syscalls here.
use std::{
    collections::{BTreeMap, HashMap},
    io,
    os::fd::BorrowedFd,
};

use sockstats_common::{protocol::MapFill, ClosedSocket, Counter, OwnerKey, SocketRecord, Totals};

use crate::{attribution::KernelSnapshot, sys::relabel::RelabelError, sys::sock_diag::TcpCounters};

/// The failure and event counters, indexed by [`Counter`].
pub type Counters = [u64; Counter::COUNT as usize];

/// A read or write of the kernel's maps (or a `sock_diag` dump) that failed.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(transparent)]
    Map(#[from] aya::maps::MapError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Why a socket could not be labeled.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error(transparent)]
    Relabel(#[from] RelabelError),
    #[error("cannot read the socket's state: {0}")]
    Read(#[source] io::Error),
}

/// How often a program ran and for how long (`kernel.bpf_stats_enabled`), by program id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramRunStats {
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// The kernel as the daemon's operations see it. Implementations must be usable from any
/// thread; the daemon calls them under its state lock, one caller at a time.
pub trait Kernel: Send {
    /// The accounts, owners, live-socket gauges of `label_ids` and counters at one moment.
    fn snapshot(&self, label_ids: &[u32]) -> Result<KernelSnapshot, AccessError>;

    /// The label the live socket `fd` (cookie `cookie`) has now.
    fn label_of(&self, fd: BorrowedFd<'_>, cookie: u64) -> Result<u32, LabelError>;

    /// Puts the live socket `fd` (cookie `cookie`) under `label_id`; the kernel moves its
    /// bytes. Unlabeling is relabeling to [`sockstats_common::UNLABELED_ID`].
    fn relabel(&mut self, fd: BorrowedFd<'_>, cookie: u64, label_id: u32)
        -> Result<(), LabelError>;

    /// Makes the kernel's rules exactly `rules` (uid or cgroup → label id).
    fn sync_rules(&mut self, rules: &BTreeMap<OwnerKey, u32>) -> Result<(), AccessError>;

    /// The failure and event counters.
    fn counters(&self) -> Result<Counters, AccessError>;

    /// Live sockets held by processes, summed over the gauges of `label_ids`.
    fn live_sockets(&self, label_ids: &[u32]) -> u64;

    /// Entries and capacity of the maps that can fill up.
    fn fill(&self) -> Vec<MapFill>;

    /// Final TCP counters of closed sockets per label id (validation).
    fn closed_tcp_counters(&self) -> Result<HashMap<u32, Totals>, AccessError>;

    /// Every live socket state: cookie, owner process, label, payload per destination, peer.
    fn live_socket_records(&self) -> Result<Vec<SocketRecord>, AccessError>;

    /// The sockets that closed since the last call: label, peer, payload (oldest first).
    fn take_closed_sockets(&mut self) -> Vec<ClosedSocket>;

    /// The kernel's own counters of the live TCP sockets of the daemon's network namespace
    /// (`sock_diag`).
    fn live_tcp_counters(&self) -> Result<Vec<TcpCounters>, AccessError>;

    /// Run statistics of every loaded program, by program id.
    fn program_stats(&self) -> HashMap<u32, ProgramRunStats>;
}
