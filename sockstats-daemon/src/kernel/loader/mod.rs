//! Loading the embedded kernel object, attaching its programs and pinning maps and links.
//!
//! Pin layout under the bpffs dir:
//! - `maps-v<layout>/<MAP>`: the maps, reused by every later daemon with the same map layout,
//!   so totals survive restarts;
//! - `links-<build>/<program>`: the attachments of one build of the programs for one cgroup
//!   root. A restarted daemon of the same build finds them and attaches nothing (programs kept
//!   counting while it was down); another build replaces them.
mod facts;
mod links;
mod object;

use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
};

use aya::{
    maps::MapError,
    programs::{links::FdLink, ProgramError},
    Ebpf, EbpfError,
};
use sockstats_common::{
    abi::program,
    protocol::{PayloadHooks, ProgramStatus},
    AccountKey, Counter, IfaceCounters, SocketState, MAP_LAYOUT_VERSION,
};

use super::{
    btf::BtfError,
    hooks::{self, PayloadChoice},
    maps::KernelMaps,
};
use crate::{cgroup::CgroupRoot, sys::bpffs};
use facts::{btf_names, kernel_facts, read_kernel_btf, KernelFacts};
use links::{attach_all, detach_other_builds, reuse_links};
use object::{check_capacities, load_iterator, load_object, take_maps};

/// The kernel object built by build.rs from sockstats-ebpf.
pub(super) static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sockstats-ebpf"));

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("this sockstatsd was built with AYA_BUILD_SKIP=1 and has no kernel programs; rebuild it with `cargo xtask build`")]
    NoObject,
    #[error(transparent)]
    Bpffs(#[from] bpffs::BpffsError),
    #[error("cannot load the kernel object (pinned maps from an incompatible build? run `sockstatsd --uninstall --bpffs-dir {}`): {source}", bpffs_dir.display())]
    Load {
        bpffs_dir: PathBuf,
        #[source]
        source: Box<EbpfError>,
    },
    #[error("cannot read the kernel's BTF from /sys/kernel/btf/vmlinux (the kernel needs CONFIG_DEBUG_INFO_BTF=y): {0}")]
    Btf(#[source] aya::BtfError),
    #[error("cannot read the kernel's BTF from /sys/kernel/btf/vmlinux (the kernel needs CONFIG_DEBUG_INFO_BTF=y): {0}")]
    KernelBtf(#[source] BtfError),
    #[error("cannot read the kernel release from /proc/sys/kernel/osrelease: {0}")]
    Release(String),
    #[error("cannot read the daemon's network namespace cookie: {0}")]
    NetnsCookie(#[source] io::Error),
    #[error("no way to read socket cookies from tracing programs on this kernel: {0}")]
    Cookie(String),
    #[error(
        "no payload hook set can be attached on this kernel: tp_btf: {tracepoints}; fexit: {fexit}"
    )]
    NoPayloadHooks { tracepoints: String, fexit: String },
    #[error("cannot load or attach {program} at {hook}: {source}{hint}")]
    Attach {
        program: &'static str,
        hook: String,
        hint: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("cannot open cgroup {}: {source}", path.display())]
    Cgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("pin {}: {reason}", path.display())]
    Pin { path: PathBuf, reason: String },
    #[error("map {name} is missing or of the wrong type: {reason}")]
    Map { name: &'static str, reason: String },
    #[error("the maps pinned under {} track {pinned} sockets, not the {requested} asked for; `sockstatsd --uninstall --bpffs-dir {}` first (it drops the kernel-side totals), or keep --max-sockets {pinned}", bpffs_dir.display(), bpffs_dir.display())]
    Capacity {
        bpffs_dir: PathBuf,
        pinned: u32,
        requested: u32,
    },
    #[error("the maps pinned under {} hold {pinned} accounts, not the {requested} asked for; `sockstatsd --uninstall --bpffs-dir {}` first (it drops the kernel-side totals), or keep --max-accounts {pinned}", bpffs_dir.display(), bpffs_dir.display())]
    AccountCapacity {
        bpffs_dir: PathBuf,
        pinned: u32,
        requested: u32,
    },
}

/// Where to pin and what to account.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub bpffs_dir: PathBuf,
    pub cgroup_root: CgroupRoot,
    /// Capacity of the cookie-keyed socket states (kernels before 5.11 only).
    pub max_sockets: u32,
    /// Capacity of the accounts: (label, interface) pairs.
    pub max_accounts: u32,
    /// Which payload hook sets may be used.
    pub payload: PayloadChoice,
    /// Attach the `TCP_CLOSE` hook for validation of closed sockets.
    pub validate_closed: bool,
    /// The destination trie's entries (prefix → destination id), written before any program
    /// is attached: a socket's destination is remembered from its first packet on.
    pub destination_prefixes: Vec<(sockstats_common::DestinationPrefix, u32)>,
}

