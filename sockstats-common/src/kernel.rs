//! The layout of the BPF maps: capacities, keys and values (the maps themselves, their names
//! and kinds, are in [`crate::abi`]).
//!
//! The kernel programs (`sockstats-ebpf`) write these and the daemon reads them. A change here
//! changes the layout of pinned maps, so the daemon refuses to reuse pins from an older layout.

/// Version of the map layout below. Bump it with any change to a map's key, value or meaning:
/// pins are kept in a directory named after it (with the value sizes), so a daemon never reads
/// maps pinned by a build with another layout.
pub const MAP_LAYOUT_VERSION: u32 = 7;

/// Label id of sockets nobody labeled. Never handed out to a name.
pub const UNLABELED_ID: u32 = 0;

// The names of the maps the daemon opens, from the one table of maps (`crate::abi::map`, where
// each is documented).
pub const SOCKET_STATE_MAP: &str = crate::abi::map::SOCKET_STATE.name;
pub const SOCKET_STATE_BY_COOKIE_MAP: &str = crate::abi::map::SOCKET_STATE_BY_COOKIE.name;
pub const EMPTY_STATE_MAP: &str = crate::abi::map::EMPTY_STATE.name;
pub const ACCOUNTS_MAP: &str = crate::abi::map::ACCOUNTS.name;
pub const ACCOUNT_IDS_MAP: &str = crate::abi::map::ACCOUNT_IDS.name;
pub const ACCOUNT_KEYS_MAP: &str = crate::abi::map::ACCOUNT_KEYS.name;
pub const OWNER_ACCOUNTS_MAP: &str = crate::abi::map::OWNER_ACCOUNTS.name;
pub const OWNER_IDS_MAP: &str = crate::abi::map::OWNER_IDS.name;
pub const OWNER_KEYS_MAP: &str = crate::abi::map::OWNER_KEYS.name;
pub const LABEL_SOCKETS_MAP: &str = crate::abi::map::LABEL_SOCKETS.name;
pub const ALLOCATOR_MAP: &str = crate::abi::map::ALLOCATOR.name;
pub const COUNTERS_MAP: &str = crate::abi::map::COUNTERS.name;
pub const CONTROL_MAP: &str = crate::abi::map::CONTROL.name;
pub const VALIDATION_MAP: &str = crate::abi::map::VALIDATION.name;
pub const RULES_MAP: &str = crate::abi::map::RULES.name;
pub const RULE_KINDS_MAP: &str = crate::abi::map::RULE_KINDS.name;
pub const DESTINATIONS_MAP: &str = crate::abi::map::DESTINATIONS.name;
pub const CLOSED_SOCKETS_MAP: &str = crate::abi::map::CLOSED_SOCKETS.name;

/// Bytes of [`CLOSED_SOCKETS_MAP`]: 43,690 records of 48 bytes (with the ring's header), read
/// five times a second.
pub const CLOSED_SOCKETS_BYTES: u32 = 2 << 20;

/// Default capacity of [`ACCOUNTS_MAP`] (and its id maps): (label, interface, destination)
/// triples.
pub const DEFAULT_MAX_ACCOUNTS: u32 = 4096;
/// Capacity of [`SOCKET_STATE_BY_COOKIE_MAP`] (kernels before 5.11 only).
pub const DEFAULT_MAX_SOCKETS: u32 = 262_144;
/// Most label ids the daemon hands out (id 0 included); the size of [`LABEL_SOCKETS_MAP`].
pub const MAX_LABELS: u32 = 16_384;
/// Capacity of [`OWNER_ACCOUNTS_MAP`]: (uid, cgroup) pairs that ever moved payload.
pub const MAX_OWNERS: u32 = 8192;
/// Capacity of [`DESTINATIONS_MAP`]: the named networks' prefixes (at most
/// `MAX_NAMED_PREFIXES` of the config) and the built-in classes' few.
pub const MAX_DESTINATION_PREFIXES: u32 = 65_536 + 64;
/// Capacity of [`RULES_MAP`].
pub const MAX_RULES: u32 = 4096;
/// Deepest cgroup level whose rules are looked at (the cgroup v2 default `cgroup.max.depth` is
/// unlimited, but real hierarchies are a handful of levels deep).
pub const MAX_CGROUP_DEPTH: u32 = 32;
/// The uid of owner accounts of sockets whose owner was never seen.
pub const UNKNOWN_UID: u32 = u32::MAX;
/// `BPF_F_NO_PREALLOC`.
pub const MAP_NO_PREALLOC: u32 = 1;

