//! The programs' attachments: reusing the pinned links of the same build, or attaching every
//! program (the tracepoint payload set first, else fexit) and pinning the links.
use std::{
    fs::{self, File},
    path::Path,
};

use aya::{
    programs::links::{FdLink, PinnedLink},
    Btf, Ebpf,
};
use sockstats_common::protocol::PayloadHooks;

use super::facts::{btf_names, read_kernel_btf, PayloadSets};
use super::{pin_error, KernelError};
use crate::cgroup::CgroupRoot;
use crate::kernel::{
    attach::{self, Target},
    hooks::{self, PayloadChoice, PayloadSet, Program},
};

/// Attachments made or found, with the payload set they use.
pub(super) struct Attachments {
    pub(super) links: Vec<(Program, FdLink)>,
    pub(super) payload: PayloadHooks,
    pub(super) reused: bool,
}

/// The attachments of this build, if an earlier daemon left all programs of one hook set
/// pinned.
pub(super) fn reuse_links(
    links_dir: &Path,
    payload_sets: &PayloadSets,
    common: &[Program],
    choice: PayloadChoice,
) -> Result<Option<Attachments>, KernelError> {
    if !links_dir.exists() {
        return Ok(None);
    }
    let candidates = [
        (PayloadSet::Tracepoints, Ok(&hooks::TRACEPOINTS[..])),
        (PayloadSet::FExit, payload_sets.fexit.as_deref()),
    ];
    for (set, payload) in candidates {
        let Ok(payload) = payload else { continue };
        if !choice.allows(set) {
            continue;
        }
        let programs: Vec<Program> = common
            .iter()
            .copied()
            .chain(payload.iter().copied())
            .collect();
        if !programs
            .iter()
            .all(|(name, _)| links_dir.join(name).exists())
        {
            continue;
        }
        detach_unwanted(links_dir, &programs)?;
        let mut links = Vec::new();
        for program in programs {
            match PinnedLink::from_pin(links_dir.join(program.0)) {
                Ok(pinned) => links.push((program, FdLink::from(pinned))),
                Err(error) => {
                    log::warn!(
                        "unusable attachment {} ({error}); attaching afresh",
                        links_dir.join(program.0).display()
                    );
                    drop(links);
                    fs::remove_dir_all(links_dir).map_err(|e| pin_error(links_dir, e))?;
                    return Ok(None);
                }
            }
        }
        log::info!(
            "programs already attached by an earlier sockstatsd ({}): keeping them",
            links_dir.display()
        );
        let payload = PayloadHooks {
            set: set.name().to_owned(),
            reason: "kept from an earlier sockstatsd of this build".to_owned(),
        };
        return Ok(Some(Attachments {
            links,
            payload,
            reused: true,
        }));
    }
    log::warn!(
        "incomplete attachments in {}; attaching afresh",
        links_dir.display()
    );
    fs::remove_dir_all(links_dir).map_err(|e| pin_error(links_dir, e))?;
    Ok(None)
}

