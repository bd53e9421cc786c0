//! The fexit fallback for kernels without the `sock_send_length`/`sock_recv_length`
//! tracepoints (before 6.3): one program per signature of each protocol's sendmsg/recvmsg,
//! and the context slots it reads.
//!
//! An fexit context is the traced function's arguments as 64-bit slots followed by its return
//! value, so the return value's slot is the function's parameter count. Where a signature
//! changed between kernels there is one program per signature, each with fixed slots (the
//! verifier only allows constant context offsets); the daemon attaches the one whose
//! parameters in the running kernel's BTF match and refuses to guess.
//!
//! - `tcp_sendmsg(sk, msg, size)`, `udp_sendmsg(sk, msg, len)`, `udpv6_sendmsg(sk, msg, len)`:
//!   unchanged since 4.x.
//! - `tcp_recvmsg`, `udp_recvmsg`, `udpv6_recvmsg`: `(sk, msg, len, nonblock, flags,
//!   addr_len)` until 5.18, `(sk, msg, len, flags, addr_len)` from 5.19 on (the `nonblock`
//!   argument was folded into `flags`:
//!   <https://elixir.bootlin.com/linux/v5.19/source/net/ipv4/tcp.c>), and `(sk, msg, len,
//!   flags)` after 6.12 (`addr_len` gone: so in the BTF of 6.18 and of Debian's 7.2).
//! - `tcp_sendpage(sk, page, offset, size, flags)`, `udp_sendpage(…)`: sendfile/splice to TCP
//!   and IPv4 UDP before 6.5, when they were removed in favour of `MSG_SPLICE_PAGES` through
//!   sendmsg. `udp_sendpage` calls `udp_sendmsg` itself: with a zero length on 5.10, with the
//!   data on Debian's 6.1 (measured: counting both counted sendfile twice). So a task inside
//!   `udp_sendpage` is marked (fentry) and its nested `udp_sendmsg` is not counted; the
//!   sendpage's return value is. IPv6 UDP has no sendpage and goes through `udpv6_sendmsg`.
//!
//! `udpv6_sendmsg` hands datagrams to v4-mapped addresses on to `udp_sendmsg`, so
//! `udp_sendmsg` counts only `AF_INET` sockets; each send is counted once.