/// Index of the next account id to try in [`ALLOCATOR_MAP`].
pub const ALLOC_NEXT_ACCOUNT: u32 = 0;
/// Index of the next owner account id to try in [`ALLOCATOR_MAP`].
pub const ALLOC_NEXT_OWNER: u32 = 1;

/// The `setsockopt` level the daemon relabels a socket with (`cgroup/setsockopt` takes it and
/// keeps it from the kernel's own handler). No protocol uses it.
pub const SOL_SOCKSTATS: i32 = 0x5eed_0001;
/// The `setsockopt` option of [`SOL_SOCKSTATS`]: put the socket under a label; the value is a
/// [`RelabelRequest`].
pub const SO_SOCKSTATS_LABEL: i32 = 1;

/// What the daemon passes with [`SO_SOCKSTATS_LABEL`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelabelRequest {
    pub label: u32,
    pub pad: u32,
    /// The socket's cookie (the state is found by it before 5.11).
    pub cookie: u64,
    /// The daemon's secret ([`Control::Token`]): only a process that can read the daemon's
    /// maps can relabel (cgroup/setsockopt programs cannot ask who calls before Linux 6.x).
    pub token: u64,
}
const _: () = assert!(size_of::<RelabelRequest>() == 24);

impl RelabelRequest {
    /// The bytes passed to `setsockopt`, in the machine's byte order.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 24] {
        let mut bytes = [0; 24];
        bytes[0..4].copy_from_slice(&self.label.to_ne_bytes());
        bytes[4..8].copy_from_slice(&self.pad.to_ne_bytes());
        bytes[8..16].copy_from_slice(&self.cookie.to_ne_bytes());
        bytes[16..24].copy_from_slice(&self.token.to_ne_bytes());
        bytes
    }
}

/// Slots of [`CONTROL_MAP`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// A random secret of the running daemon: a [`RelabelRequest`] must carry it (0: no daemon
    /// has set one, and every relabel is refused).
    Token = 0,
    /// 1 while closed TCP sockets' `tcp_info` counters are added to [`VALIDATION_MAP`].
    ValidateClosed = 1,
}

impl Control {
    pub const COUNT: u32 = 2;
}

pub use crate::abi::globals;
pub use globals::{
    PACKET_NETNS_COOKIE as GLOBAL_PACKET_NETNS_COOKIE, ROOT_CGROUP_ID as GLOBAL_ROOT_CGROUP_ID,
    ROOT_CGROUP_LEVEL as GLOBAL_ROOT_CGROUP_LEVEL, SK_SOCKET_OFFSET as GLOBAL_SK_SOCKET_OFFSET,
    SOCKET_FILE_OFFSET as GLOBAL_SOCKET_FILE_OFFSET,
    SOCK_COOKIE_OFFSET as GLOBAL_SOCK_COOKIE_OFFSET, STATE_BY_COOKIE as GLOBAL_STATE_BY_COOKIE,
    TRACING_ANCESTOR_HELPER as GLOBAL_TRACING_ANCESTOR_HELPER,
};
/// The first kernel (major, minor) whose tracing programs may call
/// `bpf_get_current_ancestor_cgroup_id`.
pub const TRACING_ANCESTOR_HELPER_SINCE: (u32, u32) = (5, 18);
/// The first kernel whose tracing programs may use socket storage.
pub const TRACING_SK_STORAGE_SINCE: (u32, u32) = (5, 11);

