//! Members of the kernel's `union bpf_attr` (`include/uapi/linux/bpf.h`) that the daemon and the
//! bench fill themselves, for the `bpf(2)` commands aya 0.14 does not make for them.
#![expect(
    missing_docs,
    reason = "the fields are the kernel's, named as in bpf.h"
)]

/// The `prog_load` member, up to `attach_btf_obj_fd` (the kernel zero-fills the rest).
#[repr(C)]
#[derive(Debug, Default)]
pub struct ProgLoadAttr {
    pub prog_type: u32,
    pub insn_cnt: u32,
    pub insns: u64,
    pub license: u64,
    pub log_level: u32,
    pub log_size: u32,
    pub log_buf: u64,
    pub kern_version: u32,
    pub prog_flags: u32,
    pub prog_name: [u8; 16],
    pub prog_ifindex: u32,
    pub expected_attach_type: u32,
    pub prog_btf_fd: u32,
    pub func_info_rec_size: u32,
    pub func_info: u64,
    pub func_info_cnt: u32,
    pub line_info_rec_size: u32,
    pub line_info: u64,
    pub line_info_cnt: u32,
    /// A type id in the kernel's BTF (or in `attach_btf_obj_fd`'s, when that is set).
    pub attach_btf_id: u32,
    pub attach_btf_obj_fd: u32,
    pub pad: u32,
}

const _: () = assert!(size_of::<ProgLoadAttr>() == 120);
