//! What the running kernel can do, decided once at start from its release and its BTF: the
//! globals the programs get, the payload hook sets it can have, its limits, and the BTF names
//! the program loads look up.
use std::fs;

use sockstats_common::{abi::program, TRACING_ANCESTOR_HELPER_SINCE, TRACING_SK_STORAGE_SINCE};

use super::KernelError;
use crate::kernel::{
    btf::{BtfName, KernelBtf},
    hooks::{self, Hook, PayloadChoice, PayloadSet, Program},
};
use crate::sys::{memlock, netns};

/// What the loader adapts to in the running kernel.
pub(super) struct KernelFacts {
    /// The payload hook sets the kernel's BTF allows.
    pub(super) payload_sets: PayloadSets,
    /// Does the verifier accept `cmpxchg`?
    pub(super) cmpxchg: bool,
    /// The programs' `SOCK_COOKIE_OFFSET`.
    pub(super) cookie_offset: u32,
    /// The programs' `PACKET_NETNS_COOKIE`.
    pub(super) packet_netns_cookie: u64,
    /// The programs' `SK_SOCKET_OFFSET` and `SOCKET_FILE_OFFSET` (0, 0 when unknown).
    pub(super) socket_offsets: (u32, u32),
    /// The programs' `TRACING_ANCESTOR_HELPER`.
    pub(super) ancestor_helper: bool,
    /// The programs' `STATE_BY_COOKIE`: tracing programs cannot use socket storage.
    pub(super) state_by_cookie: bool,
    /// The programs' `TCP_BYTES_ACKED_OFFSET` and `TCP_BYTES_RECEIVED_OFFSET` (0, 0 when
    /// unknown: no validation of closed sockets).
    pub(super) tcp_counter_offsets: (u32, u32),
    /// What this kernel cannot do that a newer one can.
    pub(super) limits: Vec<String>,
}

/// The payload hook sets as the kernel's BTF allows them, or what it lacks for each: decided
/// before that BTF is handed to aya.
pub(super) struct PayloadSets {
    pub(super) tracepoints: Result<Vec<Program>, String>,
    pub(super) fexit: Result<Vec<Program>, String>,
}

impl PayloadSets {
    /// The set `attach_all` tries first under `choice`: the tracepoints where this kernel has
    /// them and `choice` allows them, else fexit.
    pub(super) fn first_to_try(&self, choice: PayloadChoice) -> PayloadSet {
        if self.tracepoints.is_ok() && choice.allows(PayloadSet::Tracepoints) {
            PayloadSet::Tracepoints
        } else {
            PayloadSet::FExit
        }
    }

    /// The programs of `set`, if this kernel can have them.
    pub(super) fn programs(&self, set: PayloadSet) -> Option<&[Program]> {
        match set {
            PayloadSet::Tracepoints => self.tracepoints.as_deref().ok(),
            PayloadSet::FExit => self.fexit.as_deref().ok(),
        }
    }
}

