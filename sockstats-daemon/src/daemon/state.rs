//! What every connection shares: the kernel maps, the label registry and fixed facts.
use std::{path::PathBuf, sync::Mutex, time::Instant};

use sockstats_common::protocol::ProgramStatus;

use crate::{interfaces::InterfaceNames, kernel::KernelMaps, labels::LabelRegistry};

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
    pub info: DaemonInfo,
}
