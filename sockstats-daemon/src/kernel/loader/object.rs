//! Loading the embedded object: its maps from their pins where they exist, the globals this
//! kernel needs, the maps the daemon reads and their capacities, and the socket-state iterator.
use std::{
    fs::{self, File},
    os::fd::AsRawFd,
    path::Path,
};

use aya::{
    maps::{Array, HashMap, PerCpuArray},
    programs::{Iter, ProgramError},
    Btf, Ebpf, EbpfLoader,
};
use sockstats_common::{
    abi::program, globals, SocketState, ACCOUNTS_MAP, ACCOUNT_IDS_MAP, ACCOUNT_KEYS_MAP,
    CLOSED_SOCKETS_MAP, CONTROL_MAP, COUNTERS_MAP, DESTINATIONS_MAP, GLOBAL_PACKET_NETNS_COOKIE,
    GLOBAL_ROOT_CGROUP_ID, GLOBAL_ROOT_CGROUP_LEVEL, GLOBAL_SK_SOCKET_OFFSET,
    GLOBAL_SOCKET_FILE_OFFSET, GLOBAL_SOCK_COOKIE_OFFSET, GLOBAL_STATE_BY_COOKIE,
    GLOBAL_TRACING_ANCESTOR_HELPER, LABEL_SOCKETS_MAP, OWNER_ACCOUNTS_MAP, OWNER_KEYS_MAP,
    RULES_MAP, RULE_KINDS_MAP, SOCKET_STATE_BY_COOKIE_MAP, SOCKET_STATE_MAP, VALIDATION_MAP,
};

use super::facts::KernelFacts;
use super::{map_error, KernelError, LoadOptions, OBJECT};
use crate::kernel::maps::{KernelMaps, LiveStates};

/// An `EbpfLoader` that has not read the kernel's BTF (the object's load does not need it).
///
/// aya 0.14's `EbpfLoader::new` reads and parses `/sys/kernel/btf/vmlinux` itself, whether or
/// not `.btf()` replaces it later (<https://github.com/aya-rs/aya/issues/1172>; aya loads it
/// lazily after 0.14): 19 MiB at its peak on 6.18, the file's 5.3 MiB and aya's 13 MiB parse
/// of it, the start's largest allocation by far. Here `new` runs while opening a file fails
/// with `EMFILE`, so that its read fails and it starts without BTF (nothing else it does
/// opens a file). That is done only while the daemon has one thread, so that nothing else
/// sees the lowered limit; otherwise `new` reads the BTF, as it would anyway.
pub(super) fn loader_without_btf<'a>() -> EbpfLoader<'a> {
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
pub(super) fn load_object(
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
pub(super) fn check_capacities(
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

/// Loads the socket-state iterator (not attached: each read makes a link of its own).
pub(super) fn load_iterator(
    ebpf: &mut Ebpf,
    btf: &Btf,
) -> Result<aya::programs::ProgramFd, KernelError> {
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
pub(super) fn take_maps(
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
        destinations: aya::maps::LpmTrie::try_from(take(DESTINATIONS_MAP)?)
            .map_err(|e| map_error(DESTINATIONS_MAP, &e))?,
        closed_sockets: aya::maps::RingBuf::try_from(take(CLOSED_SOCKETS_MAP)?)
            .map_err(|e| map_error(CLOSED_SOCKETS_MAP, &e))?,
        live_states,
        states_by_cookie: by_cookie,
        token: 0,
    };
    Ok((maps, capacity))
}
