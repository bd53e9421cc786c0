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
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, HashMap, MapError, PerCpuArray},
    programs::{
        links::{FdLink, PinnedLink},
        Iter, ProgramError,
    },
    Btf, Ebpf, EbpfError, EbpfLoader,
};
use sockstats_common::{
    abi::program,
    globals,
    protocol::{PayloadHooks, ProgramStatus},
    Counter, IfaceCounters, LabelIfaceKey, SocketState, ACCOUNTS_MAP, ACCOUNT_IDS_MAP,
    ACCOUNT_KEYS_MAP, CONTROL_MAP, COUNTERS_MAP, GLOBAL_PACKET_NETNS_COOKIE, GLOBAL_ROOT_CGROUP_ID,
    GLOBAL_ROOT_CGROUP_LEVEL, GLOBAL_SK_SOCKET_OFFSET, GLOBAL_SOCKET_FILE_OFFSET,
    GLOBAL_SOCK_COOKIE_OFFSET, GLOBAL_STATE_BY_COOKIE, GLOBAL_TRACING_ANCESTOR_HELPER,
    LABEL_SOCKETS_MAP, MAP_LAYOUT_VERSION, OWNER_ACCOUNTS_MAP, OWNER_KEYS_MAP, RULES_MAP,
    RULE_KINDS_MAP, SOCKET_STATE_BY_COOKIE_MAP, SOCKET_STATE_MAP, TRACING_ANCESTOR_HELPER_SINCE,
    TRACING_SK_STORAGE_SINCE, VALIDATION_MAP,
};

use super::{
    attach::{self, Target},
    btf::{BtfError, BtfName, KernelBtf},
    hooks::{self, Hook, PayloadChoice, PayloadSet, Program},
    maps::{KernelMaps, LiveStates},
};
use crate::{
    cgroup::CgroupRoot,
    sys::{bpffs, memlock, netns},
};

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

