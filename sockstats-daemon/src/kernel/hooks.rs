//! Which programs attach where, and the choice of the payload hook set for the running kernel.
//!
//! Two sets count payload bytes, with the same kernel code behind them:
//! - `tp_btf`: the `sock_send_length`/`sock_recv_length` tracepoints (Linux 6.3+), a stable
//!   ABI that sees every send and receive of every socket family;
//! - `fexit`: fexit programs on `tcp_sendmsg`, `tcp_recvmsg`, `udp_sendmsg`, `udp_recvmsg`,
//!   `udpv6_sendmsg`, `udpv6_recvmsg` (and `tcp_sendpage`/`udp_sendpage` before 6.5), for
//!   older kernels.
//!   Their signatures are checked against the kernel's BTF: a program is only attached to a
//!   function whose parameters are those it was written for (the receive functions have had
//!   three: with `nonblock` before 5.19, then `flags` and `addr_len`, then no `addr_len`).
//!
//! The daemon tries the tracepoints first and falls back to fexit (see the loader).
use aya::programs::CgroupSkbAttachType;

use super::btf::KernelBtf;

/// Where a program is attached.
#[derive(Debug, Clone, Copy)]
pub enum Hook {
    /// A BTF tracepoint, by name.
    Tracepoint(&'static str),
    /// An fexit program on a kernel function, by name.
    FExit(&'static str),
    /// An fentry program on a kernel function, by name.
    FEntry(&'static str),
    /// A cgroup/sock hook on the accounted cgroup.
    CgroupSock(&'static str),
    /// A `cgroup_skb` hook on the accounted cgroup.
    CgroupSkb(CgroupSkbAttachType),
    /// The `cgroup/setsockopt` hook on the accounted cgroup.
    CgroupSetsockopt,
}

impl Hook {
    #[must_use]
    pub fn describe(self) -> String {
        match self {
            Hook::Tracepoint(name) => format!("tp_btf/{name}"),
            Hook::FExit(name) => format!("fexit/{name}"),
            Hook::FEntry(name) => format!("fentry/{name}"),
            Hook::CgroupSock(name) => format!("cgroup/{name}"),
            Hook::CgroupSkb(CgroupSkbAttachType::Ingress) => "cgroup_skb/ingress".to_owned(),
            Hook::CgroupSkb(CgroupSkbAttachType::Egress) => "cgroup_skb/egress".to_owned(),
            Hook::CgroupSetsockopt => "cgroup/setsockopt".to_owned(),
        }
    }
}

/// A program of the object, by name, and its hook.
pub type Program = (&'static str, Hook);

/// The first kernel whose verifier accepts BPF atomics beyond add (`cmpxchg`):
/// <https://elixir.bootlin.com/linux/v5.12/source/kernel/bpf/verifier.c> (`check_atomic`).
/// Older ones refuse a program that merely contains one.
pub const CMPXCHG_SINCE: (u32, u32) = (5, 12);

/// The programs attached whatever the payload set: socket creation and release, the packet
/// hooks (their variant without `cmpxchg` unless `cmpxchg`) and the relabel hook; and the
/// `TCP_CLOSE` hook when `close_hook` (cookie-keyed states need its backstop, and validation
/// of closed sockets its counters). Without it nothing runs per TCP state change.
#[must_use]
pub fn common(cmpxchg: bool, close_hook: bool) -> Vec<Program> {
    let (egress, ingress) = if cmpxchg {
        ("packet_egress", "packet_ingress")
    } else {
        ("packet_egress_nocas", "packet_ingress_nocas")
    };
    let mut programs = vec![
        ("sock_create", Hook::CgroupSock("sock_create")),
        ("sock_release", Hook::CgroupSock("sock_release")),
        (egress, Hook::CgroupSkb(CgroupSkbAttachType::Egress)),
        (ingress, Hook::CgroupSkb(CgroupSkbAttachType::Ingress)),
        ("relabel_socket", Hook::CgroupSetsockopt),
    ];
    if close_hook {
        programs.push((
            "inet_sock_set_state",
            Hook::Tracepoint("inet_sock_set_state"),
        ));
    }
    programs
}

/// Which payload hook sets the daemon may try (`sockstatsd --payload-hooks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PayloadChoice {
    /// The tracepoints where they work, else fexit.
    #[default]
    Auto,
    /// Only this set: for testing the fallback on new kernels, or refusing it on old ones.
    Only(PayloadSet),
}

impl PayloadChoice {
    /// May the daemon use `set`?
    #[must_use]
    pub fn allows(self, set: PayloadSet) -> bool {
        match self {
            PayloadChoice::Auto => true,
            PayloadChoice::Only(only) => only == set,
        }
    }
}

/// The payload hook sets, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadSet {
    Tracepoints,
    FExit,
}

impl PayloadSet {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            PayloadSet::Tracepoints => "tp_btf",
            PayloadSet::FExit => "fexit",
        }
    }
}

/// The tracepoint set.
pub const TRACEPOINTS: [Program; 2] = [
    ("sock_send_length", Hook::Tracepoint("sock_send_length")),
    ("sock_recv_length", Hook::Tracepoint("sock_recv_length")),
];

/// One program of the fexit set for one signature of its function.
struct FExitVariant {
    program: &'static str,
    function: &'static str,
    /// The parameter count the program reads the return value after.
    params: usize,
    /// Where the program reads `flags` (receives only).
    flags_at: Option<usize>,
}

const fn variant(
    program: &'static str,
    function: &'static str,
    params: usize,
    flags_at: Option<usize>,
) -> FExitVariant {
    FExitVariant {
        program,
        function,
        params,
        flags_at,
    }
}

/// Every fexit program: per function, its signatures (see sockstats-ebpf's fexit.rs).
const FEXIT_VARIANTS: [FExitVariant; 14] = [
    variant("fexit_tcp_sendmsg", "tcp_sendmsg", 3, None),
    variant("fexit_tcp_recvmsg", "tcp_recvmsg", 5, Some(3)),
    variant("fexit_tcp_recvmsg_noaddrlen", "tcp_recvmsg", 4, Some(3)),
    variant("fexit_tcp_recvmsg_nonblock", "tcp_recvmsg", 6, Some(4)),
    variant("fexit_udp_sendmsg", "udp_sendmsg", 3, None),
    variant("fexit_udp_recvmsg", "udp_recvmsg", 5, Some(3)),
    variant("fexit_udp_recvmsg_noaddrlen", "udp_recvmsg", 4, Some(3)),
    variant("fexit_udp_recvmsg_nonblock", "udp_recvmsg", 6, Some(4)),
    variant("fexit_udpv6_sendmsg", "udpv6_sendmsg", 3, None),
    variant("fexit_udpv6_recvmsg", "udpv6_recvmsg", 5, Some(3)),
    variant("fexit_udpv6_recvmsg_noaddrlen", "udpv6_recvmsg", 4, Some(3)),
    variant("fexit_udpv6_recvmsg_nonblock", "udpv6_recvmsg", 6, Some(4)),
    variant("fexit_tcp_sendpage", "tcp_sendpage", 5, None),
    variant("fexit_udp_sendpage", "udp_sendpage", 5, None),
];

/// Functions the fexit set cannot do without.
const FEXIT_REQUIRED: [&str; 6] = [
    "tcp_sendmsg",
    "tcp_recvmsg",
    "udp_sendmsg",
    "udp_recvmsg",
    "udpv6_sendmsg",
    "udpv6_recvmsg",
];

/// sendfile/splice to TCP and IPv4 UDP sockets before 6.5; gone (and not needed) after.
const FEXIT_OPTIONAL: [&str; 2] = ["tcp_sendpage", "udp_sendpage"];

/// The tracepoint set, or what the kernel lacks for it.
pub fn tracepoint_set(btf: &KernelBtf) -> Result<Vec<Program>, String> {
    let missing: Vec<_> = TRACEPOINTS
        .iter()
        .filter(|(_, hook)| matches!(hook, Hook::Tracepoint(tp) if !btf.has_tracepoint(tp)))
        .map(|(name, _)| format!("tp_btf/{name}"))
        .collect();
    if missing.is_empty() {
        Ok(TRACEPOINTS.to_vec())
    } else {
        Err(format!(
            "the kernel has no {} (Linux 6.3+)",
            missing.join(" or ")
        ))
    }
}

fn matches(variant: &FExitVariant, params: &[String]) -> bool {
    params.len() == variant.params
        && params.first().map(String::as_str) == Some("sk")
        && variant
            .flags_at
            .is_none_or(|at| params.get(at).map(String::as_str) == Some("flags"))
}

/// The fexit set whose signatures match the kernel's BTF, or what does not match.
pub fn fexit_set(btf: &KernelBtf) -> Result<Vec<Program>, String> {
    let mut programs = Vec::new();
    let mut problems = Vec::new();
    for function in FEXIT_REQUIRED.iter().chain(&FEXIT_OPTIONAL) {
        let Some(params) = btf.function_params(function) else {
            if !FEXIT_OPTIONAL.contains(function) {
                problems.push(format!("{function} is not in the kernel's BTF"));
            }
            continue;
        };
        match FEXIT_VARIANTS
            .iter()
            .find(|v| v.function == *function && matches(v, &params))
        {
            Some(v) => {
                if v.function == "udp_sendpage" {
                    // Marks the task so that the nested udp_sendmsg is not counted too.
                    programs.push(("fentry_udp_sendpage", Hook::FEntry("udp_sendpage")));
                }
                programs.push((v.program, Hook::FExit(v.function)));
            }
            None => problems.push(format!(
                "{function}({}) has a signature no fexit program is written for",
                params.join(", ")
            )),
        }
    }
    if problems.is_empty() {
        Ok(programs)
    } else {
        Err(problems.join("; "))
    }
}

/// The first kernel whose tracing programs may call `bpf_get_socket_cookie` on a
/// `struct sock *`: <https://elixir.bootlin.com/linux/v5.12/source/net/core/filter.c>
/// (`bpf_get_socket_ptr_cookie_proto`).
const SOCKET_COOKIE_HELPER_SINCE: (u32, u32) = (5, 12);

/// `(major, minor)` of a kernel release such as `5.10.0-46-cloud-amd64`.
#[must_use]
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The value of the programs' `SOCK_COOKIE_OFFSET`: 0 where tracing programs may call the
/// cookie helper, else the offset of `skc_cookie` in `struct sock` from BTF.
pub fn sock_cookie_offset(btf: &KernelBtf, release: (u32, u32)) -> Result<u32, String> {
    if release >= SOCKET_COOKIE_HELPER_SINCE {
        return Ok(0);
    }
    let common = btf
        .member_offset("sock", "__sk_common")
        .ok_or("struct sock has no __sk_common in BTF")?;
    let cookie = btf
        .member_offset("sock_common", "skc_cookie")
        .ok_or("struct sock_common has no skc_cookie in BTF")?;
    Ok(common + cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(typedefs: &[&str], funcs: &[(&str, &[&str])]) -> KernelBtf {
        KernelBtf::parse(crate::kernel::btf::testing::blob(typedefs, funcs)).unwrap()
    }

    const SEND: &[&str] = &["sk", "msg", "len"];
    const RECV_5_10: &[&str] = &["sk", "msg", "len", "nonblock", "flags", "addr_len"];
    const SENDPAGE: &[&str] = &["sk", "page", "offset", "size", "flags"];

    #[test]
    fn a_kernel_without_the_tracepoints_is_told_so() {
        let btf = kernel(&["btf_trace_sock_send_length"], &[]);
        let error = tracepoint_set(&btf).unwrap_err();
        assert!(error.contains("tp_btf/sock_recv_length"), "{error}");
        assert!(!error.contains("tp_btf/sock_send_length"), "{error}");
        let btf = kernel(
            &["btf_trace_sock_send_length", "btf_trace_sock_recv_length"],
            &[],
        );
        assert_eq!(tracepoint_set(&btf).unwrap().len(), 2);
    }

    #[test]
    fn the_fexit_set_of_a_5_10_kernel() {
        let btf = kernel(
            &[],
            &[
                ("tcp_sendmsg", SEND),
                ("tcp_recvmsg", RECV_5_10),
                ("udp_sendmsg", SEND),
                ("udp_recvmsg", RECV_5_10),
                ("udpv6_sendmsg", SEND),
                ("udpv6_recvmsg", RECV_5_10),
                ("tcp_sendpage", SENDPAGE),
                ("udp_sendpage", SENDPAGE),
            ],
        );
        let programs: Vec<&str> = fexit_set(&btf).unwrap().iter().map(|p| p.0).collect();
        assert!(programs.contains(&"fexit_tcp_recvmsg_nonblock"));
        assert!(programs.contains(&"fentry_udp_sendpage"));
        assert!(programs.contains(&"fexit_udp_sendpage"));
        assert_eq!(programs.len(), 9);
    }

    #[test]
    fn a_missing_function_or_signature_is_named() {
        let btf = kernel(
            &[],
            &[
                ("tcp_sendmsg", SEND),
                ("tcp_recvmsg", &["sk", "msg", "len", "nonblock"]),
                ("udp_sendmsg", SEND),
                ("udp_recvmsg", RECV_5_10),
                ("udpv6_recvmsg", RECV_5_10),
            ],
        );
        let error = fexit_set(&btf).unwrap_err();
        assert!(
            error.contains("udpv6_sendmsg is not in the kernel's BTF"),
            "{error}"
        );
        assert!(
            error.contains("tcp_recvmsg(sk, msg, len, nonblock)"),
            "{error}"
        );
        assert!(!error.contains("sendpage"), "{error}");
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn receive_signatures_are_told_apart_by_their_flags() {
        let old = names(&["sk", "msg", "len", "nonblock", "flags", "addr_len"]);
        let new = names(&["sk", "msg", "len", "flags", "addr_len"]);
        let pick = |params: &[String]| {
            FEXIT_VARIANTS
                .iter()
                .find(|v| v.function == "tcp_recvmsg" && matches(v, params))
                .map(|v| v.program)
        };
        assert_eq!(pick(&old), Some("fexit_tcp_recvmsg_nonblock"));
        assert_eq!(pick(&new), Some("fexit_tcp_recvmsg"));
        assert_eq!(
            pick(&names(&["sk", "msg", "len", "flags"])),
            Some("fexit_tcp_recvmsg_noaddrlen")
        );
        assert_eq!(pick(&names(&["sk", "msg", "len", "x", "addr_len"])), None);
    }

    #[test]
    fn releases_parse() {
        assert_eq!(parse_release("5.10.0-46-cloud-amd64"), Some((5, 10)));
        assert_eq!(parse_release("6.12.117+deb12-amd64"), Some((6, 12)));
        assert_eq!(parse_release("7.2.13+deb14-cloud-amd64\n"), Some((7, 2)));
        assert_eq!(parse_release("garbage"), None);
        assert!((5, 10) < SOCKET_COOKIE_HELPER_SINCE && (6, 1) > SOCKET_COOKIE_HELPER_SINCE);
    }
}