/// The attached programs. Dropping it leaves them attached (their links are pinned).
pub struct AttachedKernel {
    pub programs: Vec<ProgramStatus>,
    /// Which payload hook set is attached, and why.
    pub payload: PayloadHooks,
    /// What this kernel cannot do that a newer one can.
    pub kernel_limits: Vec<String>,
    /// Id of a program whose log ring buffer aya-log can read.
    pub log_program_id: Option<u32>,
    /// True when the programs of an earlier daemon were found attached and kept.
    pub reused_links: bool,
    /// Where the maps are pinned.
    pub maps_dir: PathBuf,
    /// Socket states are kept in a hash by cookie (before 5.11, or where the kernel refuses
    /// socket-storage iterators), not in socket storage.
    pub states_by_cookie: bool,
    _ebpf: Ebpf,
    _links: Vec<FdLink>,
    /// Held while the daemon runs: one daemon per pin directory.
    _pin_lock: nix::fcntl::Flock<File>,
}

/// The directory of the maps of this layout: `maps-v<version>-<value sizes>`.
fn maps_dir_name() -> String {
    format!(
        "maps-v{MAP_LAYOUT_VERSION}-{}-{}-{}-{}",
        size_of::<SocketState>(),
        size_of::<AccountKey>(),
        size_of::<IfaceCounters>(),
        Counter::COUNT
    )
}

/// Maps pinned by builds with another layout are not read (their totals are not carried
/// over) but left in place for the operator to remove.
fn warn_about_other_layouts(bpffs_dir: &Path, maps_dir: &Path) {
    let Ok(entries) = fs::read_dir(bpffs_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with("maps") && path != maps_dir {
            log::warn!(
                "{} holds maps of another sockstats map layout; they are not used (their totals \
                 are not carried over); delete it to free them",
                path.display()
            );
        }
    }
}