/// Slot for payload moved before any packet of the socket showed its interface (sockets older
/// than the programs, until their next packet). Slot 0, so a zeroed state starts there.
pub const UNKNOWN_SLOT: u32 = 0;
/// (Interface, destination) pairs a socket can be charged to by name (slots 1 to 4), before the
/// rest go to [`OTHER_SLOT`]: enough for an unconnected socket that talks to the host, a private
/// network, a named one and the internet.
pub const INTERFACE_SLOTS: u32 = 4;
/// Slot for traffic on (interface, destination) pairs beyond the first [`INTERFACE_SLOTS`] a
/// socket used.
pub const OTHER_SLOT: u32 = INTERFACE_SLOTS + 1;
/// All slots of a [`SocketState`].
pub const SLOTS: usize = INTERFACE_SLOTS as usize + 2;
/// The `ifindex` of [`AccountKey`]s for [`OTHER_SLOT`] traffic (no real interface has it).
pub const OTHER_IFINDEX: u32 = u32::MAX;
/// The `ifindex` of [`AccountKey`]s for [`UNKNOWN_SLOT`] traffic.
pub const UNKNOWN_IFINDEX: u32 = 0;
/// The index of every network namespace's loopback interface (`LOOPBACK_IFINDEX`,
/// `include/net/flow.h`): what goes over it goes to the host itself.
pub const LOOPBACK_IFINDEX: u32 = 1;

/// Destination of [`UNKNOWN_SLOT`] and [`OTHER_SLOT`] traffic: no one remote address.
pub const DESTINATION_UNKNOWN: u32 = 0;
/// Destination class `host`: the loopback interface (the host's own addresses go over it).
pub const DESTINATION_HOST: u32 = 1;
/// Destination class `private`: the private and link-local ranges the daemon puts into
/// [`DESTINATIONS_MAP`].
pub const DESTINATION_PRIVATE: u32 = 2;
/// Destination class `internet`: every address no prefix of [`DESTINATIONS_MAP`] covers.
pub const DESTINATION_INTERNET: u32 = 3;
/// The id of the first named network (`network NAME CIDR…`); ids below it are the classes.
pub const FIRST_NAMED_DESTINATION: u32 = 16;

/// Key of [`DESTINATIONS_MAP`] (an LPM trie): `prefix_len` bits of `address`, an IPv6 address
/// or an IPv4 one as `::ffff:a.b.c.d` (then `prefix_len` counts the 96 bits of that prefix).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestinationPrefix {
    pub prefix_len: u32,
    pub address: [u8; 16],
}
const _: () = assert!(size_of::<DestinationPrefix>() == 20);

/// Bytes in both directions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}
const _: () = assert!(size_of::<Totals>() == 16);

impl Totals {
    #[must_use]
    pub const fn new(tx_bytes: u64, rx_bytes: u64) -> Self {
        Self { tx_bytes, rx_bytes }
    }

    /// Adds `other` into `self`, saturating (a u64 of bytes does not overflow in practice).
    pub fn add(&mut self, other: Totals) {
        self.tx_bytes = self.tx_bytes.saturating_add(other.tx_bytes);
        self.rx_bytes = self.rx_bytes.saturating_add(other.rx_bytes);
    }

    /// Adds `other` into `self` modulo 2^64: per-CPU shares of a counter that the kernel also
    /// subtracts from (a relabel moves bytes out on its own CPU) only add up to the count as a
    /// wrapping sum.
    pub fn wrapping_add(&mut self, other: Totals) {
        self.tx_bytes = self.tx_bytes.wrapping_add(other.tx_bytes);
        self.rx_bytes = self.rx_bytes.wrapping_add(other.rx_bytes);
    }
}

/// IP packets in both directions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Packets {
    pub tx_packets: u64,
    pub rx_packets: u64,
}
const _: () = assert!(size_of::<Packets>() == 16);

impl Packets {
    pub fn add(&mut self, other: Packets) {
        self.tx_packets = self.tx_packets.saturating_add(other.tx_packets);
        self.rx_packets = self.rx_packets.saturating_add(other.rx_packets);
    }
}

/// What a socket moved over one interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceCounters {
    /// Payload bytes (`sendmsg`/`recvmsg` return values) while the socket's packets used it.
    pub payload: Totals,
    /// IP-layer bytes of the socket's packets on it (headers, ACKs and retransmits included).
    pub wire_bytes: Totals,
    /// IP packets (a GSO/GRO super-packet counts as its `gso_segs` packets).
    pub wire_packets: Packets,
}
const _: () = assert!(size_of::<IfaceCounters>() == 48);

