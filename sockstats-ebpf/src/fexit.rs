//! The fexit fallback for kernels without the `sock_send_length`/`sock_recv_length` tracepoints
//! (before 6.3): programs on the protocols' own sendmsg/recvmsg that count the *return value*,
//! through the same [`payload`] logic as the tracepoints.
//!
//! An fexit context is the traced function's arguments as 64-bit slots followed by its return
//! value, so the return value's slot is the function's parameter count. Where a signature
//! changed between kernels there is one program per signature, each with fixed slots (the
//! verifier only allows constant context offsets); the daemon loads the one that matches the
//! running kernel's BTF and refuses to guess.
//!
//! - `tcp_sendmsg(sk, msg, size)`, `udp_sendmsg(sk, msg, len)`, `udpv6_sendmsg(sk, msg, len)`:
//!   unchanged since 4.x.
//! - `tcp_recvmsg`, `udp_recvmsg`, `udpv6_recvmsg`: `(sk, msg, len, nonblock, flags, addr_len)`
//!   until 5.18, `(sk, msg, len, flags, addr_len)` from 5.19 on (the `nonblock` argument was
//!   folded into `flags`: <https://elixir.bootlin.com/linux/v5.19/source/net/ipv4/tcp.c>),
//!   and `(sk, msg, len, flags)` after 6.12 (`addr_len` gone: so in the BTF of 6.18 and of
//!   Debian's 7.2, which the daemon refused until these programs existed).
//! - `tcp_sendpage(sk, page, offset, size, flags)`, `udp_sendpage(…)`: sendfile/splice to TCP
//!   and IPv4 UDP before 6.5, when they were removed in favour of `MSG_SPLICE_PAGES` through
//!   sendmsg. `udp_sendpage` calls `udp_sendmsg` itself: with a zero length on 5.10, with the
//!   data on Debian's 6.1 (measured: counting both counted sendfile twice). So a task inside
//!   `udp_sendpage` is marked (fentry) and its nested `udp_sendmsg` is not counted; the
//!   sendpage's return value is. IPv6 UDP has no sendpage and goes through `udpv6_sendmsg`.
//!
//! `udpv6_sendmsg` hands datagrams to v4-mapped addresses on to `udp_sendmsg`, so
//! `udp_sendmsg` counts only `AF_INET` sockets; each send is counted once.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{fentry, fexit, map},
    maps::HashMap,
    programs::{FEntryContext, FExitContext},
};

use crate::{
    payload::{self, c_int},
    sock,
};

/// Tasks inside `udp_sendpage`, by pid/tgid: their nested `udp_sendmsg` is not counted. Tasks
/// beyond its capacity (concurrent sendfiles to UDP) are counted at `udp_sendmsg` and their
/// sendpage is not: never twice.
#[map(name = "IN_UDP_SENDPAGE")]
static IN_UDP_SENDPAGE: HashMap<u64, u8> = HashMap::with_max_entries(16_384, 0);

fn current_task() -> u64 {
    bpf_get_current_pid_tgid()
}

/// Slot `n` of the context: argument `n`, or the return value when `n` is the parameter count.
#[inline(always)]
fn slot(ctx: &FExitContext, n: usize) -> u64 {
    ctx.arg(n)
}

/// A send function with the socket first and `PARAMS` parameters returned.
#[inline(always)]
fn sent<const PARAMS: usize>(ctx: &FExitContext) {
    payload::on_send(ctx.arg(0), c_int(slot(ctx, PARAMS)));
}

/// A receive function with the socket first, `flags` at `FLAGS` and `PARAMS` parameters
/// returned.
#[inline(always)]
fn received<const FLAGS: usize, const PARAMS: usize>(ctx: &FExitContext) {
    payload::on_recv(
        ctx.arg(0),
        c_int(slot(ctx, PARAMS)),
        c_int(slot(ctx, FLAGS)),
    );
}

/// `int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)`.
#[fexit(function = "tcp_sendmsg")]
pub fn fexit_tcp_sendmsg(ctx: FExitContext) -> i32 {
    sent::<3>(&ctx);
    0
}

/// `int tcp_sendpage(struct sock *sk, struct page *page, int offset, size_t size, int flags)`
/// (before 6.5).
#[fexit(function = "tcp_sendpage")]
pub fn fexit_tcp_sendpage(ctx: FExitContext) -> i32 {
    sent::<5>(&ctx);
    0
}

