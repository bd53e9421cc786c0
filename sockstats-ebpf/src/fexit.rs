//! The fexit fallback for kernels without the `sock_send_length`/`sock_recv_length` tracepoints
//! (before 6.3): programs on the protocols' own sendmsg/recvmsg that count the *return value*,
//! through the same [`payload`] logic as the tracepoints.
//!
//! The programs, the functions they attach to and the context slots they read are one table,
//! `for_each_fexit_program!` in `sockstats-common` (which says why each signature exists); the
//! daemon picks the programs to attach from the same table. Here each entry becomes a program.
use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};

use crate::{
    maps::IN_UDP_SENDPAGE,
    payload::{self, c_int},
    sock,
};

// `IN_UDP_SENDPAGE` (a map): tasks inside `udp_sendpage`, by pid/tgid. Tasks beyond its
// capacity (concurrent sendfiles to UDP) are counted at `udp_sendmsg` and their sendpage is
// not: never twice.

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

macro_rules! fexit_programs {
    ($(
        $(#[$doc:meta])*
        $program:ident: $function:tt($params:tt) $body:ident $(($arg:tt))? $($optional:ident)?;
    )*) => {
        $( fexit_programs!(@program [$(#[$doc])*] $program $function $params $body $(($arg))?); )*
    };
    (@program [$($doc:tt)*] $program:ident $function:tt $params:tt send) => {
        $($doc)*
        #[fexit(function = $function)]
        pub fn $program(ctx: FExitContext) -> i32 {
            sent::<$params>(&ctx);
            0
        }
    };
    (@program [$($doc:tt)*] $program:ident $function:tt $params:tt recv($flags:tt)) => {
        $($doc)*
        #[fexit(function = $function)]
        pub fn $program(ctx: FExitContext) -> i32 {
            received::<$flags, $params>(&ctx);
            0
        }
    };
    (@program [$($doc:tt)*] $program:ident $function:tt $params:tt send_if_entered($entry:ident)) => {
        /// Marks the task as inside the function.
        #[fentry(function = $function)]
        pub fn $entry(_ctx: FEntryContext) -> i32 {
            let _ = IN_UDP_SENDPAGE.insert(current_task(), 1, 0);
            0
        }

        $($doc)*
        #[fexit(function = $function)]
        pub fn $program(ctx: FExitContext) -> i32 {
            if IN_UDP_SENDPAGE.remove(current_task()).is_ok() {
                sent::<$params>(&ctx);
            }
            0
        }
    };
    (@program [$($doc:tt)*] $program:ident $function:tt $params:tt send_ipv4_unless_entered) => {
        $($doc)*
        #[fexit(function = $function)]
        pub fn $program(ctx: FExitContext) -> i32 {
            let sk: *const u8 = ctx.arg(0);
            // SAFETY: the value is only tested for presence.
            let in_sendpage = unsafe { IN_UDP_SENDPAGE.get(current_task()) }.is_some();
            if sock::is_ipv4_sock(sk) && !in_sendpage {
                sent::<$params>(&ctx);
            }
            0
        }
    };
}

sockstats_common::for_each_fexit_program!(fexit_programs);