/// Reads the kernel's release, lifts `RLIMIT_MEMLOCK` and decides, from the release and the
/// kernel's BTF, the globals and the payload hook sets.
pub(super) fn kernel_facts(kernel_btf: &KernelBtf) -> Result<KernelFacts, KernelError> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_err(|e| KernelError::Release(e.to_string()))?;
    let version = hooks::parse_release(&release)
        .ok_or_else(|| KernelError::Release(format!("unexpected release {release:?}")))?;
    if let Err(error) = memlock::raise() {
        if version < (5, 11) {
            log::warn!(
                "cannot lift RLIMIT_MEMLOCK ({error}); Linux before 5.11 charges BPF maps to it"
            );
        } else {
            log::debug!(
                "cannot lift RLIMIT_MEMLOCK ({error}); Linux 5.11+ does not use it for BPF"
            );
        }
    }
    let cookie_offset =
        hooks::sock_cookie_offset(kernel_btf, version).map_err(KernelError::Cookie)?;
    if cookie_offset != 0 {
        log::info!(
            "Linux {}.{}: tracing programs read socket cookies from struct sock (offset \
             {cookie_offset}), the helper needs 5.12",
            version.0,
            version.1
        );
    }

    let mut limits = Vec::new();
    let cmpxchg = version >= hooks::CMPXCHG_SINCE;
    if !cmpxchg {
        limits.push(
            "no BPF cmpxchg before 5.12: a socket whose first packets on two new interfaces \
             race on two CPUs may have the payload of one charged to the other"
                .to_owned(),
        );
    }
    let packet_netns_cookie = packet_netns_cookie(&mut limits)?;
    let ancestor_helper = version >= TRACING_ANCESTOR_HELPER_SINCE;
    if !ancestor_helper {
        limits.push(
            "tracing programs cannot read a task's cgroup ancestors before 5.18: sockets first \
             seen at a send or receive (accepted ones, ones older than the daemon) get uid rules \
             only"
                .to_owned(),
        );
    }
    let socket_offsets = socket_offsets(kernel_btf, &mut limits);
    let mut state_by_cookie = version < TRACING_SK_STORAGE_SINCE;
    if !state_by_cookie {
        if let Err(refused) = socket_storage_iterator_refused(kernel_btf) {
            state_by_cookie = true;
            limits.push(format!(
                "this kernel refuses socket-storage iterators ({refused}; a security policy can \
                 do this): socket states are kept in a hash by cookie (--max-sockets of them), \
                 deleted when the socket closes, so the packets a socket sends or receives after \
                 its close (FIN, ACKs, retransmits) are not charged to its label (they are in \
                 untracked_wire_bytes)"
            ));
        }
    }
    if version < TRACING_SK_STORAGE_SINCE {
        limits.push(
            "tracing programs cannot use socket storage before 5.11: socket states are kept in \
             a hash by cookie (--max-sockets of them), deleted when the socket closes, so the \
             packets a socket sends or receives after its close (FIN, ACKs, retransmits) are \
             not charged to its label (they are in untracked_wire_bytes)"
                .to_owned(),
        );
    }
    let tcp_counter_offsets = tcp_counter_offsets(kernel_btf, &mut limits);
    for limit in &limits {
        log::warn!("Linux {}.{}: {limit}", version.0, version.1);
    }

    Ok(KernelFacts {
        payload_sets: PayloadSets {
            tracepoints: hooks::tracepoint_set(kernel_btf),
            fexit: hooks::fexit_set(kernel_btf),
        },
        cmpxchg,
        cookie_offset,
        packet_netns_cookie,
        socket_offsets,
        ancestor_helper,
        state_by_cookie,
        tcp_counter_offsets,
        limits,
    })
}

