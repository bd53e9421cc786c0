//! What every connection shares: the kernel maps, the label registry and fixed facts.
use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    path::PathBuf,
    sync::Mutex,
    time::Instant,
};

use sockstats_common::Totals;

use sockstats_common::protocol::{PayloadHooks, ProgramStatus};

use crate::{
    interfaces::InterfaceNames, kernel::KernelMaps, labels::LabelRegistry, rules::RuleSet,
    sys::owners::CgroupTree,
};

/// The kernel's final `tcp_info` counters of closed sockets, per label id (validation).
#[derive(Debug, Default)]
pub struct ClosedTcp {
    pub by_label: BTreeMap<u32, Totals>,
    pub sockets: u64,
    /// Cookies of the most recently destroyed sockets, so a dump that still listed one is not
    /// counted twice (bounded: the oldest are forgotten first).
    pub recent: HashSet<u64>,
    pub recent_order: VecDeque<u64>,
    /// Times the kernel dropped destroy notifications (the receive buffer overflowed).
    pub notifications_lost: u64,
    /// Destroyed sockets whose tombstone was gone (evicted), so their label was unknown.
    pub without_tombstone: u64,
}

impl ClosedTcp {
    /// Most destroyed cookies remembered.
    const RECENT: usize = 65_536;

    /// Records a destroyed socket's final counters under `label`.
    pub fn record(&mut self, cookie: u64, label: u32, totals: Totals) {
        self.by_label.entry(label).or_default().add(totals);
        self.sockets += 1;
        if self.recent.insert(cookie) {
            self.recent_order.push_back(cookie);
            if self.recent_order.len() > Self::RECENT {
                if let Some(oldest) = self.recent_order.pop_front() {
                    self.recent.remove(&oldest);
                }
            }
        }
    }
}

/// Facts fixed at start, reported by `status`.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    pub programs: Vec<ProgramStatus>,
    /// The payload hook set chosen at start, and why.
    pub payload_hooks: PayloadHooks,
    /// What the running kernel cannot do that a newer one can.
    pub kernel_limits: Vec<String>,
    pub cgroup_root: PathBuf,
    pub bpffs_dir: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// `--validate-closed`: validation follows destroyed TCP sockets too.
    pub validate_closed: bool,
    pub started: Instant,
}

/// Shared daemon state. Lock order: `rules`, then `interfaces`, then `registry`, then
/// `kernel`; no code holds `kernel` while taking another lock.
pub struct Daemon {
    pub kernel: Mutex<KernelMaps>,
    pub registry: Mutex<LabelRegistry>,
    /// Interface names, refreshed over rtnetlink every second and on each query.
    pub interfaces: Mutex<InterfaceNames>,
    /// Final TCP counters of tracked sockets destroyed since the daemon started.
    pub closed_tcp: Mutex<ClosedTcp>,
    /// The labeling rules in force.
    pub rules: Mutex<RuleSet>,
    /// The cgroup v2 tree: rule paths to ids, ids to names.
    pub cgroups: CgroupTree,
    pub info: DaemonInfo,
}
