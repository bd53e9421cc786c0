//! Asking the kernel whether it accepts a kind of program, by loading the smallest one
//! (`r0 = 0; exit`). The kernel's release and BTF cannot tell everything: a security policy
//! (an LSM, a hardened build) may refuse program kinds a kernel of that release has.
use std::{
    io,
    os::fd::{FromRawFd as _, OwnedFd},
};

use sockstats_common::bpf_attr::ProgLoadAttr;

use super::bpf_syscall::bpf;

/// `BPF_PROG_LOAD` from `enum bpf_cmd`.
const BPF_PROG_LOAD: libc::c_long = 5;
/// `BPF_PROG_TYPE_TRACING` and `BPF_TRACE_ITER`.
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_ITER: u32 = 28;

/// Loads (and drops at once) an iterator program for the target whose `bpf_iter_<target>`
/// function has the kernel BTF id `attach_btf_id`: the kernel's error if it refuses.
pub fn iterator_loads(attach_btf_id: u32) -> io::Result<()> {
    // `mov r0, 0` and `exit`.
    let instructions: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_TRACING,
        insn_cnt: 2,
        insns: instructions.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: BPF_TRACE_ITER,
        attach_btf_id,
        ..ProgLoadAttr::default()
    };
    // SAFETY: a `prog_load` member whose pointers (instructions, license) outlive the call;
    // no log buffer.
    let fd = unsafe { bpf(BPF_PROG_LOAD, &mut attr) }?;
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this new descriptor; dropping it unloads the program.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(())
}