/// Removes the link pins in `links_dir` of programs not in `wanted` (the `TCP_CLOSE` hook once
/// validation of closed sockets is off again): they detach once no daemon holds them.
pub(super) fn detach_unwanted(links_dir: &Path, wanted: &[Program]) -> Result<(), KernelError> {
    let entries = fs::read_dir(links_dir).map_err(|e| pin_error(links_dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !wanted.iter().any(|(program, _)| *program == name) {
            log::info!("detaching {name}: not needed with these options");
            fs::remove_file(entry.path()).map_err(|e| pin_error(&entry.path(), e))?;
        }
    }
    Ok(())
}

/// Removes the link pins of other builds: their programs detach once no daemon holds them.
pub(super) fn detach_other_builds(bpffs_dir: &Path, keep: &Path) -> Result<(), KernelError> {
    let entries = fs::read_dir(bpffs_dir).map_err(|e| pin_error(bpffs_dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let is_links = entry.file_name().to_string_lossy().starts_with("links-");
        if is_links && path != keep {
            log::info!(
                "detaching the programs of another build: {}",
                path.display()
            );
            fs::remove_dir_all(&path).map_err(|e| pin_error(&path, e))?;
        }
    }
    Ok(())
}

/// Attaches the common programs, then the best payload set: the tracepoints where the kernel
/// has them and they attach, else the fexit set; an error names what each lacked.
pub(super) fn attach_all(
    ebpf: &mut Ebpf,
    root: &CgroupRoot,
    links_dir: &Path,
    (btf, btf_made_for): (&Btf, PayloadSet),
    payload_sets: PayloadSets,
    common: &[Program],
    choice: PayloadChoice,
) -> Result<Attachments, KernelError> {
    let cgroup = File::open(&root.path).map_err(|source| KernelError::Cgroup {
        path: root.path.clone(),
        source,
    })?;
    fs::create_dir_all(links_dir).map_err(|e| pin_error(links_dir, e))?;
    let target = Target {
        btf,
        cgroup: &cgroup,
        links_dir,
    };
    let mut links = Vec::new();
    for program in common {
        links.push((*program, attach::attach(ebpf, &target, *program)?));
    }
    let tracepoints = match try_payload_set(
        ebpf,
        &target,
        choice,
        PayloadSet::Tracepoints,
        payload_sets.tracepoints,
    ) {
        Ok(attached) => {
            let reason = "the kernel has the sock_send_length/sock_recv_length tracepoints";
            return Ok(with_payload(
                links,
                attached,
                PayloadSet::Tracepoints,
                reason.to_owned(),
            ));
        }
        Err(why) => why,
    };
    log::info!("tp_btf payload hooks unusable ({tracepoints}); trying fexit");
    // `btf` holds the names of the set tried first only: the fallback reads the kernel's BTF
    // again for its own (a kernel with the tracepoints that refuses them is rare).
    let remade;
    let target = match (&payload_sets.fexit, btf_made_for) {
        (Ok(fexit), PayloadSet::Tracepoints) => {
            remade = read_kernel_btf()?
                .into_aya_for(&btf_names(&[], Some(fexit), false))
                .map_err(KernelError::Btf)?;
            Target {
                btf: &remade,
                ..target
            }
        }
        _ => target,
    };
    let fexit = match try_payload_set(ebpf, &target, choice, PayloadSet::FExit, payload_sets.fexit)
    {
        Ok(attached) => {
            let reason = format!("tp_btf: {tracepoints}");
            return Ok(with_payload(links, attached, PayloadSet::FExit, reason));
        }
        Err(why) => why,
    };
    Err(KernelError::NoPayloadHooks { tracepoints, fexit })
}

/// Attaches the payload hook set `kind` (its programs, or why the kernel cannot have it in
/// `programs`), unless `--payload-hooks` rules it out. On failure, says why.
pub(super) fn try_payload_set(
    ebpf: &mut Ebpf,
    target: &Target<'_>,
    choice: PayloadChoice,
    kind: PayloadSet,
    programs: Result<Vec<Program>, String>,
) -> Result<Vec<(Program, FdLink)>, String> {
    if !choice.allows(kind) {
        return Err("not allowed by --payload-hooks".to_owned());
    }
    attach_set(ebpf, target, &programs?).map_err(|error| error.to_string())
}

/// The common `links` and the payload set `kind` attached as `payload`, for `reason`.
pub(super) fn with_payload(
    mut links: Vec<(Program, FdLink)>,
    mut payload: Vec<(Program, FdLink)>,
    kind: PayloadSet,
    reason: String,
) -> Attachments {
    links.append(&mut payload);
    Attachments {
        links,
        payload: PayloadHooks {
            set: kind.name().to_owned(),
            reason,
        },
        reused: false,
    }
}

/// Attaches every program of `set`, or none: on an error the ones attached are detached.
pub(super) fn attach_set(
    ebpf: &mut Ebpf,
    target: &Target<'_>,
    set: &[Program],
) -> Result<Vec<(Program, FdLink)>, KernelError> {
    let mut links = Vec::new();
    for program in set {
        match attach::attach(ebpf, target, *program) {
            Ok(link) => links.push((*program, link)),
            Err(error) => {
                for ((name, _), link) in links {
                    drop(link);
                    let _ = fs::remove_file(target.links_dir.join(name));
                }
                return Err(error);
            }
        }
    }
    Ok(links)
}
