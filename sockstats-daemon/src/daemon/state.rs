//! What every connection shares: the kernel maps, the label registry and fixed facts.
use std::{collections::BTreeMap, path::PathBuf, sync::Mutex, time::Instant};

use sockstats_common::Totals;

use sockstats_common::protocol::ProgramStatus;

use crate::{interfaces::InterfaceNames, kernel::KernelMaps, labels::LabelRegistry};

/// The kernel's final `tcp_info` counters of closed sockets, per label id (validation).
#[derive(Debug, Default)]
pub struct ClosedTcp {
    pub by_label: BTreeMap<u32, Totals>,
    pub sockets: u64,
}

/// Facts fixed at start, reported by `status`.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    pub programs: Vec<ProgramStatus>,
    pub cgroup_root: PathBuf,
    pub bpffs_dir: PathBuf,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub started: Instant,
}

/// Shared daemon state. No code holds `kernel` while taking another lock; `interfaces` is
/// taken before `registry`.
pub struct Daemon {
    pub kernel: Mutex<KernelMaps>,
    pub registry: Mutex<LabelRegistry>,
    /// Interface names, refreshed over rtnetlink every second and on each query.
    pub interfaces: Mutex<InterfaceNames>,
    /// Final TCP counters of tracked sockets destroyed since the daemon started.
    pub closed_tcp: Mutex<ClosedTcp>,
    pub info: DaemonInfo,
}
