//! The layout of the BPF maps: names, capacities, keys and values.
//!
//! The kernel programs (`sockstats-ebpf`) write these and the daemon reads them. A change here
//! changes the layout of pinned maps, so the daemon refuses to reuse pins from an older layout.

/// Version of the map layout below. Bump it with any change to a map's key, value or meaning:
/// pins are kept in a directory named after it (with the value sizes), so a daemon never reads
/// maps pinned by a build with another layout.
pub const MAP_LAYOUT_VERSION: u32 = 5;

/// Label id of sockets nobody labeled. Never handed out to a name.
pub const UNLABELED_ID: u32 = 0;

/// Live sockets: socket cookie (`u64`) → [`SocketEntry`].
pub const SOCKETS_MAP: &str = "SOCKETS";
/// Labels of live sockets: socket cookie (`u64`) → label id (`u32`). Written by the daemon.
pub const SOCKET_LABELS_MAP: &str = "SOCKET_LABELS";
/// Bytes of closed sockets folded in by `sock_release`: [`LabelIfaceKey`] → [`IfaceCounters`].
pub const LABEL_TOTALS_MAP: &str = "LABEL_TOTALS";
/// Tombstones of released sockets: cookie (`u64`) → the label id (`u32`) they were folded under.
pub const RELEASED_MAP: &str = "RELEASED";
/// Failure and event counters: an array of `u64` indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Labeling rules the kernel applies to new sockets: [`OwnerKey`] → label id (`u32`). Written
/// by the daemon.
pub const RULES_MAP: &str = "RULES";
/// Which kinds of rules exist: an array of one `u32`, a bit per [`OwnerKind`] (`1 << kind`), so
/// new sockets skip the lookups of kinds without rules. Written by the daemon.
pub const RULE_KINDS_MAP: &str = "RULE_KINDS";
/// Payload bytes of closed sockets per owner (uid, cgroup), folded in by `sock_release`:
/// [`OwnerKey`] → [`Totals`].
pub const OWNER_TOTALS_MAP: &str = "OWNER_TOTALS";

/// Default capacity of [`SOCKETS_MAP`] and [`SOCKET_LABELS_MAP`]: live inet sockets tracked at
/// once. Entries are allocated on demand (`BPF_F_NO_PREALLOC`), so memory follows the live
/// socket count, not this capacity.
pub const DEFAULT_MAX_SOCKETS: u32 = 262_144;
/// Most label ids the daemon hands out (id 0 included).
pub const MAX_LABELS: u32 = 16_384;
/// Capacity of [`LABEL_TOTALS_MAP`]: (label, interface) pairs of closed sockets.
pub const MAX_LABEL_INTERFACES: u32 = 65_536;
/// Tombstones of released sockets kept for their last packets (an LRU map).
pub const RELEASED_TOMBSTONES: u32 = 65_536;
/// Capacity of [`RULES_MAP`].
pub const MAX_RULES: u32 = 4096;
/// Capacity of [`OWNER_TOTALS_MAP`]: uids plus cgroups that ever closed a socket.
pub const MAX_OWNERS: u32 = 65_536;
/// Deepest cgroup level whose rules are looked at (the cgroup v2 default `cgroup.max.depth` is
/// unlimited, but real hierarchies are a handful of levels deep).
pub const MAX_CGROUP_DEPTH: u32 = 32;
/// The uid of [`OwnerKey`]s of sockets whose owner was never seen (made from a packet and
/// closed before any task used them).
pub const UNKNOWN_UID: u32 = u32::MAX;
/// `BPF_F_NO_PREALLOC`.
pub const MAP_NO_PREALLOC: u32 = 1;

