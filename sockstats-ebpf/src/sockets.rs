//! Per-socket entries: creation (eager and lazy), payload counting, and release.
use aya_ebpf::{
    bindings::{bpf_sock, BPF_NOEXIST},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_get_socket_cookie, bpf_probe_read_kernel,
    },
    macros::map,
    maps::{HashMap, LruHashMap},
    programs::SockContext,
    EbpfContext, Global,
};
use aya_log_ebpf::warn;
use sockstats_common::{
    Counter, SocketEntry, DEFAULT_MAX_SOCKETS, MAP_NO_PREALLOC, RELEASED_TOMBSTONES, UNLABELED_ID,
};

use crate::{
    counters, owners,
    rules::{self, SeenBy},
    scope, slots, totals,
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// Offset of `skc_family` in `struct sock` (inside `struct sock_common`, which starts it):
/// after `skc_addrpair` (8 bytes), `skc_hash` (4) and `skc_portpair` (4). This layout has not
/// changed since Linux 3.x: <https://elixir.bootlin.com/linux/v6.18/source/include/net/sock.h>
const SKC_FAMILY_OFFSET: usize = 16;

#[map(name = "SOCKETS")]
pub static SOCKETS: HashMap<u64, SocketEntry> =
    HashMap::pinned(DEFAULT_MAX_SOCKETS, MAP_NO_PREALLOC);

#[map(name = "SOCKET_LABELS")]
pub static SOCKET_LABELS: HashMap<u64, u32> = HashMap::pinned(DEFAULT_MAX_SOCKETS, MAP_NO_PREALLOC);

/// Recently released sockets: cookie → the label they were folded under. Their last packets
/// (FIN, ACKs, retransmits after `close`) go to that label's totals instead of making a new
/// entry that no release would ever remove. LRU: old tombstones make room for new ones.
#[map(name = "RELEASED")]
pub static RELEASED: LruHashMap<u64, u32> = LruHashMap::pinned(RELEASED_TOMBSTONES, 0);

#[derive(Clone, Copy)]
pub enum Direction {
    Tx,
    Rx,
}

fn is_inet(family: u16) -> bool {
    family == AF_INET || family == AF_INET6
}

/// The owner fields of the current task.
fn current_owner() -> (u64, u32, u32) {
    // SAFETY: plain helper calls without arguments.
    let (pid_tgid, uid_gid, cgroup_id) = unsafe {
        (
            bpf_get_current_pid_tgid(),
            bpf_get_current_uid_gid(),
            bpf_get_current_cgroup_id(),
        )
    };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "uid is the low half, tgid the high half"
    )]
    (cgroup_id, uid_gid as u32, (pid_tgid >> 32) as u32)
}

fn entry_for_current_task() -> SocketEntry {
    let (cgroup_id, uid, tgid) = current_owner();
    SocketEntry {
        cgroup_id,
        uid,
        tgid,
        ..SocketEntry::default()
    }
}

/// The entry of `cookie`, made with `new` if there is none. `None` when the map is full.
#[inline(always)]
pub fn entry_or_insert(cookie: u64, new: &SocketEntry) -> Option<*mut SocketEntry> {
    if let Some(entry) = SOCKETS.get_ptr_mut(cookie) {
        return Some(entry);
    }
    // Fails if another CPU inserted first (then the lookup finds its entry) or if full.
    if SOCKETS.insert(cookie, new, u64::from(BPF_NOEXIST)).is_ok() {
        counters::bump(Counter::SocketsCreatedLazily);
    }
    let entry = SOCKETS.get_ptr_mut(cookie);
    if entry.is_none() {
        counters::bump(Counter::SocketsMapFull);
    }
    entry
}

/// The address family of the `struct sock *` `sk`.
#[inline(always)]
fn family_of(sk: *const u8) -> u16 {
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "skc_family is a u16 at a 2-aligned offset of an aligned struct sock"
    )]
    let family_ptr = sk.wrapping_add(SKC_FAMILY_OFFSET).cast::<u16>();
    // SAFETY: `sk` is a BTF-typed `struct sock *` argument (tp_btf/fexit): the verifier checks
    // this read against the kernel's BTF and makes it a fault-safe load (`BPF_PROBE_MEM`),
    // without the cost of a bpf_probe_read_kernel helper call.
    unsafe { core::ptr::read_volatile(family_ptr) }
}

/// Is the `struct sock *` `sk` an `AF_INET`/`AF_INET6` socket?
#[inline(always)]
fn is_inet_sock(sk: *const u8) -> bool {
    is_inet(family_of(sk))
}

/// Is the `struct sock *` `sk` an `AF_INET` socket?
#[inline(always)]
pub fn is_ipv4_sock(sk: *const u8) -> bool {
    family_of(sk) == AF_INET
}