impl IfaceCounters {
    pub fn add(&mut self, other: &IfaceCounters) {
        self.payload.add(other.payload);
        self.wire_bytes.add(other.wire_bytes);
        self.wire_packets.add(other.wire_packets);
    }

    /// Adds `other` into `self` modulo 2^64 (see [`Totals::wrapping_add`]).
    pub fn wrapping_add(&mut self, other: &IfaceCounters) {
        self.payload.wrapping_add(other.payload);
        self.wire_bytes.wrapping_add(other.wire_bytes);
        self.wire_packets.tx_packets = self
            .wire_packets
            .tx_packets
            .wrapping_add(other.wire_packets.tx_packets);
        self.wire_packets.rx_packets = self
            .wire_packets
            .rx_packets
            .wrapping_add(other.wire_packets.rx_packets);
    }

    #[must_use]
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

/// One interface slot of a socket: which interface, its account under each generation of the
/// socket's label, and what the socket put into each of those accounts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketSlot {
    /// Network namespace cookie of the interface (0 while the slot is free: claimed first).
    pub netns_cookie: u64,
    /// The interface's index in that namespace (0 until the claimer stored it).
    pub ifindex: u32,
    /// Destination class or named network of the remote addresses of this slot's packets
    /// (stored by the claimer with the ifindex).
    pub destination: u32,
    /// Account id of (label of generation parity `p`, this interface and destination), looked
    /// up lazily (0 until then).
    pub account: [u32; 2],
    /// Owner account id of (the socket's owner, this destination), looked up lazily by the
    /// first payload once the socket is owned (0 until then).
    pub owner_account: u32,
    pub pad: u32,
    /// What this socket added to `account[p]`: moved to the other parity's account when a
    /// relabel finishes.
    pub moved: [IfaceCounters; 2],
}
const _: () = assert!(size_of::<SocketSlot>() == 128);

/// Index in [`SocketState::flags`]: the owner (task, uid, cgroup) has been filled in.
pub const FLAG_OWNED: usize = 0;
/// Index in [`SocketState::flags`]: the socket is counted in the live-socket gauges (a process
/// held it when it was first used); `sock_release` takes it out again.
pub const FLAG_HELD: usize = 1;
/// Index in [`SocketState::flags`]: the daemon labeled the socket; rules no longer apply to it.
pub const FLAG_EXPLICIT: usize = 2;
/// Index in [`SocketState::flags`]: a rule's label ([`SocketState::rule_label`]) still has to
/// be put on.
pub const FLAG_RULE_PENDING: usize = 3;

/// One socket: owner, label, and what it moved per interface. Made zeroed (socket storage
/// cannot be created with a value this large from a BPF stack), so every field's zero is its
/// start: label `unlabeled`, generation 0, slots [`UNKNOWN_SLOT`].
///
/// A relabel switches the generation: operations that read the old generation finish against
/// the old label's accounts, new ones use the new label's; once no operation of the old
/// generation can still be running (`busy` seen at 1, the finisher itself), the old
/// generation's `moved` bytes are moved to the new label's accounts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketState {
    /// cgroup v2 id of the task that created the socket (or first moved bytes on it).
    pub cgroup_id: u64,
    /// uid of that task.
    pub uid: u32,
    /// Process id (thread-group id) of that task; 0 while unknown.
    pub tgid: u32,
    /// Slot of the interface the socket's last outgoing packet used: sent payload goes there.
    pub tx_slot: u32,
    /// Slot of the interface the socket's last incoming packet used: received payload goes there.
    pub rx_slot: u32,
    /// Label id of each generation parity: `label[generation & 1]` is the socket's label.
    pub label: [u32; 2],
    /// Bumped by every relabel.
    pub generation: u32,
    /// Operations in flight on this socket (atomic): the relabel handshake.
    pub busy: u32,
    /// 1 while a relabel has switched the generation but not yet moved the old one's bytes.
    pub pending: u32,
    /// One byte per `FLAG_*` index (bytes, so writers of different flags never race).
    pub flags: [u8; 4],
    /// Owner account id (0: none yet, or the owner accounts are full).
    pub owner_account: u32,
    /// The label a rule gives the socket, while [`FLAG_RULE_PENDING`].
    pub rule_label: u32,
    /// The remote address last classified for this socket (its 16 bytes, IPv4 as
    /// `::ffff:a.b.c.d`, as two native-endian `u64`s), valid while
    /// [`SocketState::remote_sequence`] is even, not 0, and unchanged around its read: packets
    /// to and from it skip the prefix lookup.
    pub remote: [u64; 2],
    /// The destination of [`SocketState::remote`].
    pub remote_destination: u32,
    /// The remote port of [`SocketState::remote`] (host order; 0 for protocols without one).
    pub remote_port: u16,
    /// 1 once `sock_release` has left the socket's record for `get --peers` (socket storage
    /// outlives the release while TCP finishes closing).
    pub released: u16,
    /// Odd while a packet program writes [`SocketState::remote`] (claimed with `cmpxchg`);
    /// up by 2 for every remote address written, so 2 means the socket has had one peer.
    pub remote_sequence: u64,
    /// [`UNKNOWN_SLOT`], the [`INTERFACE_SLOTS`] interface slots, then [`OTHER_SLOT`].
    pub slots: [SocketSlot; SLOTS],
}
const _: () = assert!(size_of::<SocketState>() == 88 + 128 * SLOTS);