/// Global variable (u64) in the kernel object: id of the cgroup whose subtree is accounted.
pub const GLOBAL_ROOT_CGROUP_ID: &str = "ROOT_CGROUP_ID";
/// Global variable (u32) in the kernel object: depth of that cgroup below the cgroup2 mount;
/// 0 means the whole host and switches the subtree check off.
pub const GLOBAL_ROOT_CGROUP_LEVEL: &str = "ROOT_CGROUP_LEVEL";
/// Global variable (u32) in the kernel object: 1 when tracing programs may call
/// `bpf_get_current_ancestor_cgroup_id` (Linux 5.18+), so sockets first seen by the payload
/// hooks (accepted ones) are matched against cgroup rules too; 0 leaves those to uid rules.
/// Read-only, so the verifier drops the call on kernels without it.
pub const GLOBAL_TRACING_ANCESTOR_HELPER: &str = "TRACING_ANCESTOR_HELPER";
/// Global variables (u32) in the kernel object: byte offsets of `struct sock.sk_socket` and
/// `struct socket.file` in the running kernel (from its BTF; 0 when unknown). The `TCP_CLOSE`
/// backstop leaves sockets that a process still holds open to `sock_release`.
pub const GLOBAL_SK_SOCKET_OFFSET: &str = "SK_SOCKET_OFFSET";
pub const GLOBAL_SOCKET_FILE_OFFSET: &str = "SOCKET_FILE_OFFSET";
/// The first kernel (major, minor) whose tracing programs may call
/// `bpf_get_current_ancestor_cgroup_id`.
pub const TRACING_ANCESTOR_HELPER_SINCE: (u32, u32) = (5, 18);
/// Global variable (u32) in the kernel object: offset of `skc_cookie` in `struct sock`, for
/// kernels whose tracing programs cannot call `bpf_get_socket_cookie` (before 5.12); 0 makes
/// the programs use the helper.
pub const GLOBAL_SOCK_COOKIE_OFFSET: &str = "SOCK_COOKIE_OFFSET";
/// Global variable (u64) in the kernel object: the network namespace cookie every packet is
/// charged to where `cgroup_skb` programs cannot call `bpf_get_netns_cookie`; 0 makes them
/// call it.
pub const GLOBAL_PACKET_NETNS_COOKIE: &str = "PACKET_NETNS_COOKIE";

/// Interfaces a socket can be charged to by name, before the rest go to [`OTHER_SLOT`].
pub const INTERFACE_SLOTS: u32 = 3;
/// Slot for traffic on interfaces beyond the first [`INTERFACE_SLOTS`] a socket used.
pub const OTHER_SLOT: u32 = INTERFACE_SLOTS;
/// Slot for payload moved before any packet of the socket showed its interface (sockets older
/// than the programs, until their next packet).
pub const UNKNOWN_SLOT: u32 = INTERFACE_SLOTS + 1;
/// All slots of a [`SocketEntry`].
pub const SLOTS: usize = INTERFACE_SLOTS as usize + 2;
/// The `ifindex` of [`LabelIfaceKey`]s for [`OTHER_SLOT`] traffic (no real interface has it).
pub const OTHER_IFINDEX: u32 = u32::MAX;
/// The `ifindex` of [`LabelIfaceKey`]s for [`UNKNOWN_SLOT`] traffic.
pub const UNKNOWN_IFINDEX: u32 = 0;

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

    #[must_use]
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

/// One interface slot of a socket: which interface, and what moved over it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceSlot {
    /// Network namespace cookie of the interface (0 while the slot is free: claimed first).
    pub netns_cookie: u64,
    /// The interface's index in that namespace (0 until the claimer stored it).
    pub ifindex: u32,
    pub pad: u32,
    pub counters: IfaceCounters,
}
const _: () = assert!(size_of::<IfaceSlot>() == 64);

/// One live socket: owner, and what it moved per interface. Key: the socket cookie.
///
/// Created by `cgroup/sock_create`, or lazily on first traffic for accepted sockets and sockets
/// older than the programs. Counters only ever grow, by atomic adds.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketEntry {
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
    pub pad: u64,
    /// [`INTERFACE_SLOTS`] interface slots, then [`OTHER_SLOT`], then [`UNKNOWN_SLOT`].
    pub slots: [IfaceSlot; SLOTS],
}
const _: () = assert!(size_of::<SocketEntry>() == 32 + 64 * SLOTS);

