//! What every connection shares: the kernel maps, the label registry and fixed facts.
use std::{path::PathBuf, sync::Mutex, time::Instant};

use sockstats_common::protocol::{PayloadHooks, ProgramStatus};

use crate::{
    interfaces::InterfaceNames, kernel::KernelMaps, labels::LabelRegistry, rules::RuleSet,
    sys::owners::CgroupTree,
};

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
    /// The labeling rules in force.
    pub rules: Mutex<RuleSet>,
    /// The cgroup v2 tree: rule paths to ids, ids to names.
    pub cgroups: CgroupTree,
    pub info: DaemonInfo,
}