impl SocketState {
    /// The socket's label now.
    #[must_use]
    pub const fn current_label(&self) -> u32 {
        self.label[(self.generation & 1) as usize]
    }

    /// The records the socket-state iterator writes for this state (see
    /// `sockstats-ebpf/src/iter.rs`): one per slot that moved payload, with its destination,
    /// interface slots first, then the other slot, then the unknown slot (which is written,
    /// empty, when no slot moved any); only the first is `held`.
    #[cfg(any(feature = "user", feature = "pod"))]
    #[must_use]
    pub fn records(&self, cookie: u64) -> Vec<SocketRecord> {
        let order =
            (1..=INTERFACE_SLOTS as usize).chain([OTHER_SLOT as usize, UNKNOWN_SLOT as usize]);
        let mut records: Vec<SocketRecord> = Vec::new();
        for index in order {
            let slot = &self.slots[index];
            let mut payload = slot.moved[0].payload;
            payload.add(slot.moved[1].payload);
            let last = index == UNKNOWN_SLOT as usize;
            if payload == Totals::default() && !(last && records.is_empty()) {
                continue;
            }
            let destination = if index == UNKNOWN_SLOT as usize || index == OTHER_SLOT as usize {
                DESTINATION_UNKNOWN
            } else {
                slot.destination
            };
            records.push(SocketRecord {
                cookie,
                tgid: self.tgid,
                label: self.current_label(),
                payload,
                held: if records.is_empty() {
                    u32::from(self.flags[FLAG_HELD])
                } else {
                    0
                },
                destination,
                remote: self.remote_bytes(),
                remote_port: self.remote_port,
                peers: peers_of(self.remote_sequence),
                released: u32::from(self.released),
            });
        }
        records
    }

    /// [`SocketState::remote`] as the 16 bytes of the address.
    #[must_use]
    pub fn remote_bytes(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.remote[0].to_ne_bytes());
        bytes[8..].copy_from_slice(&self.remote[1].to_ne_bytes());
        bytes
    }

    /// Payload bytes over all interfaces and both generations.
    #[must_use]
    pub fn payload(&self) -> Totals {
        let mut total = Totals::default();
        for slot in &self.slots {
            for moved in &slot.moved {
                total.add(moved.payload);
            }
        }
        total
    }
}

/// Key of owner accounts: the uid and cgroup of the task that made a socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerAccountKey {
    pub cgroup_id: u64,
    pub uid: u32,
    /// The destination of the payload (the owner's live sockets are counted under
    /// [`DESTINATION_UNKNOWN`]).
    pub destination: u32,
}
const _: () = assert!(size_of::<OwnerAccountKey>() == 16);

/// Value of [`OWNER_ACCOUNTS_MAP`] (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnerCounters {
    /// Payload of the owner's sockets, live and closed.
    pub payload: Totals,
    /// Its live sockets (a CPU's share may wrap below zero; the sum over CPUs is the count).
    pub live_sockets: u64,
}
const _: () = assert!(size_of::<OwnerCounters>() == 24);