impl Default for SocketEntry {
    fn default() -> Self {
        Self {
            cgroup_id: 0,
            uid: 0,
            tgid: 0,
            tx_slot: UNKNOWN_SLOT,
            rx_slot: UNKNOWN_SLOT,
            pad: 0,
            slots: [IfaceSlot::default(); SLOTS],
        }
    }
}

impl SocketEntry {
    /// Payload bytes over all interfaces.
    #[must_use]
    pub fn payload(&self) -> Totals {
        let mut total = Totals::default();
        for slot in &self.slots {
            total.add(slot.counters.payload);
        }
        total
    }
}

/// Key of [`LABEL_TOTALS_MAP`]: a label on an interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelIfaceKey {
    pub label: u32,
    /// Interface index, or [`OTHER_IFINDEX`] / [`UNKNOWN_IFINDEX`] (then `netns_cookie` is 0).
    pub ifindex: u32,
    pub netns_cookie: u64,
}
const _: () = assert!(size_of::<LabelIfaceKey>() == 16);

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

/// Key of [`RULES_MAP`] and [`OWNER_TOTALS_MAP`]: a uid or a cgroup id.
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

/// Slots of [`COUNTERS_MAP`]. Every way the kernel side can fail to account a byte has one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Times a socket found [`SOCKETS_MAP`] full; its bytes went to the overflow bucket.
    SocketsMapFull = 0,
    /// Payload bytes sent by sockets that found a map full.
    OverflowTxBytes = 1,
    /// Payload bytes received by sockets that found a map full.
    OverflowRxBytes = 2,
    /// Times a closing socket found [`LABEL_TOTALS_MAP`] full; its bytes went to overflow.
    LabelTotalsFull = 3,
    /// Sockets whose entry `cgroup/sock_create` made.
    SocketsCreated = 4,
    /// Sockets whose entry was made on first traffic (accepted, or older than the programs).
    SocketsCreatedLazily = 5,
    /// Sockets folded into label totals by `cgroup/sock_release` (bumped after the fold).
    SocketsReleased = 6,
    /// `cgroup/sock_release` runs begun (bumped before the entry is deleted). While it differs
    /// from [`Counter::SocketsReleased`] a release is in flight; the daemon uses the pair to
    /// take snapshots no release interleaves with.
    ReleasesStarted = 7,
    /// Packets of sockets that had already used [`INTERFACE_SLOTS`] other interfaces (their
    /// bytes are charged to the "other" interface).
    InterfaceSlotsFull = 8,
    /// IP-layer bytes sent by sockets that found a map full.
    OverflowWireTxBytes = 9,
    /// IP-layer bytes received by sockets that found a map full.
    OverflowWireRxBytes = 10,
    /// IP-layer bytes of packets of sockets without an entry: sockets older than the programs
    /// before their first payload, kernel control sockets (RSTs, `TIME_WAIT` ACKs), and closed
    /// sockets whose tombstone was already evicted.
    UntrackedWireBytes = 11,
    /// Sockets folded when TCP moved them to `TCP_CLOSE` while they still had an entry: sockets
    /// the release hook never sees (kernel sockets, connections dropped from a closing
    /// listener's accept queue) or whose state closed before the application closed them.
    FoldedAtClose = 12,
    /// Times a closing socket found [`OWNER_TOTALS_MAP`] full (for its uid or its cgroup):
    /// its bytes are missing from that view's owner and in its overflow instead.
    OwnerTotalsFull = 13,
    /// Payload bytes sent by closed sockets whose uid found no room in [`OWNER_TOTALS_MAP`].
    UidOverflowTxBytes = 14,
    /// Payload bytes received by closed sockets whose uid found no room.
    UidOverflowRxBytes = 15,
    /// Payload bytes sent by closed sockets whose cgroup found no room.
    CgroupOverflowTxBytes = 16,
    /// Payload bytes received by closed sockets whose cgroup found no room.
    CgroupOverflowRxBytes = 17,
    /// Sockets a rule (uid or cgroup) labeled when they were made.
    SocketsLabeledByRule = 18,
    /// Times a rule's label could not be written (the label map was full): the socket stays
    /// unlabeled.
    RuleLabelsFailed = 19,
    /// Sends and receives of sockets that had no cookie yet, seen by the fexit fallback on
    /// kernels before 5.12 (where tracing programs cannot make one); their bytes went to the
    /// overflow bucket.
    NoCookie = 20,
}

