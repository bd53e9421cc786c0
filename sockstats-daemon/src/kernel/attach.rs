//! Loading and attaching one program of the object at its hook, and pinning its link.
use std::{fs::File, path::Path};

use crate::sys::bpf_link;
use aya::{
    programs::{
        links::{FdLink, PinnedLink},
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSock, CgroupSockopt, FEntry, FExit,
        ProgramError,
    },
    Btf, Ebpf,
};

use super::{
    hooks::{Hook, Program},
    loader::{pin_error, KernelError},
};

/// What programs are attached to and where their links are pinned.
pub struct Target<'a> {
    pub btf: &'a Btf,
    /// The accounted cgroup.
    pub cgroup: &'a File,
    pub links_dir: &'a Path,
}

fn attach_error(program: &'static str, hook: Hook, source: ProgramError) -> KernelError {
    let hint = match hook {
        Hook::Tracepoint(_) => " (the sock_send_length/sock_recv_length tracepoints need Linux 6.3 or newer with BTF; inet_sock_set_state 5.5)",
        Hook::FExit(_) | Hook::FEntry(_) => " (fentry/fexit need Linux 5.5 or newer with BTF and a kernel that allows BPF trampolines)",
        Hook::CgroupSock(_) => " (cgroup/sock_create and sock_release need Linux 5.9 or newer)",
        Hook::CgroupSkb(_) => " (cgroup_skb needs cgroup v2 and Linux 5.8 or newer)",
        Hook::CgroupSetsockopt => " (cgroup/setsockopt needs Linux 5.7 or newer for bpf_link)",
    };
    KernelError::Attach {
        program,
        hook: hook.describe(),
        hint,
        source: Box::new(source),
    }
}

/// Loads `program`, attaches it at its hook and pins the link as `<links_dir>/<name>`.
pub fn attach(
    ebpf: &mut Ebpf,
    target: &Target<'_>,
    (name, hook): Program,
) -> Result<FdLink, KernelError> {
    let links_dir = target.links_dir;
    let error = |e| attach_error(name, hook, e);
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| pin_error(links_dir, format!("program {name} missing from the object")))?;
    let link = match hook {
        Hook::Tracepoint(tracepoint) => {
            let program: &mut BtfTracePoint = program.try_into().map_err(error)?;
            program.load(tracepoint, target.btf).map_err(error)?;
            let id = program.attach().map_err(error)?;
            FdLink::from(program.take_link(id).map_err(error)?)
        }
        Hook::FExit(function) => {
            let program: &mut FExit = program.try_into().map_err(error)?;
            program.load(function, target.btf).map_err(error)?;
            let id = program.attach().map_err(error)?;
            FdLink::from(program.take_link(id).map_err(error)?)
        }
        Hook::FEntry(function) => {
            let program: &mut FEntry = program.try_into().map_err(error)?;
            program.load(function, target.btf).map_err(error)?;
            let id = program.attach().map_err(error)?;
            FdLink::from(program.take_link(id).map_err(error)?)
        }
        Hook::CgroupSock(_) => {
            let program: &mut CgroupSock = program.try_into().map_err(error)?;
            program.load().map_err(error)?;
            // Through bpf_link (Linux 5.7+) cgroup attachments always coexist with others;
            // the kernel refuses any flag there, so the mode must be the flag-less Single.
            let id = program
                .attach(target.cgroup, CgroupAttachMode::Single)
                .map_err(error)?;
            let link = program.take_link(id).map_err(error)?;
            FdLink::try_from(link).map_err(|e| pin_error(links_dir, e))?
        }
        Hook::CgroupSkb(attach_type) => {
            let program: &mut CgroupSkb = program.try_into().map_err(error)?;
            program.load().map_err(error)?;
            let id = program
                .attach(target.cgroup, attach_type, CgroupAttachMode::Single)
                .map_err(error)?;
            let link = program.take_link(id).map_err(error)?;
            FdLink::try_from(link).map_err(|e| pin_error(links_dir, e))?
        }
        Hook::CgroupSetsockopt => {
            let program: &mut CgroupSockopt = program.try_into().map_err(error)?;
            program.load().map_err(error)?;
            // aya 0.14 cannot pin a cgroup/setsockopt link: made and pinned by hand.
            let path = links_dir.join(name);
            let prog_fd = program.fd().map_err(error)?;
            bpf_link::attach_setsockopt_pinned(prog_fd, target.cgroup, &path)
                .map_err(|e| error(ProgramError::IOError(e)))?;
            let pinned = PinnedLink::from_pin(&path).map_err(|e| pin_error(&path, e))?;
            log::info!("attached {name} at {}", hook.describe());
            return Ok(FdLink::from(pinned));
        }
    };
    let path = links_dir.join(name);
    let pinned = link.pin(&path).map_err(|e| pin_error(&path, e))?;
    log::info!("attached {name} at {}", hook.describe());
    Ok(FdLink::from(pinned))
}
