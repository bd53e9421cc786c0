//! The program entry points: thin wrappers over [`crate::payload`], [`crate::sockets`] and
//! [`crate::packets`]. The fexit fallback for kernels before 6.3 is in [`crate::fexit`].
use aya_ebpf::{
    macros::{btf_tracepoint, cgroup_skb, cgroup_sock, cgroup_sockopt},
    programs::{BtfTracePointContext, SkBuffContext, SockContext, SockoptContext},
};

use crate::{
    iter, packets,
    payload::{self, c_int},
    relabel_program,
    sockets::{self, Direction},
    validation,
};

/// `trace_sock_send_length(struct sock *sk, int ret, int flags)`, fired by `sock_sendmsg` and
/// friends for every socket family:
/// <https://elixir.bootlin.com/linux/v6.18/source/include/trace/events/sock.h>
#[btf_tracepoint(function = "sock_send_length")]
pub fn sock_send_length(ctx: BtfTracePointContext) -> i32 {
    payload::on_send(ctx.arg(0), c_int(ctx.arg(1)));
    0
}

/// `trace_sock_recv_length(struct sock *sk, int ret, int flags)`, fired by `sock_recvmsg`.
#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    payload::on_recv(ctx.arg(0), c_int(ctx.arg(1)), c_int(ctx.arg(2)));
    0
}

/// `TCP_CLOSE` (`include/net/tcp_states.h`).
const TCP_CLOSE: i32 = 7;

/// `trace_inet_sock_set_state(const struct sock *sk, int oldstate, int newstate)`, attached
/// only where needed: before 5.11 the backstop that deletes cookie-keyed states of sockets
/// reaching `TCP_CLOSE` that no process holds, and, with `--validate-closed`, the final TCP
/// counters of every closing socket.
#[btf_tracepoint(function = "inet_sock_set_state")]
pub fn inet_sock_set_state(ctx: BtfTracePointContext) -> i32 {
    if c_int(ctx.arg(2)) == TCP_CLOSE {
        let sk: *const u8 = ctx.arg(0);
        validation::on_tcp_close(sk);
        sockets::on_tcp_close(sk);
    }
    0
}

/// The daemon relabels a socket it was handed with `setsockopt(SOL_SOCKSTATS)`: the bytes move
/// in the kernel. Every other `setsockopt` passes untouched.
#[cgroup_sockopt(setsockopt)]
pub fn relabel_socket(ctx: SockoptContext) -> i32 {
    relabel_program::on_setsockopt(&ctx)
}

/// Writes a [`sockstats_common::SocketRecord`] per live socket state, for the daemon's views
/// of live sockets (`get --by process`, validation).
#[no_mangle]
#[link_section = "iter/bpf_sk_storage_map"]
pub extern "C" fn socket_states(ctx: *mut core::ffi::c_void) -> i32 {
    iter::on_socket_state(ctx);
    0
}

/// Records the owner of every new inet socket in the accounted cgroup subtree.
#[cgroup_sock(sock_create)]
pub fn sock_create(ctx: SockContext) -> i32 {
    sockets::on_create(&ctx);
    1 // allow: accounting never refuses a socket
}

/// Folds a closing socket's bytes into its label's totals and forgets the socket.
#[cgroup_sock(sock_release)]
pub fn sock_release(ctx: SockContext) -> i32 {
    sockets::on_release(&ctx);
    1
}

/// Records the interface and IP-layer size of every outgoing packet of accounted sockets.
#[cgroup_skb(egress)]
pub fn packet_egress(ctx: SkBuffContext) -> i32 {
    packets::on_packet::<true>(&ctx, Direction::Tx);
    1 // allow: accounting never drops a packet
}

/// Records the interface and IP-layer size of every incoming packet of accounted sockets.
#[cgroup_skb(ingress)]
pub fn packet_ingress(ctx: SkBuffContext) -> i32 {
    packets::on_packet::<true>(&ctx, Direction::Rx);
    1
}

/// [`packet_egress`] for kernels before 5.12 (no `cmpxchg`).
#[cgroup_skb(egress)]
pub fn packet_egress_nocas(ctx: SkBuffContext) -> i32 {
    packets::on_packet::<false>(&ctx, Direction::Tx);
    1
}

/// [`packet_ingress`] for kernels before 5.12 (no `cmpxchg`).
#[cgroup_skb(ingress)]
pub fn packet_ingress_nocas(ctx: SkBuffContext) -> i32 {
    packets::on_packet::<false>(&ctx, Direction::Rx);
    1
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