/// What the socket-state iterator (`iter/bpf_sk_storage_map`) writes per live socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketRecord {
    pub cookie: u64,
    pub tgid: u32,
    pub label: u32,
    pub payload: Totals,
    /// 1 while a process holds the socket (counted in the live-socket gauges), in the first
    /// record of a socket only.
    pub held: u32,
    /// The destination of this record's payload: a socket has one record per slot that moved
    /// payload (and one with none if it moved none).
    pub destination: u32,
    /// The socket's peer ([`SocketState::remote`]), when `peers` is [`PEERS_ONE`].
    pub remote: [u8; 16],
    pub remote_port: u16,
    /// [`PEERS_NONE`], [`PEERS_ONE`] or [`PEERS_SEVERAL`].
    pub peers: u16,
    /// 1 when the socket was released already (its closed-socket record has its bytes).
    pub released: u32,
}
const _: () = assert!(size_of::<SocketRecord>() == 64);

impl SocketRecord {
    /// A record as the iterator wrote it (in the machine's byte order); `None` unless `bytes`
    /// is one record long.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != size_of::<Self>() {
            return None;
        }
        let u32_at = |at: usize| {
            let field = bytes.get(at..at + 4)?;
            Some(u32::from_ne_bytes(field.try_into().ok()?))
        };
        let u64_at = |at: usize| {
            let field = bytes.get(at..at + 8)?;
            Some(u64::from_ne_bytes(field.try_into().ok()?))
        };
        Some(Self {
            cookie: u64_at(0)?,
            tgid: u32_at(8)?,
            label: u32_at(12)?,
            payload: Totals::new(u64_at(16)?, u64_at(24)?),
            held: u32_at(32)?,
            destination: u32_at(36)?,
            remote: bytes.get(40..56)?.try_into().ok()?,
            remote_port: u16::from_ne_bytes(bytes.get(56..58)?.try_into().ok()?),
            peers: u16::from_ne_bytes(bytes.get(58..60)?.try_into().ok()?),
            released: u32::from_ne_bytes(bytes.get(60..64)?.try_into().ok()?),
        })
    }
}

/// The socket has had no remote address yet (no packet the programs saw).
pub const PEERS_NONE: u16 = 0;
/// The socket has had one remote address and port: [`SocketState::remote`].
pub const PEERS_ONE: u16 = 1;
/// The socket has had more than one (an unconnected UDP socket, say).
pub const PEERS_SEVERAL: u16 = 2;

/// How many peers a [`SocketState::remote_sequence`] says the socket has had.
#[must_use]
pub const fn peers_of(remote_sequence: u64) -> u16 {
    match remote_sequence {
        0 | 1 => PEERS_NONE,
        2 => PEERS_ONE,
        _ => PEERS_SEVERAL,
    }
}

/// What `sock_release` writes into [`CLOSED_SOCKETS_MAP`] for a socket that moved payload:
/// its label, its peer and all its payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClosedSocket {
    pub label: u32,
    pub remote_port: u16,
    /// [`PEERS_NONE`], [`PEERS_ONE`] or [`PEERS_SEVERAL`].
    pub peers: u16,
    pub remote: [u8; 16],
    pub payload: Totals,
}
const _: () = assert!(size_of::<ClosedSocket>() == 40);

impl ClosedSocket {
    /// A record as the kernel wrote it (in the machine's byte order); `None` unless `bytes` is
    /// one record long.
    #[must_use]
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != size_of::<Self>() {
            return None;
        }
        let u64_at = |at: usize| Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
        Some(Self {
            label: u32::from_ne_bytes(bytes.get(0..4)?.try_into().ok()?),
            remote_port: u16::from_ne_bytes(bytes.get(4..6)?.try_into().ok()?),
            peers: u16::from_ne_bytes(bytes.get(6..8)?.try_into().ok()?),
            remote: bytes.get(8..24)?.try_into().ok()?,
            payload: Totals::new(u64_at(24)?, u64_at(32)?),
        })
    }
}

/// Key of accounts ([`ACCOUNT_IDS_MAP`]): a label on an interface, to a destination.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountKey {
    pub label: u32,
    /// Interface index, or [`OTHER_IFINDEX`] / [`UNKNOWN_IFINDEX`] (then `netns_cookie` is 0).
    pub ifindex: u32,
    pub netns_cookie: u64,
    /// Destination class or named network id ([`DESTINATION_UNKNOWN`] for the unknown and
    /// other slots).
    pub destination: u32,
    pub pad: u32,
}
const _: () = assert!(size_of::<AccountKey>() == 24);