/// Offset of `sk_cookie` (`__sk_common.skc_cookie`) in `struct sock`, read from the kernel's
/// BTF by the daemon when tracing programs may not call `bpf_get_socket_cookie` (before 5.12);
/// 0 when they may. A read-only global: the verifier sees it as a constant and never checks
/// the branch not taken, so the helper call does not stop the program loading on 5.10.
#[no_mangle]
static SOCK_COOKIE_OFFSET: Global<u32> = Global::new(0);

/// The cookie of the `struct sock *` `sk` handed to a tracing program; 0 if it has none yet.
///
/// With the helper (Linux 5.12+) a socket without a cookie gets one. Before, the field is
/// read as it is: the cookie is made when something first asks for it, and the cgroup
/// programs ask for every socket in the accounted subtree (at creation, or at its first
/// packet for accepted sockets), before its first send or receive returns.
#[inline(always)]
pub fn socket_cookie(sk: *const u8) -> u64 {
    let offset = SOCK_COOKIE_OFFSET.load();
    if offset == 0 {
        // SAFETY: `sk` is the tracing program's valid socket pointer.
        return unsafe { bpf_get_socket_cookie(sk.cast_mut().cast()) };
    }
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "skc_cookie is an atomic64_t, 8-aligned in an aligned struct sock"
    )]
    let cookie_ptr = sk.wrapping_add(offset as usize).cast::<u64>();
    // SAFETY: probe_read copes with any address.
    unsafe { bpf_probe_read_kernel(cookie_ptr) }.unwrap_or(0)
}

fn overflow_of(direction: Direction) -> Counter {
    match direction {
        Direction::Tx => Counter::OverflowTxBytes,
        Direction::Rx => Counter::OverflowRxBytes,
    }
}

/// Adds `bytes` moved in `direction` by the socket `sk` (a `struct sock *` from a tracepoint)
/// to the interface its packets last used in that direction.
#[inline(always)]
pub fn count_payload(sk: *const u8, direction: Direction, bytes: u64) {
    if sk.is_null() || bytes == 0 {
        return;
    }
    if !is_inet_sock(sk) {
        return;
    }
    let cookie = socket_cookie(sk);
    if cookie == 0 {
        // Only before 5.12, for a socket nothing asked the cookie of (see `socket_cookie`):
        // counted, in the overflow bucket, never dropped.
        counters::bump(Counter::NoCookie);
        counters::add(overflow_of(direction), bytes);
        return;
    }

    let entry = match SOCKETS.get_ptr_mut(cookie) {
        Some(entry) => entry,
        None if scope::current_task_in_scope() => {
            let new = entry_for_current_task();
            let Some(entry) = entry_or_insert(cookie, &new) else {
                counters::add(overflow_of(direction), bytes);
                return;
            };
            rules::label_new_socket(cookie, new.uid, SeenBy::TracingProgram);
            entry
        }
        None => return,
    };
    // SAFETY: `entry` points at a value of SOCKETS; the slot index is bounds-checked by
    // `counters_of` and the adds are atomic.
    unsafe {
        if (*entry).tgid == 0 {
            // Made from a packet (an accepted socket): the first task to use it owns it.
            let (cgroup_id, uid, tgid) = current_owner();
            (*entry).cgroup_id = cgroup_id;
            (*entry).uid = uid;
            (*entry).tgid = tgid;
            rules::label_new_socket(cookie, uid, SeenBy::TracingProgram);
        }
        match direction {
            Direction::Tx => {
                let counters = slots::counters_of(entry, (*entry).tx_slot);
                counters::atomic_add(&raw mut (*counters).payload.tx_bytes, bytes);
            }
            Direction::Rx => {
                let counters = slots::counters_of(entry, (*entry).rx_slot);
                counters::atomic_add(&raw mut (*counters).payload.rx_bytes, bytes);
            }
        }
    }
}

fn inet_cookie(ctx: &SockContext) -> Option<u64> {
    // SAFETY: `ctx.sock` is the program's context, a valid `struct bpf_sock`.
    let family = unsafe { (*ctx.sock).family };
    if family != u32::from(AF_INET) && family != u32::from(AF_INET6) {
        return None;
    }
    // SAFETY: cgroup/sock programs may ask for their socket's cookie.
    Some(unsafe { bpf_get_socket_cookie(ctx.sock.cast::<bpf_sock>().cast()) })
}

