//! The maps of the kernel object: name, kind, key and value type, capacity and flags.
//!
//! Capacities are the defaults: the daemon sets `--max-sockets` and `--max-accounts` at load
//! time (see docs/architecture.md for what each map costs).

/// Hands every map of the kernel object to `$callback`, one entry per map:
/// `NAME: Kind<Key, Value> = constructor(capacity, flags);` (`Kind` is `HashMap`, `Array`,
/// `PerCpuArray`, `LpmTrie`, `RingBuf` (capacity in bytes) or `SkStorage`; arrays are keyed by `u32`; `pinned` maps are kept under the
/// daemon's `--bpffs-dir`, `with_max_entries` ones live as long as the programs).
#[macro_export]
macro_rules! for_each_map {
    ($callback:ident) => {
        $callback! {
            /// Per-socket state in socket-local storage (`BPF_MAP_TYPE_SK_STORAGE`, a
            /// BTF-defined map): [`SocketState`]. The kernel frees it with the socket
            /// (`__sk_destruct`); userspace never writes it.
            SOCKET_STATE: SkStorage<u32, $crate::SocketState> = pinned(0, $crate::MAP_NO_PREALLOC);
            /// The same state keyed by socket cookie (`u64`), for kernels whose tracing
            /// programs cannot use socket storage (before 5.11): deleted by `sock_release` and
            /// the `TCP_CLOSE` backstop.
            SOCKET_STATE_BY_COOKIE: HashMap<u64, $crate::SocketState> =
                pinned($crate::DEFAULT_MAX_SOCKETS, $crate::MAP_NO_PREALLOC);
            /// One zeroed [`SocketState`]: what a new entry of `SOCKET_STATE_BY_COOKIE` is
            /// made from (a state is larger than the BPF stack).
            EMPTY_STATE: Array<u32, $crate::SocketState> = with_max_entries(1, 0);
            /// Running totals per account: a per-CPU array, account id → [`IfaceCounters`].
            /// Id 0 is never handed out ("no account": the bytes went to the overflow
            /// counters).
            ACCOUNTS: PerCpuArray<u32, $crate::IfaceCounters> =
                pinned($crate::DEFAULT_MAX_ACCOUNTS, 0);
            /// Account ids: [`AccountKey`] → id (`u32`). Written by the kernel only.
            ACCOUNT_IDS: HashMap<$crate::AccountKey, u32> =
                pinned($crate::DEFAULT_MAX_ACCOUNTS, 0);
            /// What each account id stands for: id (`u32`) → [`AccountKey`]. Written by the
            /// kernel only; the daemon reads it to name the accounts.
            ACCOUNT_KEYS: HashMap<u32, $crate::AccountKey> =
                pinned($crate::DEFAULT_MAX_ACCOUNTS, 0);
            /// Payload and live sockets per owner: a per-CPU array, owner account id →
            /// [`OwnerCounters`].
            OWNER_ACCOUNTS: PerCpuArray<u32, $crate::OwnerCounters> = pinned($crate::MAX_OWNERS, 0);
            /// Owner account ids: [`OwnerAccountKey`] → id (`u32`).
            OWNER_IDS: HashMap<$crate::OwnerAccountKey, u32> = pinned($crate::MAX_OWNERS, 0);
            /// What each owner account id stands for: id (`u32`) → [`OwnerAccountKey`].
            OWNER_KEYS: HashMap<u32, $crate::OwnerAccountKey> = pinned($crate::MAX_OWNERS, 0);
            /// Live sockets per label: a per-CPU array, label id → `u64` (each CPU's value may
            /// wrap below zero; the sum over CPUs is the count).
            LABEL_SOCKETS: PerCpuArray<u32, u64> = pinned($crate::MAX_LABELS, 0);
            /// The id allocator: an array of `u32`, [`ALLOC_NEXT_ACCOUNT`] and
            /// [`ALLOC_NEXT_OWNER`].
            ALLOCATOR: Array<u32, u32> = pinned(2, 0);
            /// Failure and event counters: a per-CPU array of `u64` indexed by [`Counter`].
            COUNTERS: PerCpuArray<u32, u64> = pinned($crate::Counter::COUNT, 0);
            /// What the running daemon tells the kernel: an array of `u64` indexed by
            /// [`Control`]. Written by the daemon only.
            CONTROL: Array<u32, u64> = pinned($crate::Control::COUNT, 0);
            /// Final `tcp_info` counters of TCP sockets that reached `TCP_CLOSE` while
            /// validation of closed sockets was on: label id (`u32`) → [`Totals`] (tx =
            /// `bytes_acked`, rx = `bytes_received`).
            VALIDATION: HashMap<u32, $crate::Totals> =
                pinned($crate::MAX_LABELS, $crate::MAP_NO_PREALLOC);
            /// Labeling rules the kernel applies to new sockets: [`OwnerKey`] → label id
            /// (`u32`). Written by the daemon.
            RULES: HashMap<$crate::OwnerKey, u32> = pinned($crate::MAX_RULES, 0);
            /// Which kinds of rules exist: an array of one `u32`, a bit per [`OwnerKind`]
            /// (`1 << kind`), so new sockets skip the lookups of kinds without rules. Written
            /// by the daemon.
            RULE_KINDS: Array<u32, u32> = pinned(1, 0);
            /// The destination of remote addresses: an LPM trie of [`DestinationPrefix`] →
            /// destination id (`u32`: [`DESTINATION_PRIVATE`], [`DESTINATION_HOST`] or a named
            /// network's id); an address no prefix covers is [`DESTINATION_INTERNET`]. Written
            /// by the daemon at start (pinned, so the programs of an earlier daemon of the same
            /// build see the new config too).
            DESTINATIONS: LpmTrie<$crate::DestinationPrefix, u32> =
                pinned($crate::MAX_DESTINATION_PREFIXES, $crate::MAP_NO_PREALLOC);
            /// Sockets closing: a ring buffer of [`ClosedSocket`] records (their label, peer and
            /// payload), written by `sock_release`, read by the daemon for `get --peers`.
            /// Pinned: records written while the daemon was down are read by the next one.
            CLOSED_SOCKETS: RingBuf<(), ()> = pinned($crate::CLOSED_SOCKETS_BYTES, 0);
            /// Tasks inside `udp_sendpage` (fexit fallback), by pid/tgid: their nested
            /// `udp_sendmsg` is not counted. Kernel-internal; not pinned.
            IN_UDP_SENDPAGE: HashMap<u64, u8> = with_max_entries(16_384, 0);
        }
    };
}

