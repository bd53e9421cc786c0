//! Empty reference programs (`r0 = N; exit`), loaded and attached next to sockstats' own so that
//! the cost `kernel.bpf_stats_enabled` itself adds to every invocation (two clock reads and the
//! dispatch) is measured in the same run and can be subtracted.
//!
//! They are two instructions, so they are built here as bytecode and loaded with the raw `bpf`
//! syscall: an ELF object for them would need a second eBPF crate. The bench's other raw calls
//! are in `sys.rs`.
use std::{
    ffi::CString,
    fs::File,
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use anyhow::{bail, Context as _, Result};
use aya_obj::{
    btf::BtfKind,
    generated::{bpf_attach_type, bpf_cmd, bpf_prog_type},
};
use sockstats_common::bpf_attr::ProgLoadAttr;

/// What an empty program stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmptyKind {
    /// `tp_btf` on a tracepoint (named by `BTF_TRACE_TYPE`).
    TpBtf(&'static str),
    /// `cgroup_skb/egress` on a cgroup.
    CgroupSkbEgress,
    /// `cgroup_skb/ingress` on a cgroup.
    CgroupSkbIngress,
    /// `cgroup/sock_create` on a cgroup.
    CgroupSockCreate,
}

impl EmptyKind {
    /// The name shown in reports (and given to the kernel, at most 15 characters).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            EmptyKind::TpBtf("sock_send_length") => "empty_tp_send",
            EmptyKind::TpBtf("sock_recv_length") => "empty_tp_recv",
            EmptyKind::TpBtf(_) => "empty_tp_btf",
            EmptyKind::CgroupSkbEgress => "empty_skb_egr",
            EmptyKind::CgroupSkbIngress => "empty_skb_ingr",
            EmptyKind::CgroupSockCreate => "empty_sock_crt",
        }
    }

    /// The program type the report compares with: `tp_btf`, `cgroup_skb` or `cgroup_sock`.
    #[must_use]
    pub fn program_type(self) -> &'static str {
        match self {
            EmptyKind::TpBtf(_) => "tp_btf",
            EmptyKind::CgroupSkbEgress | EmptyKind::CgroupSkbIngress => "cgroup_skb",
            EmptyKind::CgroupSockCreate => "cgroup_sock",
        }
    }

    /// The hook, as `sockstats status` names hooks.
    #[must_use]
    pub fn hook(self) -> String {
        match self {
            EmptyKind::TpBtf(tracepoint) => format!("tp_btf/{tracepoint}"),
            EmptyKind::CgroupSkbEgress => "cgroup_skb/egress".to_owned(),
            EmptyKind::CgroupSkbIngress => "cgroup_skb/ingress".to_owned(),
            EmptyKind::CgroupSockCreate => "cgroup/sock_create".to_owned(),
        }
    }
}

/// A loaded and attached empty program; detached and unloaded on drop.
pub struct EmptyProgram {
    pub kind: EmptyKind,
    /// The kernel's program id.
    pub id: u32,
    _program: OwnedFd,
    _link: OwnedFd,
}

