//! An in-memory [`Kernel`] for tests: accounts, counters, live sockets and rules are plain
//! fields a test sets and reads back; relabels move a socket's bytes between accounts the way
//! the kernel program does, and chosen sockets or reads can be made to fail.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io,
    os::fd::BorrowedFd,
};

use sockstats_common::{
    protocol::MapFill, AccountKey, ClosedSocket, IfaceCounters, OwnerKey, SocketRecord, Totals,
    UNKNOWN_IFINDEX,
};

use super::interface::{AccessError, Counters, Kernel, LabelError, ProgramRunStats};
use crate::{attribution::KernelSnapshot, sys::relabel::RelabelError, sys::sock_diag::TcpCounters};

/// One live socket of the fake: its label and the payload it moved (charged to the
/// `:unknown` interface of its label's account).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FakeSocket {
    pub label: u32,
    pub payload: Totals,
    /// The owning process (0: unknown).
    pub tgid: u32,
    /// Its peer (address bytes, port) and how many it has had (`PEERS_*`).
    pub remote: [u8; 16],
    pub remote_port: u16,
    pub peers: u16,
    /// Released already (socket storage outlives the release while TCP finishes closing).
    pub released: bool,
}

/// A kernel in memory. Every field is the test's to set and inspect.
#[derive(Debug, Default)]
pub struct FakeKernel {
    /// What `snapshot` returns (plus the accounts of `sockets`, added in).
    pub snapshot: KernelSnapshot,
    /// Live sockets by cookie.
    pub sockets: BTreeMap<u64, FakeSocket>,
    /// The rules the daemon last wrote.
    pub rules: BTreeMap<OwnerKey, u32>,
    /// How many times the rules were written.
    pub rule_writes: usize,
    pub fill: Vec<MapFill>,
    pub closed_tcp: HashMap<u32, Totals>,
    pub live_tcp: Vec<TcpCounters>,
    pub programs: HashMap<u32, ProgramRunStats>,
    /// Every relabel done, in order: (cookie, label id).
    pub relabels: Vec<(u64, u32)>,
    /// Sockets whose relabel the "kernel program" refuses (as if made outside the subtree).
    pub refuse_relabel: HashSet<u64>,
    /// Reads that fail: snapshot, counters, live sockets, validation.
    pub fail_reads: bool,
    /// Rule writes that fail.
    pub fail_rule_writes: bool,
    /// Closed sockets not taken yet (`take_closed_sockets`).
    pub closed: Vec<ClosedSocket>,
}

fn read_error() -> AccessError {
    AccessError::Io(io::Error::other("fake map read failed"))
}

impl FakeKernel {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A live socket with `payload` moved under `label`.
    pub fn add_socket(&mut self, cookie: u64, label: u32, payload: Totals) {
        self.sockets.insert(
            cookie,
            FakeSocket {
                label,
                payload,
                tgid: 0,
                ..FakeSocket::default()
            },
        );
    }

    fn check_reads(&self) -> Result<(), AccessError> {
        if self.fail_reads {
            Err(read_error())
        } else {
            Ok(())
        }
    }
}

impl Kernel for FakeKernel {
    fn snapshot(&self, label_ids: &[u32]) -> Result<KernelSnapshot, AccessError> {
        self.check_reads()?;
        let mut snapshot = self.snapshot.clone();
        for socket in self.sockets.values() {
            let key = AccountKey {
                label: socket.label,
                ifindex: UNKNOWN_IFINDEX,
                ..AccountKey::default()
            };
            let counters = snapshot.accounts.entry(key).or_default();
            counters.add(&IfaceCounters {
                payload: socket.payload,
                ..IfaceCounters::default()
            });
            if label_ids.contains(&socket.label) {
                *snapshot
                    .live_sockets_by_label
                    .entry(socket.label)
                    .or_default() += 1;
            }
        }
        Ok(snapshot)
    }

    fn label_of(&self, _fd: BorrowedFd<'_>, cookie: u64) -> Result<u32, LabelError> {
        Ok(self.sockets.get(&cookie).map_or(0, |socket| socket.label))
    }

    fn relabel(
        &mut self,
        _fd: BorrowedFd<'_>,
        cookie: u64,
        label_id: u32,
    ) -> Result<(), LabelError> {
        if self.refuse_relabel.contains(&cookie) {
            return Err(LabelError::Relabel(RelabelError::NotTaken));
        }
        // A socket the fake did not know yet has moved nothing.
        self.sockets.entry(cookie).or_default().label = label_id;
        self.relabels.push((cookie, label_id));
        Ok(())
    }

    fn sync_rules(&mut self, rules: &BTreeMap<OwnerKey, u32>) -> Result<(), AccessError> {
        if self.fail_rule_writes {
            return Err(AccessError::Io(io::Error::other("fake rule write failed")));
        }
        self.rules.clone_from(rules);
        self.rule_writes += 1;
        Ok(())
    }

    fn counters(&self) -> Result<Counters, AccessError> {
        self.check_reads()?;
        Ok(self.snapshot.counters)
    }

    fn live_sockets(&self, label_ids: &[u32]) -> u64 {
        self.sockets
            .values()
            .filter(|socket| label_ids.contains(&socket.label))
            .count() as u64
    }

    fn fill(&self) -> Vec<MapFill> {
        self.fill.clone()
    }

    fn closed_tcp_counters(&self) -> Result<HashMap<u32, Totals>, AccessError> {
        self.check_reads()?;
        Ok(self.closed_tcp.clone())
    }

    fn live_socket_records(&self) -> Result<Vec<SocketRecord>, AccessError> {
        self.check_reads()?;
        Ok(self
            .sockets
            .iter()
            .map(|(cookie, socket)| SocketRecord {
                cookie: *cookie,
                tgid: socket.tgid,
                label: socket.label,
                payload: socket.payload,
                held: 1,
                destination: sockstats_common::DESTINATION_UNKNOWN,
                remote: socket.remote,
                remote_port: socket.remote_port,
                peers: socket.peers,
                released: u32::from(socket.released),
            })
            .collect())
    }

    fn take_closed_sockets(&mut self) -> Vec<ClosedSocket> {
        std::mem::take(&mut self.closed)
    }

    fn live_tcp_counters(&self) -> Result<Vec<TcpCounters>, AccessError> {
        self.check_reads()?;
        Ok(self.live_tcp.clone())
    }

    fn program_stats(&self) -> HashMap<u32, ProgramRunStats> {
        self.programs.clone()
    }
}