/// What an [`OwnerKey`] names.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnerKind {
    /// A user id: the task that created the socket ran as it.
    Uid = 1,
    /// A cgroup v2 id. For rules: the cgroup and its descendants; for totals: exactly the
    /// cgroup the creating task was in.
    Cgroup = 2,
}

impl OwnerKind {
    /// This kind's bit in [`RULE_KINDS_MAP`].
    #[must_use]
    pub const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// Key of [`RULES_MAP`]: a uid or a cgroup id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerKey {
    /// An [`OwnerKind`] as `u32`.
    pub kind: u32,
    pub pad: u32,
    pub id: u64,
}
const _: () = assert!(size_of::<OwnerKey>() == 16);

impl OwnerKey {
    #[must_use]
    pub const fn uid(uid: u32) -> Self {
        Self {
            kind: OwnerKind::Uid as u32,
            pad: 0,
            id: uid as u64,
        }
    }

    #[must_use]
    pub const fn cgroup(cgroup_id: u64) -> Self {
        Self {
            kind: OwnerKind::Cgroup as u32,
            pad: 0,
            id: cgroup_id,
        }
    }
}

#[cfg(feature = "pod")]
#[expect(
    unsafe_code,
    reason = "aya::Pod is an unsafe trait: these types are plain old data"
)]
mod pod {
    // SAFETY (all): `#[repr(C)]`, `Copy`, no padding (sizes asserted above, explicit `pad`
    // fields), and every bit pattern is a valid value.
    unsafe impl aya::Pod for super::SocketState {}
    unsafe impl aya::Pod for super::Totals {}
    unsafe impl aya::Pod for super::IfaceCounters {}
    unsafe impl aya::Pod for super::AccountKey {}
    unsafe impl aya::Pod for super::OwnerKey {}
    unsafe impl aya::Pod for super::OwnerAccountKey {}
    unsafe impl aya::Pod for super::OwnerCounters {}
    unsafe impl aya::Pod for super::DestinationPrefix {}
    unsafe impl aya::Pod for super::ClosedSocket {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_record_reads_back_from_its_bytes() {
        let mut bytes = [0u8; 64];
        bytes[0..8].copy_from_slice(&0x0102_0304_0506_0708u64.to_ne_bytes());
        bytes[8..12].copy_from_slice(&42u32.to_ne_bytes());
        bytes[12..16].copy_from_slice(&7u32.to_ne_bytes());
        bytes[16..24].copy_from_slice(&1000u64.to_ne_bytes());
        bytes[24..32].copy_from_slice(&2000u64.to_ne_bytes());
        bytes[32..36].copy_from_slice(&1u32.to_ne_bytes());
        bytes[36..40].copy_from_slice(&3u32.to_ne_bytes());
        bytes[40..56].copy_from_slice(&[7u8; 16]);
        bytes[56..58].copy_from_slice(&443u16.to_ne_bytes());
        bytes[58..60].copy_from_slice(&PEERS_ONE.to_ne_bytes());
        let record = SocketRecord::from_bytes(&bytes).unwrap();
        assert_eq!(
            record,
            SocketRecord {
                cookie: 0x0102_0304_0506_0708,
                tgid: 42,
                label: 7,
                payload: Totals::new(1000, 2000),
                held: 1,
                destination: 3,
                remote: [7u8; 16],
                remote_port: 443,
                peers: PEERS_ONE,
                released: 0,
            }
        );
        assert_eq!(SocketRecord::from_bytes(&bytes[..63]), None);
    }

    #[test]
    fn a_relabel_request_is_its_fields_in_order() {
        let request = RelabelRequest {
            label: 3,
            pad: 0,
            cookie: 9,
            token: u64::MAX,
        };
        let bytes = request.to_bytes();
        assert_eq!(bytes[0..4], 3u32.to_ne_bytes());
        assert_eq!(bytes[8..16], 9u64.to_ne_bytes());
        assert_eq!(bytes[16..24], [0xff; 8]);
    }
}