/// Marks the task as inside `udp_sendpage`.
#[fentry(function = "udp_sendpage")]
pub fn fentry_udp_sendpage(_ctx: FEntryContext) -> i32 {
    let _ = IN_UDP_SENDPAGE.insert(current_task(), 1, 0);
    0
}

/// `int udp_sendpage(struct sock *sk, struct page *page, int offset, size_t size, int flags)`
/// (before 6.5), if its entry marked the task.
#[fexit(function = "udp_sendpage")]
pub fn fexit_udp_sendpage(ctx: FExitContext) -> i32 {
    if IN_UDP_SENDPAGE.remove(current_task()).is_ok() {
        sent::<5>(&ctx);
    }
    0
}

/// `int udp_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)`, `AF_INET` sockets only.
#[fexit(function = "udp_sendmsg")]
pub fn fexit_udp_sendmsg(ctx: FExitContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    // SAFETY: the value is only tested for presence.
    let in_sendpage = unsafe { IN_UDP_SENDPAGE.get(current_task()) }.is_some();
    if sock::is_ipv4_sock(sk) && !in_sendpage {
        sent::<3>(&ctx);
    }
    0
}

/// `int udpv6_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)`.
#[fexit(function = "udpv6_sendmsg")]
pub fn fexit_udpv6_sendmsg(ctx: FExitContext) -> i32 {
    sent::<3>(&ctx);
    0
}

/// `tcp_recvmsg(sk, msg, len, flags)`, without `addr_len` (after 6.12).
#[fexit(function = "tcp_recvmsg")]
pub fn fexit_tcp_recvmsg_noaddrlen(ctx: FExitContext) -> i32 {
    received::<3, 4>(&ctx);
    0
}

/// `tcp_recvmsg(sk, msg, len, flags, addr_len)`, 5.19+.
#[fexit(function = "tcp_recvmsg")]
pub fn fexit_tcp_recvmsg(ctx: FExitContext) -> i32 {
    received::<3, 5>(&ctx);
    0
}

/// `tcp_recvmsg(sk, msg, len, nonblock, flags, addr_len)`, before 5.19.
#[fexit(function = "tcp_recvmsg")]
pub fn fexit_tcp_recvmsg_nonblock(ctx: FExitContext) -> i32 {
    received::<4, 6>(&ctx);
    0
}

/// `udp_recvmsg(sk, msg, len, flags)`, without `addr_len` (after 6.12).
#[fexit(function = "udp_recvmsg")]
pub fn fexit_udp_recvmsg_noaddrlen(ctx: FExitContext) -> i32 {
    received::<3, 4>(&ctx);
    0
}

/// `udp_recvmsg(sk, msg, len, flags, addr_len)`, 5.19+.
#[fexit(function = "udp_recvmsg")]
pub fn fexit_udp_recvmsg(ctx: FExitContext) -> i32 {
    received::<3, 5>(&ctx);
    0
}

/// `udp_recvmsg(sk, msg, len, noblock, flags, addr_len)`, before 5.19.
#[fexit(function = "udp_recvmsg")]
pub fn fexit_udp_recvmsg_nonblock(ctx: FExitContext) -> i32 {
    received::<4, 6>(&ctx);
    0
}

/// `udpv6_recvmsg(sk, msg, len, flags)`, without `addr_len` (after 6.12).
#[fexit(function = "udpv6_recvmsg")]
pub fn fexit_udpv6_recvmsg_noaddrlen(ctx: FExitContext) -> i32 {
    received::<3, 4>(&ctx);
    0
}

/// `udpv6_recvmsg(sk, msg, len, flags, addr_len)`, 5.19+.
#[fexit(function = "udpv6_recvmsg")]
pub fn fexit_udpv6_recvmsg(ctx: FExitContext) -> i32 {
    received::<3, 5>(&ctx);
    0
}

/// `udpv6_recvmsg(sk, msg, len, noblock, flags, addr_len)`, before 5.19.
#[fexit(function = "udpv6_recvmsg")]
pub fn fexit_udpv6_recvmsg_nonblock(ctx: FExitContext) -> i32 {
    received::<4, 6>(&ctx);
    0
}