impl Counter {
    /// Number of slots in [`COUNTERS_MAP`].
    pub const COUNT: u32 = 21;
    pub const ALL: [Counter; Self::COUNT as usize] = [
        Counter::SocketsMapFull,
        Counter::OverflowTxBytes,
        Counter::OverflowRxBytes,
        Counter::LabelTotalsFull,
        Counter::SocketsCreated,
        Counter::SocketsCreatedLazily,
        Counter::SocketsReleased,
        Counter::ReleasesStarted,
        Counter::InterfaceSlotsFull,
        Counter::OverflowWireTxBytes,
        Counter::OverflowWireRxBytes,
        Counter::UntrackedWireBytes,
        Counter::FoldedAtClose,
        Counter::OwnerTotalsFull,
        Counter::UidOverflowTxBytes,
        Counter::UidOverflowRxBytes,
        Counter::CgroupOverflowTxBytes,
        Counter::CgroupOverflowRxBytes,
        Counter::SocketsLabeledByRule,
        Counter::RuleLabelsFailed,
        Counter::NoCookie,
    ];

    /// Stable `snake_case` name, used by `status` and metrics.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Counter::SocketsMapFull => "sockets_map_full",
            Counter::OverflowTxBytes => "overflow_tx_bytes",
            Counter::OverflowRxBytes => "overflow_rx_bytes",
            Counter::LabelTotalsFull => "label_totals_full",
            Counter::SocketsCreated => "sockets_created",
            Counter::SocketsCreatedLazily => "sockets_created_lazily",
            Counter::SocketsReleased => "sockets_released",
            Counter::ReleasesStarted => "releases_started",
            Counter::InterfaceSlotsFull => "interface_slots_full",
            Counter::OverflowWireTxBytes => "overflow_wire_tx_bytes",
            Counter::OverflowWireRxBytes => "overflow_wire_rx_bytes",
            Counter::UntrackedWireBytes => "untracked_wire_bytes",
            Counter::FoldedAtClose => "folded_at_close",
            Counter::OwnerTotalsFull => "owner_totals_full",
            Counter::UidOverflowTxBytes => "uid_overflow_tx_bytes",
            Counter::UidOverflowRxBytes => "uid_overflow_rx_bytes",
            Counter::CgroupOverflowTxBytes => "cgroup_overflow_tx_bytes",
            Counter::CgroupOverflowRxBytes => "cgroup_overflow_rx_bytes",
            Counter::SocketsLabeledByRule => "sockets_labeled_by_rule",
            Counter::RuleLabelsFailed => "rule_labels_failed",
            Counter::NoCookie => "no_cookie",
        }
    }
}

#[cfg(feature = "pod")]
mod pod {
    // SAFETY (all): `#[repr(C)]`, `Copy`, no padding (sizes asserted above, explicit `pad`
    // fields), and every bit pattern is a valid value.
    unsafe impl aya::Pod for super::SocketEntry {}
    unsafe impl aya::Pod for super::Totals {}
    unsafe impl aya::Pod for super::IfaceCounters {}
    unsafe impl aya::Pod for super::LabelIfaceKey {}
    unsafe impl aya::Pod for super::OwnerKey {}
}
