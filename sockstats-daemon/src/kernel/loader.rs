//! Loading the embedded kernel object, attaching its programs and pinning maps and links.
//!
//! Pin layout under the bpffs dir:
//! - `maps-v<layout>/<MAP>`: the maps, reused by every later daemon with the same map layout,
//!   so totals survive restarts;
//! - `links-<build>/<program>`: the attachments of one build of the programs for one cgroup
//!   root. A restarted daemon of the same build finds them and attaches nothing (programs kept
//!   counting while it was down); another build replaces them.
use std::{
    fs::{self, File},
    io,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, HashMap, MapError},
    programs::{
        links::{FdLink, PinnedLink},
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, ProgramError,
    },
    Btf, Ebpf, EbpfError, EbpfLoader,
};
use sockstats_common::{
    protocol::ProgramStatus, Counter, IfaceCounters, LabelIfaceKey, SocketEntry, COUNTERS_MAP,
    GLOBAL_ROOT_CGROUP_ID, GLOBAL_ROOT_CGROUP_LEVEL, GLOBAL_SK_SOCKET_OFFSET,
    GLOBAL_SOCKET_FILE_OFFSET, GLOBAL_TRACING_ANCESTOR_HELPER, LABEL_TOTALS_MAP,
    MAP_LAYOUT_VERSION, OWNER_TOTALS_MAP, RELEASED_MAP, RULES_MAP, RULE_KINDS_MAP, SOCKETS_MAP,
    SOCKET_LABELS_MAP, TRACING_ANCESTOR_HELPER_SINCE,
};

use super::maps::KernelMaps;
use crate::{cgroup::CgroupRoot, sys::bpffs};

/// The kernel object built by build.rs from sockstats-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sockstats-ebpf"));

/// Where a program is attached.
#[derive(Debug, Clone, Copy)]
enum Hook {
    /// A BTF tracepoint, by name.
    Tracepoint(&'static str),
    /// A cgroup/sock hook on the accounted cgroup.
    CgroupSock(&'static str),
    /// A `cgroup_skb` hook on the accounted cgroup.
    CgroupSkb(CgroupSkbAttachType),
}

impl Hook {
    fn describe(self) -> String {
        match self {
            Hook::Tracepoint(name) => format!("tp_btf/{name}"),
            Hook::CgroupSock(name) => format!("cgroup/{name}"),
            Hook::CgroupSkb(CgroupSkbAttachType::Ingress) => "cgroup_skb/ingress".to_owned(),
            Hook::CgroupSkb(CgroupSkbAttachType::Egress) => "cgroup_skb/egress".to_owned(),
        }
    }
}

/// Every program of the object, by name, and its hook.
const PROGRAMS: [(&str, Hook); 7] = [
    ("sock_send_length", Hook::Tracepoint("sock_send_length")),
    ("sock_recv_length", Hook::Tracepoint("sock_recv_length")),
    (
        "inet_sock_set_state",
        Hook::Tracepoint("inet_sock_set_state"),
    ),
    ("sock_create", Hook::CgroupSock("sock_create")),
    ("sock_release", Hook::CgroupSock("sock_release")),
    (
        "packet_egress",
        Hook::CgroupSkb(CgroupSkbAttachType::Egress),
    ),
    (
        "packet_ingress",
        Hook::CgroupSkb(CgroupSkbAttachType::Ingress),
    ),
];

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
}

/// Where to pin and what to account.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub bpffs_dir: PathBuf,
    pub cgroup_root: CgroupRoot,
    /// Capacity of the per-socket maps (live sockets tracked at once).
    pub max_sockets: u32,
}