/// FNV-1a over the object and the cgroup root: names the links directory of this build.
fn build_tag(cgroup_root: &CgroupRoot) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in OBJECT.iter().chain(&cgroup_root.id.to_le_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

pub(super) fn pin_error(path: &Path, reason: impl std::fmt::Display) -> KernelError {
    KernelError::Pin {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Loads the object (maps from pins where they exist), then reuses or makes the attachments.
/// Returns the attachments and the maps the daemon reads.
pub fn load_and_attach(options: &LoadOptions) -> Result<(AttachedKernel, KernelMaps), KernelError> {
    if OBJECT.is_empty() {
        return Err(KernelError::NoObject);
    }
    bpffs::prepare_pin_dir(&options.bpffs_dir)?;
    let pin_lock = bpffs::lock_pin_dir(&options.bpffs_dir)?;
    let maps_dir = options.bpffs_dir.join(maps_dir_name());
    fs::create_dir_all(&maps_dir).map_err(|e| pin_error(&maps_dir, e))?;
    warn_about_other_layouts(&options.bpffs_dir, &maps_dir);

    // The kernel's BTF is read once: this reader decides what it can from it; aya parses the
    // same bytes only to attach the programs (below).
    let kernel_btf = read_kernel_btf()?;
    let facts = kernel_facts(&kernel_btf)?;
    let root = &options.cgroup_root;
    let mut ebpf = load_object(options, &maps_dir, &facts)?;
    let KernelFacts {
        payload_sets,
        cmpxchg,
        state_by_cookie,
        limits: kernel_limits,
        ..
    } = facts;

    let common = hooks::common(cmpxchg, state_by_cookie || options.validate_closed);
    let with_iterator = !state_by_cookie;
    // aya's `Btf` for the tracing programs' and the iterator's loads, with only the names they
    // look up (see `into_aya_for`), dropped as soon as the programs are loaded.
    let first_set = payload_sets.first_to_try(options.payload);
    let btf = kernel_btf
        .into_aya_for(&btf_names(
            &common,
            payload_sets.programs(first_set),
            with_iterator,
        ))
        .map_err(KernelError::Btf)?;
    // The maps' file descriptors are already in the loaded instructions: taking them out of
    // `ebpf` here (before attaching) only moves who owns them.
    let iterator = if with_iterator {
        Some(load_iterator(&mut ebpf, &btf)?)
    } else {
        None
    };
    let (mut maps, pinned) = take_maps(&mut ebpf, iterator)?;
    check_capacities(options, &maps, pinned)?;
    maps.set_destinations(&options.destination_prefixes)
        .map_err(|error| map_error(sockstats_common::DESTINATIONS_MAP, &error))?;
    let links_dir = options.bpffs_dir.join(format!("links-{}", build_tag(root)));
    let attached =
        if let Some(reused) = reuse_links(&links_dir, &payload_sets, &common, options.payload)? {
            reused
        } else {
            detach_other_builds(&options.bpffs_dir, &links_dir)?;
            attach_all(
                &mut ebpf,
                root,
                &links_dir,
                (&btf, first_set),
                payload_sets,
                &common,
                options.payload,
            )?
        };
    drop(btf);
    log::info!(
        "payload hooks: {} ({})",
        attached.payload.set,
        attached.payload.reason
    );
    let mut programs = Vec::new();
    for ((name, hook), link) in &attached.links {
        let prog_id = link.info().ok().map(|info| info.program_id());
        programs.push(ProgramStatus {
            name: (*name).to_owned(),
            hook: hook.describe(),
            prog_id,
        });
    }
    let log_program_id = programs
        .iter()
        .find(|p| p.name == program::SOCK_CREATE.name)
        .and_then(|p| p.prog_id);
    let attached = AttachedKernel {
        programs,
        payload: attached.payload,
        kernel_limits,
        log_program_id,
        reused_links: attached.reused,
        maps_dir: maps_dir.clone(),
        states_by_cookie: state_by_cookie,
        _ebpf: ebpf,
        _links: attached.links.into_iter().map(|(_, link)| link).collect(),
        _pin_lock: pin_lock,
    };
    Ok((attached, maps))
}

fn map_error(name: &'static str, error: &MapError) -> KernelError {
    KernelError::Map {
        name,
        reason: error.to_string(),
    }
}

/// Detaches the programs and deletes every pin (maps too: the totals are gone afterwards).
/// Refused while a daemon owns the pins.
pub fn uninstall(bpffs_dir: &Path) -> Result<bool, KernelError> {
    let _lock = match bpffs::lock_pin_dir(bpffs_dir) {
        Err(bpffs::BpffsError::Stat { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(false)
        }
        other => other?,
    };
    match fs::remove_dir_all(bpffs_dir) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(pin_error(bpffs_dir, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Section `wanted` of a little-endian ELF64 object.
    fn elf_section<'a>(elf: &'a [u8], wanted: &str) -> Option<&'a [u8]> {
        assert_eq!(
            &elf[..6],
            b"\x7fELF\x02\x01",
            "a little-endian ELF64 object"
        );
        let at = |offset: usize, len: usize| {
            let mut word = [0u8; 8];
            word[..len].copy_from_slice(&elf[offset..offset + len]);
            usize::try_from(u64::from_le_bytes(word)).unwrap()
        };
        let (headers, header_len) = (at(0x28, 8), at(0x3a, 2));
        let (count, names) = (at(0x3c, 2), at(0x3e, 2));
        let header = |index: usize| headers + index * header_len;
        // A section header holds its name (an offset in the names section) at 0, its file
        // offset at 24 and its size at 32.
        let data_of = |header: usize| &elf[at(header + 24, 8)..][..at(header + 32, 8)];
        let names = data_of(header(names));
        (0..count).map(header).find_map(|header| {
            let name = &names[at(header, 4)..];
            (name.starts_with(wanted.as_bytes()) && name.get(wanted.len()) == Some(&0))
                .then(|| data_of(header))
        })
    }

    /// The object is loaded without the kernel's BTF, which aya would use only for CO-RE
    /// relocations: it must have none (no `core_relo` records in its `.BTF.ext`).
    #[test]
    fn the_object_has_no_co_re_relocations() {
        if OBJECT.is_empty() {
            return; // built with AYA_BUILD_SKIP=1: no object
        }
        assert!(elf_section(OBJECT, ".BTF").is_some(), "the object has BTF");
        let Some(btf_ext) = elf_section(OBJECT, ".BTF.ext") else {
            return; // no .BTF.ext, no relocations
        };
        // struct btf_ext_header: magic, version, flags, hdr_len, then offset and length of
        // func_info, line_info and (when hdr_len reaches them) core_relo.
        let word = |at: usize| u32::from_le_bytes(btf_ext[at..at + 4].try_into().unwrap());
        assert_eq!(btf_ext[..2], [0x9f, 0xeb], "BTF.ext magic");
        assert!(
            word(4) < 32 || word(28) == 0,
            "the object has CO-RE relocations: the loader must hand aya the kernel's BTF \
             before loading it (EbpfLoader::btf)"
        );
    }
}
