//! The sockstats kernel programs.
//!
//! - `sock_send_length` / `sock_recv_length` (`tp_btf`, kernel 6.3+): add each successful
//!   sendmsg/recvmsg return value of an `AF_INET`/`AF_INET6` socket to its label's account of
//!   the interface and destination, to its owner's account of the destination and to its own
//!   state (socket-local storage).
//! - `fexit_*` (fexit on `tcp_sendmsg`, `tcp_recvmsg`, `udp_sendmsg`, …): the same counting for
//!   kernels without those tracepoints; the daemon attaches one set or the other.
//! - `sock_create` (`cgroup/sock_create`): make the state with its owner, and label it by the
//!   rules (uid, cgroup) the daemon wrote.
//! - `sock_release` (`cgroup/sock_release`): take the socket out of the live-socket gauges and
//!   leave its peer and payload for `get --peers` ([`closed`]). Nothing is folded: its bytes
//!   are in the accounts already.
//! - `packet_egress` / `packet_ingress` (`cgroup_skb`): record the interface and destination
//!   ([`destinations`]) each socket's packets use and their IP-layer bytes and packets.
//! - `relabel_socket` (`cgroup/setsockopt`): the daemon's relabels, moving a live socket's
//!   bytes between accounts exactly ([`relabel`]).
//! - `socket_states` (`iter/bpf_sk_storage_map`): the live sockets, for the views that need them.
//! - `inet_sock_set_state` (`tp_btf`, only where needed): see [`programs`].
//!
//! Every program is bounded (only loops over the few slots, unrolled), does at most a handful
//! of map operations (a prefix lookup only when a socket's remote address changes), and policy
//! (labels, names, queries) stays in the daemon. Nothing here logs per packet or per send.
//!
//! On the host (`cargo check`/`clippy` of the workspace) this binary is an empty stub.
#![cfg_attr(target_arch = "bpf", no_std, no_main, feature(core_intrinsics))]
#![allow(
    unsafe_code,
    reason = "kernel programs read kernel memory and map values through raw pointers; the \
              workspace denies unsafe_code everywhere else"
)]
#![cfg_attr(
    target_arch = "bpf",
    expect(
        internal_features,
        reason = "atomic_xadd is the only 64-bit atomic add bpfel offers"
    )
)]
#![cfg_attr(
    target_arch = "bpf",
    expect(
        clippy::inline_always,
        reason = "the hot paths must inline into each program: BPF calls cost and limit stack"
    )
)]
#![cfg_attr(
    target_arch = "bpf",
    expect(
        clippy::needless_pass_by_value,
        reason = "aya's program macros hand the context over by value"
    )
)]

#[cfg(target_arch = "bpf")]
mod accounts;
#[cfg(target_arch = "bpf")]
mod closed;
#[cfg(target_arch = "bpf")]
mod control;
#[cfg(target_arch = "bpf")]
mod counters;
#[cfg(target_arch = "bpf")]
mod destinations;
#[cfg(target_arch = "bpf")]
mod fexit;
#[cfg(target_arch = "bpf")]
mod globals;
#[cfg(target_arch = "bpf")]
mod iter;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod packets;
#[cfg(target_arch = "bpf")]
mod payload;
#[cfg(target_arch = "bpf")]
mod programs;
#[cfg(target_arch = "bpf")]
mod relabel;
#[cfg(target_arch = "bpf")]
mod relabel_program;
#[cfg(target_arch = "bpf")]
mod rules;
#[cfg(target_arch = "bpf")]
mod scope;
#[cfg(target_arch = "bpf")]
mod slots;
#[cfg(target_arch = "bpf")]
mod sock;
#[cfg(target_arch = "bpf")]
mod sockets;
#[cfg(target_arch = "bpf")]
mod state;
#[cfg(target_arch = "bpf")]
mod validation;

/// Every program the table of programs in `sockstats-common` (`for_each_program!`) names is
/// here under that name (the daemon attaches them by it; its test of the built object checks
/// their sections).
#[cfg(target_arch = "bpf")]
macro_rules! check_programs {
    ($( $(#[$doc:meta])* $const:ident = $name:ident: $kind:ident $target:literal; )*) => {
        const _: () = {
            use crate::programs::*;
            $( let _ = $name; )*
        };
    };
}
#[cfg(target_arch = "bpf")]
sockstats_common::for_each_program!(check_programs);

#[cfg(not(target_arch = "bpf"))]
fn main() {}