/// `cgroup/sock_create`: record the owner of a new inet socket.
pub fn on_create(ctx: &SockContext) {
    let Some(cookie) = inet_cookie(ctx) else {
        return;
    };
    let entry = entry_for_current_task();
    if SOCKETS
        .insert(cookie, entry, u64::from(BPF_NOEXIST))
        .is_ok()
    {
        counters::bump(Counter::SocketsCreated);
        rules::label_new_socket(cookie, entry.uid, SeenBy::CgroupProgram);
    } else {
        // A fresh cookie cannot exist yet: the map is full. The socket's bytes will go to the
        // overflow bucket.
        counters::bump(Counter::SocketsMapFull);
        warn!(
            ctx,
            "sockstats: SOCKETS map full, socket {} goes to the overflow bucket", cookie
        );
    }
}

/// `cgroup/sock_release`: fold the socket and forget its label.
pub fn on_release(ctx: &SockContext) {
    let Some(cookie) = inet_cookie(ctx) else {
        return;
    };
    retire(ctx, cookie);
    let _ = SOCKET_LABELS.remove(cookie);
}

/// Offsets of `struct sock.sk_socket` and `struct socket.file` (from the kernel's BTF; set by
/// the daemon at load time, 0 when unknown).
#[no_mangle]
static SK_SOCKET_OFFSET: Global<u32> = Global::new(0);
#[no_mangle]
static SOCKET_FILE_OFFSET: Global<u32> = Global::new(0);

/// Does a process hold `sk` open (it has a `struct socket` with a file)? Then `sock_release`
/// will fold it, and a `sendmsg`/`recvmsg` may still be finishing on it right now.
#[inline(always)]
fn held_by_a_process(sk: *const u8) -> bool {
    let (sk_socket, file) = (SK_SOCKET_OFFSET.load(), SOCKET_FILE_OFFSET.load());
    if sk_socket == 0 || file == 0 {
        return false;
    }
    // SAFETY: probe reads cope with any address (and alignment); `sk` is the tracepoint's
    // socket, and both offsets come from the kernel's BTF.
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "pointer fields are 8-aligned in BTF"
    )]
    let socket =
        unsafe { bpf_probe_read_kernel(sk.wrapping_add(sk_socket as usize).cast::<u64>()) };
    let Ok(socket) = socket else {
        return false;
    };
    if socket == 0 {
        return false;
    }
    let socket = socket as *const u8;
    // SAFETY: as above.
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "pointer fields are 8-aligned in BTF"
    )]
    let file = unsafe { bpf_probe_read_kernel(socket.wrapping_add(file as usize).cast::<u64>()) };
    file.is_ok_and(|file| file != 0)
}

/// `tp_btf/inet_sock_set_state` into `TCP_CLOSE`: the backstop for sockets the release hook
/// never sees (kernel sockets, accepted connections dropped with their listener). Sockets a
/// process still holds are left to `sock_release`: a `sendmsg` finishing on another CPU while
/// an RST closes the socket would add its bytes to an entry already folded. Kernel sockets
/// have no file; if one sends while it closes, those last bytes can be missed.
pub fn on_tcp_close<C: EbpfContext>(ctx: &C, sk: *const u8) {
    if sk.is_null() || !is_inet_sock(sk) || held_by_a_process(sk) {
        return;
    }
    let cookie = socket_cookie(sk);
    if cookie != 0 && SOCKETS.get_ptr(cookie).is_some() {
        retire(ctx, cookie);
        counters::bump(Counter::FoldedAtClose);
    }
}

/// Tombstones the socket, deletes its entry and folds it into its label's totals, bracketed by
/// the counters the daemon's snapshots check.
fn retire<C: EbpfContext>(ctx: &C, cookie: u64) {
    counters::bump(Counter::ReleasesStarted);
    // SAFETY: the value is copied out at once.
    let label = unsafe { SOCKET_LABELS.get(cookie) }
        .copied()
        .unwrap_or(UNLABELED_ID);
    // Tombstone first: from here on a packet that finds no entry goes to the label's totals
    // instead of making a new entry no release would ever remove.
    let _ = RELEASED.insert(cookie, label, 0);
    if let Some(entry) = SOCKETS.get_ptr(cookie) {
        // Delete before folding: a reader that sees neither misses the socket for one reply
        // (and retries, see the daemon's snapshot), but no reader can ever see it twice.
        let _ = SOCKETS.remove(cookie);
        // SAFETY: SOCKETS does not preallocate, so a deleted element is freed only after an
        // RCU grace period, which cannot end while this program runs: reading it in place
        // (instead of copying 350 bytes to the 512-byte stack) is safe. No sendmsg/recvmsg
        // runs on a socket being released (they hold its file), so no payload is added now.
        let entry = unsafe { &*entry };
        let in_overflow = totals::fold(ctx, label, entry);
        owners::fold(entry, in_overflow);
    }
    counters::bump(Counter::SocketsReleased);
}
