//! The program entry points: thin wrappers over [`crate::sockets`].
use aya_ebpf::{
    macros::{btf_tracepoint, cgroup_sock},
    programs::{BtfTracePointContext, SockContext},
};

/// `MSG_PEEK`: a peek reads bytes without consuming them; they are counted when really read.
const MSG_PEEK: i32 = 2;

/// `trace_sock_send_length(struct sock *sk, int ret, int flags)`, fired by `sock_sendmsg` and
/// friends for every socket family:
/// <https://elixir.bootlin.com/linux/v6.18/source/include/trace/events/sock.h>
#[btf_tracepoint(function = "sock_send_length")]
pub fn sock_send_length(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    if let Ok(bytes) = u64::try_from(ret as i32) {
        crate::sockets::count_payload(sk, crate::sockets::Direction::Tx, bytes);
    }
    0
}

/// `trace_sock_recv_length(struct sock *sk, int ret, int flags)`, fired by `sock_recvmsg`.
#[btf_tracepoint(function = "sock_recv_length")]
pub fn sock_recv_length(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let flags: i64 = ctx.arg(2);
    if (flags as i32) & MSG_PEEK != 0 {
        return 0;
    }
    if let Ok(bytes) = u64::try_from(ret as i32) {
        crate::sockets::count_payload(sk, crate::sockets::Direction::Rx, bytes);
    }
    0
}

/// Records the owner of every new inet socket in the accounted cgroup subtree.
#[cgroup_sock(sock_create)]
pub fn sock_create(ctx: SockContext) -> i32 {
    crate::sockets::on_create(&ctx);
    1 // allow: accounting never refuses a socket
}

/// Folds a closing socket's bytes into its label's totals and forgets the socket.
#[cgroup_sock(sock_release)]
pub fn sock_release(ctx: SockContext) -> i32 {
    crate::sockets::on_release(&ctx);
    1
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