/// `BPF_RAW_TRACEPOINT_OPEN` attributes.
#[repr(C)]
struct RawTracepointAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// `BPF_LINK_CREATE` attributes, without the type-specific tail.
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD` attributes.
#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `r0 = value; exit`.
fn return_constant(value: i32) -> [u64; 2] {
    const MOV64_IMM_R0: u64 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K, dst r0
    const EXIT: u64 = 0x95; // BPF_JMP | BPF_EXIT
    #[expect(
        clippy::cast_sign_loss,
        reason = "the immediate is the instruction's upper 32 bits, bit for bit"
    )]
    let imm = u64::from(value as u32) << 32;
    [MOV64_IMM_R0 | imm, EXIT]
}

/// The raw `bpf(2)` syscall; returns a new fd.
fn bpf<T>(cmd: bpf_cmd, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a live, initialised attribute struct of the size passed; every pointer
    // inside it points to memory that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            size_of::<T>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(ret).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The kernel's id of a program.
fn program_id(program: &OwnedFd) -> io::Result<u32> {
    // bpf_prog_info starts with `type`, then `id`: ask for those 8 bytes only.
    let mut info = [0u32; 2];
    let mut attr = InfoAttr {
        bpf_fd: u32::try_from(program.as_raw_fd()).map_err(io::Error::other)?,
        info_len: 8,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: as in `bpf`; `info` is 8 writable bytes, as `info_len` says.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            &raw mut attr,
            size_of::<InfoAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info[1])
}

fn load(
    kind: EmptyKind,
    prog_type: bpf_prog_type,
    expected_attach_type: bpf_attach_type,
    attach_btf_id: u32,
    returns: i32,
) -> Result<OwnedFd> {
    let insns = return_constant(returns);
    let license = CString::new("GPL").expect("no NUL");
    let mut log = vec![0u8; 64 * 1024];
    let mut prog_name = [0u8; 16];
    prog_name[..kind.name().len()].copy_from_slice(kind.name().as_bytes());
    let mut attr = ProgLoadAttr {
        prog_type: prog_type as u32,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: u32::try_from(log.len()).expect("64 KiB"),
        log_buf: log.as_mut_ptr() as u64,
        prog_name,
        expected_attach_type: expected_attach_type as u32,
        attach_btf_id,
        ..ProgLoadAttr::default()
    };
    bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr).with_context(|| {
        let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
        format!(
            "cannot load the empty program {} (verifier: {})",
            kind.name(),
            String::from_utf8_lossy(&log[..end]).trim()
        )
    })
}

/// Loads the empty program `kind` and attaches it (`cgroup` for the cgroup kinds).
pub fn attach(kind: EmptyKind, btf: &aya::Btf, cgroup: &File) -> Result<EmptyProgram> {
    let (program, link) = match kind {
        EmptyKind::TpBtf(tracepoint) => {
            let type_name = format!("btf_trace_{tracepoint}");
            let btf_id = btf
                .id_by_type_name_kind(&type_name, BtfKind::Typedef)
                .with_context(|| format!("{type_name} is not in the kernel's BTF"))?;
            let program = load(
                kind,
                bpf_prog_type::BPF_PROG_TYPE_TRACING,
                bpf_attach_type::BPF_TRACE_RAW_TP,
                btf_id,
                0,
            )?;
            let mut attr = RawTracepointAttr {
                name: 0, // tp_btf: the tracepoint comes from the BTF id given at load
                prog_fd: u32::try_from(program.as_raw_fd())?,
                _pad: 0,
            };
            let link = bpf(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr)
                .with_context(|| format!("cannot attach {} at {}", kind.name(), kind.hook()))?;
            (program, link)
        }
        EmptyKind::CgroupSkbEgress | EmptyKind::CgroupSkbIngress | EmptyKind::CgroupSockCreate => {
            let (prog_type, attach_type) = match kind {
                EmptyKind::CgroupSkbEgress => (
                    bpf_prog_type::BPF_PROG_TYPE_CGROUP_SKB,
                    bpf_attach_type::BPF_CGROUP_INET_EGRESS,
                ),
                EmptyKind::CgroupSkbIngress => (
                    bpf_prog_type::BPF_PROG_TYPE_CGROUP_SKB,
                    bpf_attach_type::BPF_CGROUP_INET_INGRESS,
                ),
                _ => (
                    bpf_prog_type::BPF_PROG_TYPE_CGROUP_SOCK,
                    bpf_attach_type::BPF_CGROUP_INET_SOCK_CREATE,
                ),
            };
            // 1 = allow, as sockstats' programs return.
            let program = load(kind, prog_type, attach_type, 0, 1)?;
            let mut attr = LinkCreateAttr {
                prog_fd: u32::try_from(program.as_raw_fd())?,
                target_fd: u32::try_from(cgroup.as_raw_fd())?,
                attach_type: attach_type as u32,
                flags: 0,
            };
            let link = bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)
                .with_context(|| format!("cannot attach {} at {}", kind.name(), kind.hook()))?;
            (program, link)
        }
    };
    let id = program_id(&program).context("cannot read the empty program's id")?;
    if id == 0 {
        bail!("the kernel gave the empty program {} no id", kind.name());
    }
    Ok(EmptyProgram {
        kind,
        id,
        _program: program,
        _link: link,
    })
}