/// Does the kernel refuse (EPERM, EACCES: a security policy) to load an iterator over socket
/// storage, the daemon's view of every live socket's state when states are kept there? Any
/// other answer is left to the real load, which names what is wrong if anything is.
fn socket_storage_iterator_refused(kernel_btf: &KernelBtf) -> Result<(), String> {
    let name = format!("bpf_iter_{}", program::SOCKET_STATES.target);
    let Some(id) = kernel_btf.function_id(&name) else {
        return Ok(());
    };
    match crate::sys::bpf_probe::iterator_loads(id) {
        Err(error) if matches!(error.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            Err(error.to_string())
        }
        Err(error) => {
            log::debug!("the socket-storage iterator probe failed ({error}); loading it anyway");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

pub(super) fn read_kernel_btf() -> Result<KernelBtf, KernelError> {
    let kernel_btf = KernelBtf::from_sys_fs().map_err(KernelError::KernelBtf)?;
    let (types, bytes) = kernel_btf.size();
    let how = if kernel_btf.is_mapped() {
        "mapped"
    } else {
        "read"
    };
    log::debug!("the kernel's BTF: {types} types in {bytes} bytes, {how}");
    Ok(kernel_btf)
}

/// Offsets of `struct tcp_sock.bytes_acked` and `bytes_received`, or zeros (validation of
/// closed sockets is then off).
pub(super) fn tcp_counter_offsets(btf: &KernelBtf, limits: &mut Vec<String>) -> (u32, u32) {
    if let (Some(acked), Some(received)) = (
        btf.member_offset("tcp_sock", "bytes_acked"),
        btf.member_offset("tcp_sock", "bytes_received"),
    ) {
        return (acked, received);
    }
    limits.push(
        "struct tcp_sock.bytes_acked or bytes_received is not in BTF: validation cannot cover \
         closed sockets"
            .to_owned(),
    );
    (0, 0)
}

/// Offsets of `struct sock.sk_socket` and `struct socket.file`, or zeros (the `TCP_CLOSE`
/// backstop then folds every socket, as before it could tell them apart).
pub(super) fn socket_offsets(btf: &KernelBtf, limits: &mut Vec<String>) -> (u32, u32) {
    if let (Some(sk_socket), Some(file)) = (
        btf.member_offset("sock", "sk_socket"),
        btf.member_offset("socket", "file"),
    ) {
        return (sk_socket, file);
    }
    limits.push(
        "struct sock.sk_socket or struct socket.file is not in BTF: a socket closed by an RST \
         while a send finishes on another CPU can lose that send's bytes"
            .to_owned(),
    );
    (0, 0)
}

/// The value of the programs' `PACKET_NETNS_COOKIE`: 0 where `cgroup_skb` programs may call
/// `bpf_get_netns_cookie` (probed), else the daemon's own namespace's cookie, which then
/// stands for every packet's namespace.
pub(super) fn packet_netns_cookie(kernel_limits: &mut Vec<String>) -> Result<u64, KernelError> {
    let helper = aya::sys::is_helper_supported(
        aya::programs::ProgramType::CgroupSkb,
        aya::sys::BpfHelper::BPF_FUNC_get_netns_cookie,
    );
    if matches!(helper, Ok(true)) {
        return Ok(0);
    }
    kernel_limits.push(
        "cgroup_skb programs cannot read a packet's network namespace: interfaces of other \
         network namespaces are named as if they were the daemon's"
            .to_owned(),
    );
    netns::own_cookie().map_err(KernelError::NetnsCookie)
}

/// The names the loads of `common`, of the payload set `payload` and (`iterator`) of the
/// socket-state iterator look up in the kernel's BTF.
pub(super) fn btf_names(
    common: &[Program],
    payload: Option<&[Program]>,
    iterator: bool,
) -> Vec<BtfName> {
    let mut names: Vec<BtfName> = common
        .iter()
        .chain(payload.unwrap_or_default())
        .filter_map(|(_, hook)| match hook {
            Hook::Tracepoint(name) => Some(BtfName::Typedef(format!("btf_trace_{name}"))),
            Hook::FExit(function) | Hook::FEntry(function) => {
                Some(BtfName::Func((*function).to_owned()))
            }
            Hook::CgroupSock(_) | Hook::CgroupSkb(_) | Hook::CgroupSetsockopt => None,
        })
        .collect();
    if iterator {
        let target = program::SOCKET_STATES.target;
        names.push(BtfName::Func(format!("bpf_iter_{target}")));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{
        btf::BtfName,
        hooks::{Hook, PayloadChoice, PayloadSet},
    };

    #[test]
    fn aya_gets_the_names_of_the_set_tried_first_and_of_the_iterator() {
        let tracepoints = vec![("sock_send_length", Hook::Tracepoint("sock_send_length"))];
        let fexit = vec![("tcp_sendmsg", Hook::FExit("tcp_sendmsg"))];
        let sets = PayloadSets {
            tracepoints: Ok(tracepoints),
            fexit: Ok(fexit),
        };
        assert_eq!(
            sets.first_to_try(PayloadChoice::Auto),
            PayloadSet::Tracepoints
        );
        assert_eq!(
            sets.first_to_try(PayloadChoice::Only(PayloadSet::FExit)),
            PayloadSet::FExit
        );
        let common = [
            ("sock_create", Hook::CgroupSock("sock_create")),
            ("tcp_close", Hook::Tracepoint("inet_sock_set_state")),
        ];
        let names = btf_names(&common, sets.programs(PayloadSet::Tracepoints), true);
        assert_eq!(
            names,
            [
                BtfName::Typedef("btf_trace_inet_sock_set_state".to_owned()),
                BtfName::Typedef("btf_trace_sock_send_length".to_owned()),
                BtfName::Func("bpf_iter_bpf_sk_storage_map".to_owned()),
            ]
        );
        let names = btf_names(&[], sets.programs(PayloadSet::FExit), false);
        assert_eq!(names, [BtfName::Func("tcp_sendmsg".to_owned())]);

        let without_tracepoints = PayloadSets {
            tracepoints: Err("no tracepoints".to_owned()),
            fexit: Ok(Vec::new()),
        };
        assert_eq!(
            without_tracepoints.first_to_try(PayloadChoice::Auto),
            PayloadSet::FExit
        );
        assert!(without_tracepoints
            .programs(PayloadSet::Tracepoints)
            .is_none());
    }
}
