//! The programs of the kernel object other than the fexit fallback and its entry programs
//! ([`super::FEXIT_PROGRAMS`]): their names, kinds and where they attach.

/// Hands every program of the kernel object but the fexit ones to `$callback`:
/// `CONST = name: kind "target";` (`target` is the tracepoint, function, cgroup hook or
/// iterator; the object's section is `<kind's section>/<target>`).
#[macro_export]
macro_rules! for_each_program {
    ($callback:ident) => {
        $callback! {
            /// Payload of every send (6.3+).
            SOCK_SEND_LENGTH = sock_send_length: BtfTracePoint "sock_send_length";
            /// Payload of every receive (6.3+).
            SOCK_RECV_LENGTH = sock_recv_length: BtfTracePoint "sock_recv_length";
            /// TCP state changes: the `TCP_CLOSE` backstop and validation of closed sockets.
            INET_SOCK_SET_STATE = inet_sock_set_state: BtfTracePoint "inet_sock_set_state";
            /// The daemon's relabels (`setsockopt(SOL_SOCKSTATS)`).
            RELABEL_SOCKET = relabel_socket: CgroupSockopt "setsockopt";
            /// The live socket states, for the views that need them (not attached).
            SOCKET_STATES = socket_states: Iter "bpf_sk_storage_map";
            /// New sockets: owner and rules.
            SOCK_CREATE = sock_create: CgroupSock "sock_create";
            /// Closed sockets: out of the live-socket gauges.
            SOCK_RELEASE = sock_release: CgroupSock "sock_release";
            /// Outgoing packets: interface and IP-layer bytes.
            PACKET_EGRESS = packet_egress: CgroupSkb "egress";
            /// Incoming packets: interface and IP-layer bytes.
            PACKET_INGRESS = packet_ingress: CgroupSkb "ingress";
            /// `packet_egress` without `cmpxchg` (before 5.12).
            PACKET_EGRESS_NOCAS = packet_egress_nocas: CgroupSkb "egress";
            /// `packet_ingress` without `cmpxchg` (before 5.12).
            PACKET_INGRESS_NOCAS = packet_ingress_nocas: CgroupSkb "ingress";
        }
    };
}

/// What kind of program, by the section prefix the object gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    /// `tp_btf`
    BtfTracePoint,
    /// `fentry`
    FEntry,
    /// `fexit`
    FExit,
    /// `cgroup/sock_create`, `cgroup/sock_release`
    CgroupSock,
    /// `cgroup_skb/egress`, `cgroup_skb/ingress`
    CgroupSkb,
    /// `cgroup/setsockopt`
    CgroupSockopt,
    /// `iter`
    Iter,
}

impl ProgramKind {
    /// The object's section prefix for this kind.
    #[must_use]
    pub const fn section_prefix(self) -> &'static str {
        match self {
            ProgramKind::BtfTracePoint => "tp_btf",
            ProgramKind::FEntry => "fentry",
            ProgramKind::FExit => "fexit",
            ProgramKind::CgroupSock | ProgramKind::CgroupSockopt => "cgroup",
            ProgramKind::CgroupSkb => "cgroup_skb",
            ProgramKind::Iter => "iter",
        }
    }
}

/// One program of the kernel object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    /// Its name in the object (and of its link's pin).
    pub name: &'static str,
    pub kind: ProgramKind,
    /// The tracepoint, function, cgroup hook or iterator it attaches to.
    pub target: &'static str,
}

macro_rules! program_specs {
    ($( $(#[$doc:meta])* $const:ident = $name:ident: $kind:ident $target:literal; )*) => {
        /// The programs of the kernel object (from `for_each_program!`).
        pub mod program {
            use super::{ProgramKind, ProgramSpec};
            $(
                $(#[$doc])*
                pub const $const: ProgramSpec = ProgramSpec {
                    name: stringify!($name),
                    kind: ProgramKind::$kind,
                    target: $target,
                };
            )*
            /// All of them.
            pub const ALL: &[ProgramSpec] = &[$($const),*];
        }
    };
}

for_each_program!(program_specs);
