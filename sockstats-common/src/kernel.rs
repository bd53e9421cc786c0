//! The layout of the BPF maps: names, capacities, keys and values.
//!
//! The kernel programs (`sockstats-ebpf`) write these and the daemon reads them. A change here
//! changes the layout of pinned maps, so the daemon refuses to reuse pins from an older layout.

/// Version of the map layout below. Bump it with any change to a map's key, value or meaning:
/// pins are kept in a directory named after it (with the value sizes), so a daemon never reads
/// maps pinned by a build with another layout.
pub const MAP_LAYOUT_VERSION: u32 = 1;

/// Label id of sockets nobody labeled. Never handed out to a name.
pub const UNLABELED_ID: u32 = 0;

/// Live sockets: socket cookie (`u64`) → [`SocketEntry`].
pub const SOCKETS_MAP: &str = "SOCKETS";
/// Labels of live sockets: socket cookie (`u64`) → label id (`u32`). Written by the daemon.
pub const SOCKET_LABELS_MAP: &str = "SOCKET_LABELS";
/// Bytes of closed sockets folded in by `sock_release`: label id (`u32`) → [`Totals`].
pub const LABEL_TOTALS_MAP: &str = "LABEL_TOTALS";
/// Failure and event counters: an array of `u64` indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";

/// Default capacity of [`SOCKETS_MAP`] and [`SOCKET_LABELS_MAP`]: live inet sockets tracked at once.
pub const DEFAULT_MAX_SOCKETS: u32 = 262_144;
/// Capacity of [`LABEL_TOTALS_MAP`]; the daemon never hands out more label ids than this.
pub const MAX_LABELS: u32 = 16_384;

/// Global variable (u64) in the kernel object: id of the cgroup whose subtree is accounted.
pub const GLOBAL_ROOT_CGROUP_ID: &str = "ROOT_CGROUP_ID";
/// Global variable (u32) in the kernel object: depth of that cgroup below the cgroup2 mount;
/// 0 means the whole host and switches the subtree check off.
pub const GLOBAL_ROOT_CGROUP_LEVEL: &str = "ROOT_CGROUP_LEVEL";

/// One live socket's payload bytes and who owns it. Key: the socket cookie.
///
/// Created by `cgroup/sock_create`, or lazily on first traffic for accepted sockets and sockets
/// older than the programs. The byte counters only ever grow, by atomic adds.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketEntry {
    /// Payload bytes sent (`sendmsg` return values).
    pub tx_bytes: u64,
    /// Payload bytes received (`recvmsg` return values, peeks excluded).
    pub rx_bytes: u64,
    /// cgroup v2 id of the task that created the socket (or first moved bytes on it).
    pub cgroup_id: u64,
    /// uid of that task.
    pub uid: u32,
    /// Process id (thread-group id) of that task.
    pub tgid: u32,
}
const _: () = assert!(size_of::<SocketEntry>() == 32);

/// Payload bytes in both directions.
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

/// Slots of [`COUNTERS_MAP`]. Every way the kernel side can fail to account a byte has one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A socket found [`SOCKETS_MAP`] full; its bytes went to the overflow bucket.
    SocketsMapFull = 0,
    /// Payload bytes sent by sockets that found [`SOCKETS_MAP`] full.
    OverflowTxBytes = 1,
    /// Payload bytes received by sockets that found [`SOCKETS_MAP`] full.
    OverflowRxBytes = 2,
    /// A closing socket found [`LABEL_TOTALS_MAP`] full; its bytes went to the overflow bucket.
    LabelTotalsFull = 3,
    /// Sockets whose entry `cgroup/sock_create` made.
    SocketsCreated = 4,
    /// Sockets whose entry was made on first traffic (accepted, or older than the programs).
    SocketsCreatedLazily = 5,
    /// Sockets folded into label totals by `cgroup/sock_release` (bumped after the fold).
    SocketsReleased = 6,
    /// `cgroup/sock_release` runs begun (bumped before the fold). While it differs from
    /// [`Counter::SocketsReleased`] a fold is in flight; the daemon uses the pair to take
    /// snapshots no fold interleaves with.
    ReleasesStarted = 7,
}

impl Counter {
    /// Number of slots in [`COUNTERS_MAP`].
    pub const COUNT: u32 = 8;
    pub const ALL: [Counter; Self::COUNT as usize] = [
        Counter::SocketsMapFull,
        Counter::OverflowTxBytes,
        Counter::OverflowRxBytes,
        Counter::LabelTotalsFull,
        Counter::SocketsCreated,
        Counter::SocketsCreatedLazily,
        Counter::SocketsReleased,
        Counter::ReleasesStarted,
    ];

    /// Stable `snake_case` name, used by `debug` and metrics.
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
        }
    }
}

#[cfg(feature = "pod")]
mod pod {
    // SAFETY: both are `#[repr(C)]`, `Copy`, have no padding (sizes asserted above) and every bit
    // pattern is a valid value.
    unsafe impl aya::Pod for super::SocketEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Totals {}
}
