//! A daemon over the in-memory kernel, for the ops' tests: a state dir and a cgroup "mount"
//! in temporary directories, fixed interface names, and the fake kept where the test can
//! reach it.
use std::{
    collections::{BTreeMap, HashMap},
    net::{TcpListener, TcpStream},
    os::fd::{BorrowedFd, OwnedFd},
    path::Path,
    sync::{Arc, Mutex},
    time::Instant,
};

use sockstats_common::{protocol::MapFill, OwnerKey, SocketRecord, Totals};

use super::Peer;
use crate::{
    attribution::KernelSnapshot,
    cgroup::CgroupTree,
    daemon::state::{Core, Daemon, DaemonInfo},
    interfaces::InterfaceNames,
    kernel::{
        fake::FakeKernel,
        interface::{Counters, ProgramRunStats},
        AccessError, Kernel, LabelError,
    },
    labels::LabelRegistry,
    rules::RuleSet,
    sys::sock_diag::TcpCounters,
    workloads::Workloads,
};

/// The daemon's network namespace cookie in the fixed interface table.
pub const HOST_NETNS: u64 = 1;

/// Duplicates borrowed fds, as if a client had passed them.
pub fn fds_of(fds: &[BorrowedFd<'_>]) -> Vec<OwnedFd> {
    fds.iter()
        .map(|fd| fd.try_clone_to_owned().unwrap())
        .collect()
}

/// A peer of `uid` on a connection of its own.
#[must_use]
pub fn peer(uid: u32) -> Peer {
    Peer {
        uid,
        connection: u64::from(uid) + 100,
    }
}

/// A fake kernel the daemon owns and the test can still reach.
#[derive(Clone, Default)]
pub struct SharedFake(pub Arc<Mutex<FakeKernel>>);

impl SharedFake {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeKernel> {
        self.0.lock().unwrap()
    }
}

impl Kernel for SharedFake {
    fn snapshot(&self, label_ids: &[u32]) -> Result<KernelSnapshot, AccessError> {
        self.lock().snapshot(label_ids)
    }
    fn label_of(&self, fd: BorrowedFd<'_>, cookie: u64) -> Result<u32, LabelError> {
        self.lock().label_of(fd, cookie)
    }
    fn relabel(
        &mut self,
        fd: BorrowedFd<'_>,
        cookie: u64,
        label_id: u32,
    ) -> Result<(), LabelError> {
        self.lock().relabel(fd, cookie, label_id)
    }
    fn sync_rules(&mut self, rules: &BTreeMap<OwnerKey, u32>) -> Result<(), AccessError> {
        self.lock().sync_rules(rules)
    }
    fn counters(&self) -> Result<Counters, AccessError> {
        self.lock().counters()
    }
    fn live_sockets(&self, label_ids: &[u32]) -> u64 {
        self.lock().live_sockets(label_ids)
    }
    fn fill(&self) -> Vec<MapFill> {
        self.lock().fill()
    }
    fn closed_tcp_counters(&self) -> Result<HashMap<u32, Totals>, AccessError> {
        self.lock().closed_tcp_counters()
    }
    fn live_socket_records(&self) -> Result<Vec<SocketRecord>, AccessError> {
        self.lock().live_socket_records()
    }
    fn take_closed_sockets(&mut self) -> Vec<sockstats_common::ClosedSocket> {
        self.lock().take_closed_sockets()
    }
    fn live_tcp_counters(&self) -> Result<Vec<TcpCounters>, AccessError> {
        self.lock().live_tcp_counters()
    }
    fn program_stats(&self) -> HashMap<u32, ProgramRunStats> {
        self.lock().program_stats()
    }
}

/// One test's daemon.
pub struct Fixture {
    pub daemon: Arc<Daemon>,
    pub kernel: SharedFake,
    /// The state dir and the cgroup mount (`cgroups/`, accounted subtree `cgroups/accounted`).
    pub dir: tempfile::TempDir,
    /// Keeps the listener of [`Fixture::tcp_socket`]'s connections open.
    listener: TcpListener,
}

impl Fixture {
    #[must_use]
    pub fn new() -> Self {
        Self::with_info(|_| {})
    }

    /// As [`Fixture::new`], with facts of `DaemonInfo` changed by `change`.
    #[must_use]
    pub fn with_info(change: impl FnOnce(&mut DaemonInfo)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mount = dir.path().join("cgroups");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(mount.join("accounted")).unwrap();
        let kernel = SharedFake::default();
        let core = Core {
            labels: LabelRegistry::open(&state).unwrap(),
            rules: RuleSet::open(&state, Vec::new()).unwrap(),
            kernel: Box::new(kernel.clone()),
        };
        let interfaces =
            InterfaceNames::with_names(HOST_NETNS, &[((7, 3), "veth1")], &[(7, "blue")])
                .with_host_links(&[(1, "lo"), (2, "eth0")], Some(2));
        let mut info = DaemonInfo {
            programs: Vec::new(),
            payload_hooks: sockstats_common::protocol::PayloadHooks::default(),
            kernel_limits: Vec::new(),
            cgroup_root: mount.join("accounted").canonicalize().unwrap(),
            bpffs_dir: dir.path().join("bpffs"),
            state_dir: state,
            socket: dir.path().join("sockstats.sock"),
            validate_closed: false,
            states_by_cookie: false,
            started: Instant::now(),
            config: crate::config::Config::default(),
            destinations: crate::destinations::DestinationNames::from_networks(
                [("vpc".to_owned(), sockstats_common::FIRST_NAMED_DESTINATION)].into(),
            ),
        };
        change(&mut info);
        let workloads = Workloads::open(dir.path().join("runtimes"), &info.state_dir);
        let daemon = Arc::new(Daemon::new(
            core,
            interfaces,
            CgroupTree::new(mount),
            workloads,
            info,
        ));
        Self {
            daemon,
            kernel,
            dir,
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
        }
    }

    /// Runs `inspect` on the fake kernel.
    pub fn with_kernel<R>(&self, inspect: impl FnOnce(&mut FakeKernel) -> R) -> R {
        inspect(&mut self.kernel.lock())
    }

    /// A connected TCP socket (its peer is accepted and dropped).
    #[must_use]
    pub fn tcp_socket(&self) -> TcpStream {
        let stream = TcpStream::connect(self.listener.local_addr().unwrap()).unwrap();
        drop(self.listener.accept().unwrap());
        stream
    }

    /// Makes the cgroup `path` (relative to the mount) in the fake cgroup tree.
    pub fn make_cgroup(&self, path: &str) {
        std::fs::create_dir_all(self.mount().join(path.trim_start_matches('/'))).unwrap();
    }

    /// The fake cgroup2 mount.
    #[must_use]
    pub fn mount(&self) -> std::path::PathBuf {
        self.dir.path().join("cgroups")
    }

    #[must_use]
    pub fn state_dir(&self) -> &Path {
        &self.daemon.info().state_dir
    }

    /// Gives the daemon a usage history in its state dir, on `clock`, recorded every minute.
    pub fn with_history(
        &self,
        clock: &crate::history::clock::FakeClock,
    ) -> Arc<crate::history::History> {
        let (history, opened) = crate::history::History::open(
            self.state_dir(),
            &self.daemon.info().config,
            "epoch".to_owned(),
            std::time::Duration::from_secs(60),
            Arc::new(clock.clone()),
        );
        opened.unwrap();
        let history = Arc::new(history);
        self.daemon.set_history(Arc::clone(&history));
        history
    }

    /// Adds payload bytes to the fake kernel's account of `label` on host interface `ifindex`.
    pub fn add_payload(&self, label: u32, ifindex: u32, tx: u64, rx: u64) {
        self.with_kernel(|kernel| {
            kernel
                .snapshot
                .accounts
                .entry(sockstats_common::AccountKey {
                    label,
                    ifindex,
                    netns_cookie: HOST_NETNS,
                    ..sockstats_common::AccountKey::default()
                })
                .or_insert_with(sockstats_common::IfaceCounters::default)
                .payload
                .add(Totals::new(tx, rx));
        });
    }
}
