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
use sockstats_common::abi::{program, FExitBody, FExitProgram, ProgramSpec, FEXIT_PROGRAMS};

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
        (program::PACKET_EGRESS, program::PACKET_INGRESS)
    } else {
        (program::PACKET_EGRESS_NOCAS, program::PACKET_INGRESS_NOCAS)
    };
    let mut programs = vec![
        cgroup_sock(program::SOCK_CREATE),
        cgroup_sock(program::SOCK_RELEASE),
        (egress.name, Hook::CgroupSkb(CgroupSkbAttachType::Egress)),
        (ingress.name, Hook::CgroupSkb(CgroupSkbAttachType::Ingress)),
        (program::RELABEL_SOCKET.name, Hook::CgroupSetsockopt),
    ];
    if close_hook {
        programs.push(tracepoint(program::INET_SOCK_SET_STATE));
    }
    programs
}

const fn cgroup_sock(spec: ProgramSpec) -> Program {
    (spec.name, Hook::CgroupSock(spec.target))
}

const fn tracepoint(spec: ProgramSpec) -> Program {
    (spec.name, Hook::Tracepoint(spec.target))
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
    tracepoint(program::SOCK_SEND_LENGTH),
    tracepoint(program::SOCK_RECV_LENGTH),
];

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

fn matches(variant: &FExitProgram, params: &[String]) -> bool {
    params.len() == variant.params
        && params.first().map(String::as_str) == Some("sk")
        && variant
            .flags_at()
            .is_none_or(|at| params.get(at).map(String::as_str) == Some("flags"))
}

/// The functions the fexit programs attach to, each once, in table order.
fn fexit_functions() -> Vec<(&'static str, bool)> {
    let mut functions: Vec<(&'static str, bool)> = Vec::new();
    for variant in FEXIT_PROGRAMS {
        if !functions.iter().any(|(f, _)| *f == variant.function) {
            functions.push((variant.function, variant.optional));
        }
    }
    functions
}

/// The fexit set whose signatures match the kernel's BTF, or what does not match. Functions a
/// kernel may lack (`tcp_sendpage`/`udp_sendpage`, gone in 6.5) are left out when missing.
pub fn fexit_set(btf: &KernelBtf) -> Result<Vec<Program>, String> {
    let mut programs = Vec::new();
    let mut problems = Vec::new();
    for (function, optional) in fexit_functions() {
        let Some(params) = btf.function_params(function) else {
            if !optional {
                problems.push(format!("{function} is not in the kernel's BTF"));
            }
            continue;
        };
        match FEXIT_PROGRAMS
            .iter()
            .find(|v| v.function == function && matches(v, &params))
        {
            Some(v) => {
                if let FExitBody::SendIfEntered { entry } = v.body {
                    // Marks the task so that a nested send is not counted too.
                    programs.push((entry, Hook::FEntry(v.function)));
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
            FEXIT_PROGRAMS
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