pub(super) fn pin_error(path: &Path, reason: impl std::fmt::Display) -> KernelError {
    KernelError::Pin {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// What the loader adapts to in the running kernel.
struct KernelFacts {
    /// The payload hook sets the kernel's BTF allows.
    payload_sets: PayloadSets,
    /// Does the verifier accept `cmpxchg`?
    cmpxchg: bool,
    /// The programs' `SOCK_COOKIE_OFFSET`.
    cookie_offset: u32,
    /// The programs' `PACKET_NETNS_COOKIE`.
    packet_netns_cookie: u64,
    /// The programs' `SK_SOCKET_OFFSET` and `SOCKET_FILE_OFFSET` (0, 0 when unknown).
    socket_offsets: (u32, u32),
    /// The programs' `TRACING_ANCESTOR_HELPER`.
    ancestor_helper: bool,
    /// The programs' `STATE_BY_COOKIE`: tracing programs cannot use socket storage.
    state_by_cookie: bool,
    /// The programs' `TCP_BYTES_ACKED_OFFSET` and `TCP_BYTES_RECEIVED_OFFSET` (0, 0 when
    /// unknown: no validation of closed sockets).
    tcp_counter_offsets: (u32, u32),
    /// What this kernel cannot do that a newer one can.
    limits: Vec<String>,
}

/// The payload hook sets as the kernel's BTF allows them, or what it lacks for each: decided
/// before that BTF is handed to aya.
struct PayloadSets {
    tracepoints: Result<Vec<Program>, String>,
    fexit: Result<Vec<Program>, String>,
}

impl PayloadSets {
    /// The set `attach_all` tries first under `choice`: the tracepoints where this kernel has
    /// them and `choice` allows them, else fexit.
    fn first_to_try(&self, choice: PayloadChoice) -> PayloadSet {
        if self.tracepoints.is_ok() && choice.allows(PayloadSet::Tracepoints) {
            PayloadSet::Tracepoints
        } else {
            PayloadSet::FExit
        }
    }

    /// The programs of `set`, if this kernel can have them.
    fn programs(&self, set: PayloadSet) -> Option<&[Program]> {
        match set {
            PayloadSet::Tracepoints => self.tracepoints.as_deref().ok(),
            PayloadSet::FExit => self.fexit.as_deref().ok(),
        }
    }
}

/// Reads the kernel's release, lifts `RLIMIT_MEMLOCK` and decides, from the release and the
/// kernel's BTF, the globals and the payload hook sets.
fn kernel_facts(kernel_btf: &KernelBtf) -> Result<KernelFacts, KernelError> {
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
    let state_by_cookie = version < TRACING_SK_STORAGE_SINCE;
    if state_by_cookie {
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

fn read_kernel_btf() -> Result<KernelBtf, KernelError> {
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
fn tcp_counter_offsets(btf: &KernelBtf, limits: &mut Vec<String>) -> (u32, u32) {
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
fn socket_offsets(btf: &KernelBtf, limits: &mut Vec<String>) -> (u32, u32) {
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
    let (maps, pinned) = take_maps(&mut ebpf, iterator)?;
    check_capacities(options, &maps, pinned)?;
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
        _ebpf: ebpf,
        _links: attached.links.into_iter().map(|(_, link)| link).collect(),
        _pin_lock: pin_lock,
    };
    Ok((attached, maps))
}

/// An `EbpfLoader` that has not read the kernel's BTF (the object's load does not need it).
///
/// aya 0.14's `EbpfLoader::new` reads and parses `/sys/kernel/btf/vmlinux` itself, whether or
/// not `.btf()` replaces it later (<https://github.com/aya-rs/aya/issues/1172>; aya loads it
/// lazily after 0.14): 19 MiB at its peak on 6.18, the file's 5.3 MiB and aya's 13 MiB parse
/// of it, the start's largest allocation by far. Here `new` runs while opening a file fails
/// with `EMFILE`, so that its read fails and it starts without BTF (nothing else it does
/// opens a file). That is done only while the daemon has one thread, so that nothing else
/// sees the lowered limit; otherwise `new` reads the BTF, as it would anyway.
fn loader_without_btf<'a>() -> EbpfLoader<'a> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let single_threaded = fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .any(|line| line.split_whitespace().eq(["Threads:", "1"]))
    });
    // The lowest free descriptor, the one the next open would get (closed again at once).
    let lowest_free = File::open("/dev/null").map(|file| file.as_raw_fd());
    let (Ok((soft, hard)), Ok(lowest_free), true) = (
        getrlimit(Resource::RLIMIT_NOFILE),
        lowest_free,
        single_threaded,
    ) else {
        return EbpfLoader::new();
    };
    let lowered = libc::rlim_t::try_from(lowest_free).unwrap_or(soft);
    if setrlimit(Resource::RLIMIT_NOFILE, lowered, hard).is_err() {
        return EbpfLoader::new();
    }
    let loader = EbpfLoader::new();
    if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, soft, hard) {
        log::warn!("cannot restore the open-file limit to {soft}: {error}");
    }
    loader
}

/// Loads the object with the globals this kernel needs, its maps from `maps_dir` where pinned.
fn load_object(
    options: &LoadOptions,
    maps_dir: &Path,
    facts: &KernelFacts,
) -> Result<Ebpf, KernelError> {
    // Loaded without the kernel's BTF: aya would use it here only for CO-RE relocations, and
    // the object has none (aya-ebpf programs do not make them: the kernel offsets these read
    // are the globals below; a test checks the object).
    let root = &options.cgroup_root;
    loader_without_btf()
        .btf(None)
        .default_map_pin_directory(maps_dir)
        .override_global(GLOBAL_ROOT_CGROUP_ID, &root.id, true)
        .override_global(GLOBAL_ROOT_CGROUP_LEVEL, &root.level, true)
        .override_global(GLOBAL_SOCK_COOKIE_OFFSET, &facts.cookie_offset, true)
        .override_global(GLOBAL_PACKET_NETNS_COOKIE, &facts.packet_netns_cookie, true)
        .override_global(GLOBAL_SK_SOCKET_OFFSET, &facts.socket_offsets.0, true)
        .override_global(GLOBAL_SOCKET_FILE_OFFSET, &facts.socket_offsets.1, true)
        .override_global(
            GLOBAL_TRACING_ANCESTOR_HELPER,
            &u32::from(facts.ancestor_helper),
            true,
        )
        .override_global(
            GLOBAL_STATE_BY_COOKIE,
            &u32::from(facts.state_by_cookie),
            true,
        )
        .override_global(
            globals::TCP_BYTES_ACKED_OFFSET,
            &facts.tcp_counter_offsets.0,
            true,
        )
        .override_global(
            globals::TCP_BYTES_RECEIVED_OFFSET,
            &facts.tcp_counter_offsets.1,
            true,
        )
        .override_global(globals::MAX_ACCOUNTS, &options.max_accounts, true)
        .map_max_entries(SOCKET_STATE_BY_COOKIE_MAP, options.max_sockets)
        .map_max_entries(ACCOUNTS_MAP, options.max_accounts)
        .map_max_entries(ACCOUNT_IDS_MAP, options.max_accounts)
        .map_max_entries(ACCOUNT_KEYS_MAP, options.max_accounts)
        .load(OBJECT)
        .map_err(|source| KernelError::Load {
            bpffs_dir: options.bpffs_dir.clone(),
            source: Box::new(source),
        })
}

/// Refuses pinned maps whose capacities are not the ones asked for (`pinned_sockets`: that of
/// the pinned cookie-keyed states).
fn check_capacities(
    options: &LoadOptions,
    maps: &KernelMaps,
    pinned_sockets: Option<u32>,
) -> Result<(), KernelError> {
    let pinned_accounts = aya::maps::IterableMap::map(&maps.account_keys)
        .info()
        .map_or(options.max_accounts, |info| info.max_entries());
    if pinned_accounts != options.max_accounts {
        return Err(KernelError::AccountCapacity {
            bpffs_dir: options.bpffs_dir.clone(),
            pinned: pinned_accounts,
            requested: options.max_accounts,
        });
    }
    let pinned = pinned_sockets.unwrap_or(options.max_sockets);
    if pinned != options.max_sockets {
        return Err(KernelError::Capacity {
            bpffs_dir: options.bpffs_dir.clone(),
            pinned,
            requested: options.max_sockets,
        });
    }
    Ok(())
}

/// The value of the programs' `PACKET_NETNS_COOKIE`: 0 where `cgroup_skb` programs may call
/// `bpf_get_netns_cookie` (probed), else the daemon's own namespace's cookie, which then
/// stands for every packet's namespace.
fn packet_netns_cookie(kernel_limits: &mut Vec<String>) -> Result<u64, KernelError> {
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

/// Attachments made or found, with the payload set they use.
struct Attachments {
    links: Vec<(Program, FdLink)>,
    payload: PayloadHooks,
    reused: bool,
}

/// The attachments of this build, if an earlier daemon left all programs of one hook set
/// pinned.
fn reuse_links(
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
fn detach_unwanted(links_dir: &Path, wanted: &[Program]) -> Result<(), KernelError> {
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

/// Attaches the common programs, then the best payload set: the tracepoints where the kernel
/// has them and they attach, else the fexit set; an error names what each lacked.
fn attach_all(
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
fn try_payload_set(
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
fn with_payload(
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
fn attach_set(
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

fn map_error(name: &'static str, error: &MapError) -> KernelError {
    KernelError::Map {
        name,
        reason: error.to_string(),
    }
}

/// The names the loads of `common`, of the payload set `payload` and (`iterator`) of the
/// socket-state iterator look up in the kernel's BTF.
fn btf_names(common: &[Program], payload: Option<&[Program]>, iterator: bool) -> Vec<BtfName> {
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

/// Loads the socket-state iterator (not attached: each read makes a link of its own).
fn load_iterator(ebpf: &mut Ebpf, btf: &Btf) -> Result<aya::programs::ProgramFd, KernelError> {
    let spec = program::SOCKET_STATES;
    let error = |source| KernelError::Attach {
        program: spec.name,
        hook: format!("iter/{}", spec.target),
        hint: " (socket-storage iterators need Linux 5.9 or newer)",
        source: Box::new(source),
    };
    let program: &mut Iter = ebpf
        .program_mut(spec.name)
        .ok_or_else(|| KernelError::Map {
            name: spec.name,
            reason: "program not in the object".into(),
        })?
        .try_into()
        .map_err(error)?;
    program.load(spec.target, btf).map_err(error)?;
    program
        .fd()
        .map_err(error)?
        .try_clone()
        .map_err(|e| error(ProgramError::IOError(e)))
}

/// The maps the daemon reads and writes, and the capacity of the pinned cookie-keyed states
/// (checked against `--max-sockets` on every kernel, so pins never silently change meaning).
fn take_maps(
    ebpf: &mut Ebpf,
    iterator: Option<aya::programs::ProgramFd>,
) -> Result<(KernelMaps, Option<u32>), KernelError> {
    let mut take = |name: &'static str| {
        ebpf.take_map(name).ok_or(KernelError::Map {
            name,
            reason: "not in the object".into(),
        })
    };
    let by_cookie: HashMap<aya::maps::MapData, u64, SocketState> =
        HashMap::try_from(take(SOCKET_STATE_BY_COOKIE_MAP)?)
            .map_err(|e| map_error(SOCKET_STATE_BY_COOKIE_MAP, &e))?;
    let capacity = aya::maps::IterableMap::map(&by_cookie)
        .info()
        .ok()
        .map(|info| info.max_entries());
    let live_states = match iterator {
        Some(iterator) => {
            let map = match take(SOCKET_STATE_MAP)? {
                aya::maps::Map::SkStorage(map) => map,
                other => {
                    return Err(KernelError::Map {
                        name: SOCKET_STATE_MAP,
                        reason: format!("not socket storage but {other:?}"),
                    })
                }
            };
            LiveStates::SocketStorage { map, iterator }
        }
        None => LiveStates::ByCookie,
    };
    let maps = KernelMaps {
        accounts: PerCpuArray::try_from(take(ACCOUNTS_MAP)?)
            .map_err(|e| map_error(ACCOUNTS_MAP, &e))?,
        account_keys: HashMap::try_from(take(ACCOUNT_KEYS_MAP)?)
            .map_err(|e| map_error(ACCOUNT_KEYS_MAP, &e))?,
        owner_accounts: PerCpuArray::try_from(take(OWNER_ACCOUNTS_MAP)?)
            .map_err(|e| map_error(OWNER_ACCOUNTS_MAP, &e))?,
        owner_keys: HashMap::try_from(take(OWNER_KEYS_MAP)?)
            .map_err(|e| map_error(OWNER_KEYS_MAP, &e))?,
        label_sockets: PerCpuArray::try_from(take(LABEL_SOCKETS_MAP)?)
            .map_err(|e| map_error(LABEL_SOCKETS_MAP, &e))?,
        counters: PerCpuArray::try_from(take(COUNTERS_MAP)?)
            .map_err(|e| map_error(COUNTERS_MAP, &e))?,
        control: Array::try_from(take(CONTROL_MAP)?).map_err(|e| map_error(CONTROL_MAP, &e))?,
        validation: HashMap::try_from(take(VALIDATION_MAP)?)
            .map_err(|e| map_error(VALIDATION_MAP, &e))?,
        rules: HashMap::try_from(take(RULES_MAP)?).map_err(|e| map_error(RULES_MAP, &e))?,
        rule_kinds: Array::try_from(take(RULE_KINDS_MAP)?)
            .map_err(|e| map_error(RULE_KINDS_MAP, &e))?,
        live_states,
        states_by_cookie: by_cookie,
        token: 0,
    };
    Ok((maps, capacity))
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