/// The attached programs. Dropping it leaves them attached (their links are pinned).
pub struct AttachedKernel {
    pub programs: Vec<ProgramStatus>,
    /// Id of a program whose log ring buffer aya-log can read.
    pub log_program_id: Option<u32>,
    /// True when the programs of an earlier daemon were found attached and kept.
    pub reused_links: bool,
    /// Where the maps are pinned.
    pub maps_dir: PathBuf,
    _ebpf: Ebpf,
    _links: Vec<FdLink>,
    /// Held while the daemon runs: one daemon per pin directory.
    _pin_lock: nix::fcntl::Flock<File>,
}

/// The directory of the maps of this layout: `maps-v<version>-<value sizes>`.
fn maps_dir_name() -> String {
    format!(
        "maps-v{MAP_LAYOUT_VERSION}-{}-{}-{}-{}",
        size_of::<SocketEntry>(),
        size_of::<LabelIfaceKey>(),
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

fn pin_error(path: &Path, reason: impl std::fmt::Display) -> KernelError {
    KernelError::Pin {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Offsets of `struct sock.sk_socket` and `struct socket.file` in the running kernel, or zeros
/// (the `TCP_CLOSE` backstop then folds every socket, as before it could tell them apart).
fn socket_offsets() -> (u32, u32) {
    let offsets = crate::sys::btf::KernelBtf::from_sys_fs()
        .ok()
        .and_then(|btf| {
            Some((
                btf.member_offset("sock", "sk_socket")?,
                btf.member_offset("socket", "file")?,
            ))
        });
    offsets.unwrap_or_else(|| {
        log::warn!("struct sock/socket offsets not found in the kernel's BTF: the TCP_CLOSE backstop may miss the last bytes of a socket closing while it sends");
        (0, 0)
    })
}

/// Does the running kernel let tracing programs call `bpf_get_current_ancestor_cgroup_id`?
fn tracing_has_ancestor_helper() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    kernel_at_least(&release, TRACING_ANCESTOR_HELPER_SINCE)
}

/// Is the kernel `release` (`6.1.0-56-amd64`) at least `(major, minor)`?
fn kernel_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut numbers = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let found = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    found >= (major, minor)
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

    let root = &options.cgroup_root;
    let (sk_socket, socket_file) = socket_offsets();
    let mut ebpf = EbpfLoader::new()
        .default_map_pin_directory(&maps_dir)
        .override_global(GLOBAL_ROOT_CGROUP_ID, &root.id, true)
        .override_global(GLOBAL_ROOT_CGROUP_LEVEL, &root.level, true)
        .override_global(GLOBAL_SK_SOCKET_OFFSET, &sk_socket, true)
        .override_global(GLOBAL_SOCKET_FILE_OFFSET, &socket_file, true)
        .override_global(
            GLOBAL_TRACING_ANCESTOR_HELPER,
            &u32::from(tracing_has_ancestor_helper()),
            true,
        )
        .map_max_entries(SOCKETS_MAP, options.max_sockets)
        .map_max_entries(SOCKET_LABELS_MAP, options.max_sockets)
        .load(OBJECT)
        .map_err(|source| KernelError::Load {
            bpffs_dir: options.bpffs_dir.clone(),
            source: Box::new(source),
        })?;

    // The maps' file descriptors are already in the loaded instructions: taking them out of
    // `ebpf` here (before attaching) only moves who owns them.
    let maps = take_maps(&mut ebpf)?;
    let pinned = aya::maps::IterableMap::map(&maps.sockets)
        .info()
        .map_or(options.max_sockets, |info| info.max_entries());
    if pinned != options.max_sockets {
        return Err(KernelError::Capacity {
            bpffs_dir: options.bpffs_dir.clone(),
            pinned,
            requested: options.max_sockets,
        });
    }
    let links_dir = options.bpffs_dir.join(format!("links-{}", build_tag(root)));
    let (links, reused_links) = if let Some(links) = reuse_links(&links_dir)? {
        (links, true)
    } else {
        detach_other_builds(&options.bpffs_dir, &links_dir)?;
        (attach_all(&mut ebpf, root, &links_dir)?, false)
    };
    let mut programs = Vec::new();
    for ((name, hook), link) in PROGRAMS.iter().zip(&links) {
        let prog_id = link.info().ok().map(|info| info.program_id());
        programs.push(ProgramStatus {
            name: (*name).to_owned(),
            hook: hook.describe(),
            prog_id,
        });
    }
    let log_program_id = programs
        .iter()
        .find(|p| p.name == "sock_create")
        .and_then(|p| p.prog_id);
    let attached = AttachedKernel {
        programs,
        log_program_id,
        reused_links,
        maps_dir: maps_dir.clone(),
        _ebpf: ebpf,
        _links: links,
        _pin_lock: pin_lock,
    };
    Ok((attached, maps))
}

/// The attachments of this build, if an earlier daemon left all of them pinned.
fn reuse_links(links_dir: &Path) -> Result<Option<Vec<FdLink>>, KernelError> {
    if !links_dir.exists() {
        return Ok(None);
    }
    let mut links = Vec::new();
    for (name, _) in PROGRAMS {
        match PinnedLink::from_pin(links_dir.join(name)) {
            Ok(pinned) => links.push(FdLink::from(pinned)),
            Err(error) => {
                log::warn!(
                    "incomplete attachments in {} ({error}); attaching afresh",
                    links_dir.display()
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
    Ok(Some(links))
}

/// Removes the link pins of other builds: their programs detach once no daemon holds them.
fn detach_other_builds(bpffs_dir: &Path, keep: &Path) -> Result<(), KernelError> {
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

fn attach_error(program: &'static str, hook: Hook, source: ProgramError) -> KernelError {
    let hint = match hook {
        Hook::Tracepoint(_) => {
            " (the sock_send_length/sock_recv_length tracepoints need Linux 6.3 or newer with BTF)"
        }
        Hook::CgroupSock(_) => " (cgroup/sock_create and sock_release need Linux 5.9 or newer)",
        Hook::CgroupSkb(_) => " (cgroup_skb needs cgroup v2 and Linux 5.8 or newer)",
    };
    KernelError::Attach {
        program,
        hook: hook.describe(),
        hint,
        source: Box::new(source),
    }
}

fn attach_all(
    ebpf: &mut Ebpf,
    root: &CgroupRoot,
    links_dir: &Path,
) -> Result<Vec<FdLink>, KernelError> {
    let btf = Btf::from_sys_fs().map_err(KernelError::Btf)?;
    let cgroup = File::open(&root.path).map_err(|source| KernelError::Cgroup {
        path: root.path.clone(),
        source,
    })?;
    fs::create_dir_all(links_dir).map_err(|e| pin_error(links_dir, e))?;
    let mut links = Vec::new();
    for (name, hook) in PROGRAMS {
        let program = ebpf.program_mut(name).ok_or_else(|| {
            pin_error(links_dir, format!("program {name} missing from the object"))
        })?;
        let link = match hook {
            Hook::Tracepoint(tracepoint) => {
                let program: &mut BtfTracePoint = program
                    .try_into()
                    .map_err(|e| attach_error(name, hook, e))?;
                program
                    .load(tracepoint, &btf)
                    .map_err(|e| attach_error(name, hook, e))?;
                let id = program.attach().map_err(|e| attach_error(name, hook, e))?;
                FdLink::from(
                    program
                        .take_link(id)
                        .map_err(|e| attach_error(name, hook, e))?,
                )
            }
            Hook::CgroupSock(_) => {
                let program: &mut CgroupSock = program
                    .try_into()
                    .map_err(|e| attach_error(name, hook, e))?;
                program.load().map_err(|e| attach_error(name, hook, e))?;
                // Through bpf_link (Linux 5.7+) cgroup attachments always coexist with others;
                // the kernel refuses any flag there, so the mode must be the flag-less Single.
                let id = program
                    .attach(&cgroup, CgroupAttachMode::Single)
                    .map_err(|e| attach_error(name, hook, e))?;
                let link = program
                    .take_link(id)
                    .map_err(|e| attach_error(name, hook, e))?;
                FdLink::try_from(link).map_err(|e| pin_error(links_dir, e))?
            }
            Hook::CgroupSkb(attach_type) => {
                let program: &mut CgroupSkb = program
                    .try_into()
                    .map_err(|e| attach_error(name, hook, e))?;
                program.load().map_err(|e| attach_error(name, hook, e))?;
                let id = program
                    .attach(&cgroup, attach_type, CgroupAttachMode::Single)
                    .map_err(|e| attach_error(name, hook, e))?;
                let link = program
                    .take_link(id)
                    .map_err(|e| attach_error(name, hook, e))?;
                FdLink::try_from(link).map_err(|e| pin_error(links_dir, e))?
            }
        };
        let path = links_dir.join(name);
        let pinned = link.pin(&path).map_err(|e| pin_error(&path, e))?;
        links.push(FdLink::from(pinned));
        log::info!("attached {name} at {}", hook.describe());
    }
    Ok(links)
}

fn map_error(name: &'static str, error: &MapError) -> KernelError {
    KernelError::Map {
        name,
        reason: error.to_string(),
    }
}

fn take_maps(ebpf: &mut Ebpf) -> Result<KernelMaps, KernelError> {
    let mut take = |name: &'static str| {
        ebpf.take_map(name).ok_or(KernelError::Map {
            name,
            reason: "not in the object".into(),
        })
    };
    Ok(KernelMaps {
        sockets: HashMap::try_from(take(SOCKETS_MAP)?).map_err(|e| map_error(SOCKETS_MAP, &e))?,
        socket_labels: HashMap::try_from(take(SOCKET_LABELS_MAP)?)
            .map_err(|e| map_error(SOCKET_LABELS_MAP, &e))?,
        label_totals: HashMap::try_from(take(LABEL_TOTALS_MAP)?)
            .map_err(|e| map_error(LABEL_TOTALS_MAP, &e))?,
        counters: Array::try_from(take(COUNTERS_MAP)?).map_err(|e| map_error(COUNTERS_MAP, &e))?,
        released: HashMap::try_from(take(RELEASED_MAP)?)
            .map_err(|e| map_error(RELEASED_MAP, &e))?,
        rules: HashMap::try_from(take(RULES_MAP)?).map_err(|e| map_error(RULES_MAP, &e))?,
        rule_kinds: Array::try_from(take(RULE_KINDS_MAP)?)
            .map_err(|e| map_error(RULE_KINDS_MAP, &e))?,
        owner_totals: HashMap::try_from(take(OWNER_TOTALS_MAP)?)
            .map_err(|e| map_error(OWNER_TOTALS_MAP, &e))?,
    })
}

/// A handle of its own on the RELEASED tombstones (cookie → label id), for a thread that must
/// not wait for the lock around [`KernelMaps`].
pub fn open_released(
    maps_dir: &Path,
) -> Result<HashMap<aya::maps::MapData, u64, u32>, KernelError> {
    let path = maps_dir.join(RELEASED_MAP);
    let data = aya::maps::MapData::from_pin(&path).map_err(|e| map_error(RELEASED_MAP, &e))?;
    HashMap::try_from(aya::maps::Map::LruHashMap(data)).map_err(|e| map_error(RELEASED_MAP, &e))
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
    use super::kernel_at_least;

    #[test]
    fn compares_kernel_releases() {
        assert!(kernel_at_least("6.18.0-1-amd64\n", (5, 18)));
        assert!(kernel_at_least("5.18.0", (5, 18)));
        assert!(!kernel_at_least("5.10.0-46-amd64", (5, 18)));
        assert!(kernel_at_least("6.1.0-56-cloud-amd64", (5, 18)));
        assert!(!kernel_at_least("garbage", (5, 18)));
    }
}
