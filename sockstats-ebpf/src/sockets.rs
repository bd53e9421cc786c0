//! Per-socket entries: creation (eager and lazy), payload counting, and the fold on release.
use aya_ebpf::{
    bindings::{bpf_sock, BPF_NOEXIST},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_get_socket_cookie, bpf_probe_read_kernel,
    },
    macros::map,
    maps::HashMap,
    programs::SockContext,
};
use aya_log_ebpf::warn;
use sockstats_common::{
    Counter, SocketEntry, Totals, DEFAULT_MAX_SOCKETS, MAX_LABELS, UNLABELED_ID,
};

use crate::{counters, scope};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Offset of `skc_family` in `struct sock` (inside `struct sock_common`, which starts it):
/// after `skc_addrpair` (8 bytes), `skc_hash` (4) and `skc_portpair` (4). This layout has not
/// changed since Linux 3.x: <https://elixir.bootlin.com/linux/v6.18/source/include/net/sock.h>
const SKC_FAMILY_OFFSET: usize = 16;

#[map(name = "SOCKETS")]
static SOCKETS: HashMap<u64, SocketEntry> = HashMap::pinned(DEFAULT_MAX_SOCKETS, 0);

#[map(name = "SOCKET_LABELS")]
static SOCKET_LABELS: HashMap<u64, u32> = HashMap::pinned(DEFAULT_MAX_SOCKETS, 0);

#[map(name = "LABEL_TOTALS")]
static LABEL_TOTALS: HashMap<u32, Totals> = HashMap::pinned(MAX_LABELS, 0);

#[derive(Clone, Copy)]
pub enum Direction {
    Tx,
    Rx,
}

fn is_inet(family: u16) -> bool {
    family == AF_INET || family == AF_INET6
}

/// The owner fields of a new entry: the current task.
fn entry_for_current_task() -> SocketEntry {
    // SAFETY: plain helper calls without arguments.
    let (pid_tgid, uid_gid, cgroup_id) = unsafe {
        (
            bpf_get_current_pid_tgid(),
            bpf_get_current_uid_gid(),
            bpf_get_current_cgroup_id(),
        )
    };
    SocketEntry {
        tx_bytes: 0,
        rx_bytes: 0,
        cgroup_id,
        uid: uid_gid as u32,
        tgid: (pid_tgid >> 32) as u32,
    }
}

/// Adds `bytes` moved in `direction` by the socket `sk` (a `struct sock *` from a tracepoint).
#[inline(always)]
pub fn count_payload(sk: *const u8, direction: Direction, bytes: u64) {
    if sk.is_null() || bytes == 0 {
        return;
    }
    // SAFETY: `sk` is the tracepoint's `struct sock *`; probe_read copes with any address.
    let family = unsafe { bpf_probe_read_kernel(sk.wrapping_add(SKC_FAMILY_OFFSET).cast::<u16>()) };
    if !family.is_ok_and(is_inet) {
        return;
    }
    // SAFETY: `sk` is a valid socket pointer handed to us by the tracepoint.
    let cookie = unsafe { bpf_get_socket_cookie(sk.cast_mut().cast()) };

    let entry = match SOCKETS.get_ptr_mut(cookie) {
        Some(entry) => entry,
        None => {
            if !scope::current_task_in_scope() {
                return;
            }
            match SOCKETS.insert(cookie, entry_for_current_task(), u64::from(BPF_NOEXIST)) {
                Ok(()) => counters::bump(Counter::SocketsCreatedLazily),
                Err(_) => {} // another CPU created it first, or the map is full: see below
            }
            match SOCKETS.get_ptr_mut(cookie) {
                Some(entry) => entry,
                None => {
                    counters::bump(Counter::SocketsMapFull);
                    let overflow = match direction {
                        Direction::Tx => Counter::OverflowTxBytes,
                        Direction::Rx => Counter::OverflowRxBytes,
                    };
                    counters::add(overflow, bytes);
                    return;
                }
            }
        }
    };
    // SAFETY: `entry` points at a value of SOCKETS; the add is atomic.
    unsafe {
        match direction {
            Direction::Tx => counters::atomic_add(&raw mut (*entry).tx_bytes, bytes),
            Direction::Rx => counters::atomic_add(&raw mut (*entry).rx_bytes, bytes),
        }
    }
}