/// Hands every fexit program to `$callback`, in this form:
/// `program: "function"(parameters) body [optional];` where `body` is
/// - `send`: the return value (slot `parameters`) is sent payload of the socket in slot 0;
/// - `recv(F)`: the return value is received payload, `flags` is in slot `F`;
/// - `send_if_entered(entry)`: `send`, only if the fentry program `entry` marked the task;
/// - `send_ipv4_unless_entered`: `send`, for `AF_INET` sockets of tasks no entry marked;
///
/// and `optional` marks functions a kernel may lack (the set attaches without them).
#[macro_export]
macro_rules! for_each_fexit_program {
    ($callback:ident) => {
        $callback! {
            /// `int tcp_sendmsg(struct sock *sk, struct msghdr *msg, size_t size)`.
            fexit_tcp_sendmsg: "tcp_sendmsg"(3) send;
            /// `int tcp_sendpage(struct sock *sk, struct page *page, int offset, size_t size,
            /// int flags)` (before 6.5).
            fexit_tcp_sendpage: "tcp_sendpage"(5) send optional;
            /// `int udp_sendpage(struct sock *sk, struct page *page, int offset, size_t size,
            /// int flags)` (before 6.5), if its entry marked the task.
            fexit_udp_sendpage: "udp_sendpage"(5) send_if_entered(fentry_udp_sendpage) optional;
            /// `int udp_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)`, `AF_INET`
            /// sockets only.
            fexit_udp_sendmsg: "udp_sendmsg"(3) send_ipv4_unless_entered;
            /// `int udpv6_sendmsg(struct sock *sk, struct msghdr *msg, size_t len)`.
            fexit_udpv6_sendmsg: "udpv6_sendmsg"(3) send;
            /// `tcp_recvmsg(sk, msg, len, flags)`, without `addr_len` (after 6.12).
            fexit_tcp_recvmsg_noaddrlen: "tcp_recvmsg"(4) recv(3);
            /// `tcp_recvmsg(sk, msg, len, flags, addr_len)`, 5.19+.
            fexit_tcp_recvmsg: "tcp_recvmsg"(5) recv(3);
            /// `tcp_recvmsg(sk, msg, len, nonblock, flags, addr_len)`, before 5.19.
            fexit_tcp_recvmsg_nonblock: "tcp_recvmsg"(6) recv(4);
            /// `udp_recvmsg(sk, msg, len, flags)`, without `addr_len` (after 6.12).
            fexit_udp_recvmsg_noaddrlen: "udp_recvmsg"(4) recv(3);
            /// `udp_recvmsg(sk, msg, len, flags, addr_len)`, 5.19+.
            fexit_udp_recvmsg: "udp_recvmsg"(5) recv(3);
            /// `udp_recvmsg(sk, msg, len, noblock, flags, addr_len)`, before 5.19.
            fexit_udp_recvmsg_nonblock: "udp_recvmsg"(6) recv(4);
            /// `udpv6_recvmsg(sk, msg, len, flags)`, without `addr_len` (after 6.12).
            fexit_udpv6_recvmsg_noaddrlen: "udpv6_recvmsg"(4) recv(3);
            /// `udpv6_recvmsg(sk, msg, len, flags, addr_len)`, 5.19+.
            fexit_udpv6_recvmsg: "udpv6_recvmsg"(5) recv(3);
            /// `udpv6_recvmsg(sk, msg, len, noblock, flags, addr_len)`, before 5.19.
            fexit_udpv6_recvmsg_nonblock: "udpv6_recvmsg"(6) recv(4);
        }
    };
}

/// What an fexit program does with its function's return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FExitBody {
    /// Counts it as sent.
    Send,
    /// Counts it as received; `flags` is in this slot.
    Recv { flags_at: usize },
    /// Counts it as sent if the fentry program `entry` (attached with it) marked the task.
    SendIfEntered { entry: &'static str },
    /// Counts it as sent for `AF_INET` sockets of tasks no entry program marked.
    SendIpv4UnlessEntered,
}

/// One fexit program: the function it is written for, with which parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FExitProgram {
    /// Its name in the object.
    pub program: &'static str,
    /// The kernel function it attaches to.
    pub function: &'static str,
    /// The function's parameter count: the return value's slot.
    pub params: usize,
    pub body: FExitBody,
    /// Kernels may lack the function (the fexit set attaches without it).
    pub optional: bool,
}

impl FExitProgram {
    /// Where the program reads `flags` (receives only).
    #[must_use]
    pub const fn flags_at(&self) -> Option<usize> {
        match self.body {
            FExitBody::Recv { flags_at } => Some(flags_at),
            _ => None,
        }
    }
}

macro_rules! fexit_specs {
    ($(
        $(#[$doc:meta])*
        $program:ident: $function:literal($params:literal) $body:ident $(($arg:tt))? $($optional:ident)?;
    )*) => {
        /// Every fexit program (from `for_each_fexit_program!`): per function, its signatures.
        pub const FEXIT_PROGRAMS: &[FExitProgram] = &[$(
            FExitProgram {
                program: stringify!($program),
                function: $function,
                params: $params,
                body: fexit_specs!(@body $body $(($arg))?),
                optional: fexit_specs!(@optional $($optional)?),
            }
        ),*];
    };
    (@body send) => { FExitBody::Send };
    (@body recv($flags:tt)) => { FExitBody::Recv { flags_at: $flags } };
    (@body send_if_entered($entry:ident)) => {
        FExitBody::SendIfEntered { entry: stringify!($entry) }
    };
    (@body send_ipv4_unless_entered) => { FExitBody::SendIpv4UnlessEntered };
    (@optional) => { false };
    (@optional optional) => { true };
}

for_each_fexit_program!(fexit_specs);