/// The kernel's `bpf_map_type` of each kind of map the object has.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    HashMap = 1,
    Array = 2,
    PerCpuArray = 6,
    LpmTrie = 11,
    SkStorage = 24,
    RingBuf = 27,
}

/// One map of the kernel object, as the daemon expects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSpec {
    /// Its name in the object (and of its pin).
    pub name: &'static str,
    pub kind: MapKind,
    pub key_size: usize,
    pub value_size: usize,
    /// Default capacity (0 for socket storage, which has none).
    pub max_entries: u32,
    /// `map_flags` (`BPF_F_NO_PREALLOC` or 0).
    pub flags: u32,
    /// Pinned under the daemon's bpffs dir (its totals outlive the daemon).
    pub pinned: bool,
}

macro_rules! map_specs {
    ($(
        $(#[$doc:meta])*
        $name:ident: $kind:ident<$key:ty, $value:ty> = $ctor:ident($capacity:expr, $flags:expr);
    )*) => {
        /// Every map of the kernel object (from `for_each_map!`), by its name.
        pub mod map {
            use super::{MapKind, MapSpec};
            #[allow(unused_imports, reason = "the doc links of the table")]
            use crate::*;
            $(
                $(#[$doc])*
                pub const $name: MapSpec = MapSpec {
                    name: stringify!($name),
                    kind: MapKind::$kind,
                    key_size: size_of::<$key>(),
                    value_size: size_of::<$value>(),
                    max_entries: $capacity,
                    flags: $flags,
                    pinned: map_specs!(@pinned $ctor),
                };
            )*
            /// All of them.
            pub const ALL: &[MapSpec] = &[$($name),*];
        }
    };
    (@pinned pinned) => { true };
    (@pinned with_max_entries) => { false };
}

for_each_map!(map_specs);
