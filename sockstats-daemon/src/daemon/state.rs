//! What every connection and task shares, behind methods: the label registry, the rules and
//! the kernel under one lock ([`Core`]), interface names under another ([`Interfaces`]), and
//! facts fixed at start.
//!
//! Lock order, enforced by how the types are built: `core`, then `interfaces`. The core lock
//! is only taken by [`Daemon::with_core`]; the interfaces lock only inside [`Interfaces`]'
//! methods, which call nothing outside [`InterfaceNames`] and return no guard. So nothing can
//! be locked while `interfaces` is held, and the only nesting possible is `core` →
//! `interfaces`: two threads can never wait for each other. (A `with_core` inside `with_core`
//! would block its own thread on the first call of that path, which any test of it shows.)
use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::Instant,
};

use sockstats_common::{
    protocol::{PayloadHooks, ProgramStatus},
    UNLABELED_ID,
};

use crate::{
    attribution::Interface, cgroup::CgroupTree, config::Config, history::History,
    interfaces::InterfaceNames, kernel::Kernel, labels::LabelRegistry, otlp::ExporterStatus,
    peers::ClosedPeers, rules::RuleSet, workloads::Workloads,
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
    /// `--validate-closed`: validation follows destroyed TCP sockets too (never where socket
    /// states are kept by cookie: a socket's state is gone at its release, before `TCP_CLOSE`).
    pub validate_closed: bool,
    /// Socket states are kept in a hash by cookie, not in socket storage.
    pub states_by_cookie: bool,
    pub started: Instant,
    /// What the config file says (`--config`), or the defaults.
    pub config: Config,
    /// The names of the destination ids (classes and the networks ever configured).
    pub destinations: crate::destinations::DestinationNames,
}

/// The data that changes together: a label id is made in the registry, then used in the
/// kernel (a relabel, a rule). One lock, so a rule sync and a relabel never interleave.
pub struct Core {
    pub labels: LabelRegistry,
    /// The labeling rules in force.
    pub rules: RuleSet,
    pub kernel: Box<dyn Kernel>,
}

impl Core {
    /// The ids of every label, `unlabeled` included.
    #[must_use]
    pub fn label_ids(&self) -> Vec<u32> {
        std::iter::once(UNLABELED_ID)
            .chain(self.labels.iter().map(|(id, _)| id))
            .collect()
    }

    /// Registered label names by id (without `unlabeled`).
    #[must_use]
    pub fn label_names(&self) -> BTreeMap<u32, String> {
        self.labels
            .iter()
            .map(|(id, name)| (id, name.to_owned()))
            .collect()
    }
}

/// Interface names, refreshed over rtnetlink every second and on queries. A leaf lock: its
/// methods never call out while holding it.
pub struct Interfaces(Mutex<InterfaceNames>);

impl Interfaces {
    #[must_use]
    pub fn new(names: InterfaceNames) -> Self {
        Self(Mutex::new(names))
    }

    fn lock(&self) -> MutexGuard<'_, InterfaceNames> {
        // A panic while naming leaves the names as they were: still usable.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Re-reads the names over rtnetlink.
    pub fn refresh(&self) -> std::io::Result<()> {
        self.lock().refresh()
    }

    /// Re-reads the names, then returns the display name of each of `interfaces`.
    pub fn refresh_and_name(
        &self,
        interfaces: impl IntoIterator<Item = Interface>,
    ) -> HashMap<Interface, String> {
        let mut names = self.lock();
        if let Err(error) = names.refresh() {
            log::warn!("cannot list interfaces over rtnetlink: {error}");
        }
        interfaces
            .into_iter()
            .map(|interface| {
                let name = names.name_of(&interface);
                (interface, name)
            })
            .collect()
    }

    /// The default-route interface now, after re-reading the names.
    #[must_use]
    pub fn current_interface(&self) -> Option<String> {
        let mut names = self.lock();
        if let Err(error) = names.refresh() {
            log::warn!("cannot list interfaces over rtnetlink: {error}");
        }
        names.current_interface()
    }

    /// The default-route interface and the names of the daemon's namespace's interfaces, as
    /// of the last refresh.
    #[must_use]
    pub fn host_links(&self) -> (Option<String>, Vec<String>) {
        let names = self.lock();
        (names.current_interface(), names.host_link_names())
    }
}

/// The shared daemon state.
pub struct Daemon {
    core: Mutex<Core>,
    interfaces: Interfaces,
    /// The cgroup v2 tree: rule paths to ids, ids to names, and the `sockstats run` cgroups
    /// left to remove once empty (a leaf lock inside; its methods only touch the file system).
    cgroups: CgroupTree,
    /// Every cgroup's unit and container, also of removed cgroups (a leaf lock inside).
    workloads: Workloads,
    /// What the OTLP exporter last published (a leaf lock inside).
    exporter: ExporterStatus,
    info: DaemonInfo,
    /// The usage history, once opened (set once at start; a daemon without one answers
    /// `history` with an error).
    history: OnceLock<Arc<History>>,
    /// The peers of the sockets closed since the daemon started (taken before the core's, never
    /// while holding it).
    closed_peers: Mutex<ClosedPeers>,
}

impl Daemon {
    #[must_use]
    pub fn new(
        core: Core,
        interfaces: InterfaceNames,
        cgroups: CgroupTree,
        workloads: Workloads,
        info: DaemonInfo,
    ) -> Self {
        Self {
            core: Mutex::new(core),
            interfaces: Interfaces::new(interfaces),
            cgroups,
            workloads,
            exporter: ExporterStatus::default(),
            info,
            history: OnceLock::new(),
            closed_peers: Mutex::new(ClosedPeers::default()),
        }
    }

    /// Takes the records of the sockets closed since the last call out of the kernel and adds
    /// them to their labels' peers.
    pub fn take_closed_sockets(&self) {
        drop(self.closed_peers());
    }

    /// The peers of the sockets closed since the daemon started, up to date: the records the
    /// kernel has are taken in while the table is held, so nothing is added until the guard
    /// goes.
    pub fn closed_peers(&self) -> MutexGuard<'_, ClosedPeers> {
        let mut table = self
            .closed_peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let closed = self.with_core(|core| core.kernel.take_closed_sockets());
        table.add(&closed);
        table
    }

    /// Gives the daemon its history (once; later calls are ignored).
    pub fn set_history(&self, history: Arc<History>) {
        let _ = self.history.set(history);
    }

    /// The usage history, if the daemon has one.
    #[must_use]
    pub fn history(&self) -> Option<&Arc<History>> {
        self.history.get()
    }

    /// Runs `work` with the core locked. Keep it short: every request waits for it.
    pub fn with_core<R>(&self, work: impl FnOnce(&mut Core) -> R) -> R {
        // The core's parts stay consistent across a panic (each change is one call on one
        // of them), so a poisoned lock is taken over.
        let mut core = self
            .core
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(&mut core)
    }

    #[must_use]
    pub fn interfaces(&self) -> &Interfaces {
        &self.interfaces
    }

    #[must_use]
    pub fn cgroups(&self) -> &CgroupTree {
        &self.cgroups
    }

    /// The OTLP exporter's state (empty when none runs).
    #[must_use]
    pub fn exporter(&self) -> &ExporterStatus {
        &self.exporter
    }

    /// The units and containers of cgroups, as of the last walk of the cgroup tree
    /// ([`crate::rules::sync::refresh_and_sync`]).
    #[must_use]
    pub fn workloads(&self) -> &Workloads {
        &self.workloads
    }

    #[must_use]
    pub fn info(&self) -> &DaemonInfo {
        &self.info
    }
}