fn sock_family_and_cookie(ctx: &SockContext) -> Option<u64> {
    // SAFETY: `ctx.sock` is the program's context, a valid `struct bpf_sock`.
    let family = unsafe { (*ctx.sock).family };
    if !is_inet(family as u16) {
        return None;
    }
    // SAFETY: cgroup/sock programs may ask for their socket's cookie.
    Some(unsafe { bpf_get_socket_cookie(ctx.sock.cast::<bpf_sock>().cast()) })
}

/// `cgroup/sock_create`: record the owner of a new inet socket.
pub fn on_create(ctx: &SockContext) {
    let Some(cookie) = sock_family_and_cookie(ctx) else {
        return;
    };
    match SOCKETS.insert(cookie, entry_for_current_task(), u64::from(BPF_NOEXIST)) {
        Ok(()) => counters::bump(Counter::SocketsCreated),
        // The only other failure of a NOEXIST insert of a fresh cookie is a full map; the
        // socket is then counted in the overflow bucket when it moves bytes.
        Err(_) => {
            counters::bump(Counter::SocketsMapFull);
            warn!(
                ctx,
                "sockstats: SOCKETS map full, socket {} goes to the overflow bucket", cookie
            );
        }
    }
}

/// `cgroup/sock_release`: fold the socket's bytes into its label's totals, then delete it.
pub fn on_release(ctx: &SockContext) {
    let Some(cookie) = sock_family_and_cookie(ctx) else {
        return;
    };
    counters::bump(Counter::ReleasesStarted);
    // SAFETY: the value is copied out at once.
    let label = unsafe { SOCKET_LABELS.get(cookie) }
        .copied()
        .unwrap_or(UNLABELED_ID);
    // SAFETY: as above. No sendmsg/recvmsg can run on a socket being released (they hold a
    // reference to its file), so nothing adds to the entry while we read it.
    if let Some(entry) = unsafe { SOCKETS.get(cookie) }.copied() {
        // Delete before folding: a reader that sees neither misses the socket for one reply
        // (and retries, see the daemon's snapshot), but no reader can ever see it twice.
        let _ = SOCKETS.remove(cookie);
        if entry.tx_bytes != 0 || entry.rx_bytes != 0 {
            fold(ctx, label, entry.tx_bytes, entry.rx_bytes);
        }
    }
    let _ = SOCKET_LABELS.remove(cookie);
    counters::bump(Counter::SocketsReleased);
}

fn fold(ctx: &SockContext, label: u32, tx_bytes: u64, rx_bytes: u64) {
    let totals = match LABEL_TOTALS.get_ptr_mut(label) {
        Some(totals) => totals,
        None => {
            let _ = LABEL_TOTALS.insert(label, Totals::default(), u64::from(BPF_NOEXIST));
            match LABEL_TOTALS.get_ptr_mut(label) {
                Some(totals) => totals,
                None => {
                    counters::bump(Counter::LabelTotalsFull);
                    warn!(
                        ctx,
                        "sockstats: LABEL_TOTALS map full, label {} goes to overflow", label
                    );
                    counters::add(Counter::OverflowTxBytes, tx_bytes);
                    counters::add(Counter::OverflowRxBytes, rx_bytes);
                    return;
                }
            }
        }
    };
    // SAFETY: `totals` points at a value of LABEL_TOTALS; the adds are atomic.
    unsafe {
        counters::atomic_add(&raw mut (*totals).tx_bytes, tx_bytes);
        counters::atomic_add(&raw mut (*totals).rx_bytes, rx_bytes);
    }
}
