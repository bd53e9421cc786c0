//! `sockstatsd`: the sockstats daemon. See `sockstatsd --help`.
use std::{
    path::Path,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use clap::Parser as _;
use sockstats_daemon::{
    cgroup::{self, CgroupTree},
    config,
    daemon::{
        self,
        args::Args,
        run::{self as tasks, Options, SHUTDOWN_WITHIN},
        server::socket_file,
        state::{Core, DaemonInfo},
        tasks::{otlp_export::OtlpConfig, stats_log::StatsLogConfig},
        Daemon, ServerLimits,
    },
    destinations::{self, DestinationNames},
    history::{clock::SystemClock, History},
    interfaces::InterfaceNames,
    kernel::{
        self,
        hooks::{PayloadChoice, PayloadSet},
        AttachedKernel, LoadOptions,
    },
    labels::LabelRegistry,
    otlp::{self, encode::Source},
    rules::{RuleError, RuleSet, Selector, DEFAULT_RULES_FILE},
    sys::owners,
    workloads::Workloads,
};
use tokio::signal::unix::{signal, SignalKind};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            log::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    if args.uninstall {
        if kernel::uninstall(&args.bpffs_dir)? {
            log::info!(
                "detached the programs and removed the pins under {}",
                args.bpffs_dir.display()
            );
        } else {
            log::info!("nothing pinned under {}", args.bpffs_dir.display());
        }
        return Ok(());
    }
    let started = SystemTime::now();
    let (attached, daemon, listener) = start(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let counters_since = otlp::counters_since(&attached.maps_dir, started);
    runtime.block_on(serve_until_signal(
        args,
        Arc::clone(&daemon),
        listener,
        attached.log_program_id,
        counters_since,
    ))?;
    daemon.workloads().flush();
    // Blocking work still running (an op, a refresh) gets a moment, not forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Err(error) = std::fs::remove_file(&args.socket) {
        log::warn!("cannot remove {}: {error}", args.socket.display());
    }
    log::info!(
        "stopped; the programs stay attached and keep counting (`sockstatsd --uninstall` detaches them)"
    );
    drop(attached);
    Ok(())
}

/// Loads and attaches the programs, opens the state and binds the socket.
fn start(
    args: &Args,
) -> Result<(
    AttachedKernel,
    Arc<Daemon>,
    std::os::unix::net::UnixListener,
)> {
    raise_fd_limit();
    if !nix::unistd::geteuid().is_root() {
        log::warn!("not running as root: loading eBPF programs will most likely be refused");
    }
    let (config, config_file) = config::read(args.config.as_deref())?;
    match &config_file {
        Some(path) => log::info!("read the config file {}", path.display()),
        None => log::info!(
            "no config file at {}: every setting is the default",
            config::DEFAULT_CONFIG_FILE
        ),
    }
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create state dir {}", args.state_dir.display()))?;
    socket_file::check_not_in_use(&args.socket)?;
    let mut registry = LabelRegistry::open(&args.state_dir)?;
    registry.set_uid_quota(args.max_labels_per_uid);
    let rules = RuleSet::open(
        &args.state_dir,
        read_rules_file(args.rules_file.as_deref())?,
    )?;
    let mount = cgroup::cgroup2_mount()?;
    let cgroup_root = cgroup::resolve_root(&mount, args.cgroup_root.as_deref())?;
    log::info!(
        "accounting sockets of cgroup {} (id {}, level {})",
        cgroup_root.path.display(),
        cgroup_root.id,
        cgroup_root.level
    );
    let payload = match args.payload_hooks.as_str() {
        "tp_btf" => PayloadChoice::Only(PayloadSet::Tracepoints),
        "fexit" => PayloadChoice::Only(PayloadSet::FExit),
        _ => PayloadChoice::Auto,
    };
    let (destinations, destination_prefixes) = destinations_of(args, &config)?;
    let options = LoadOptions {
        destination_prefixes,
        payload,
        bpffs_dir: args.bpffs_dir.clone(),
        cgroup_root: cgroup_root.clone(),
        max_sockets: args.max_sockets,
        max_accounts: args.max_accounts,
        validate_closed: args.validate_closed,
    };
    let (attached, mut maps) = kernel::load_and_attach(&options)?;
    let token = sockstats_daemon::sys::relabel::new_token()
        .context("cannot make a secret for relabel requests from /dev/urandom")?;
    // Where states are kept by cookie, a socket's state goes at its release, before its TCP
    // counters are final at TCP_CLOSE: closed sockets cannot be validated.
    let validate_closed = args.validate_closed && !attached.states_by_cookie;
    if args.validate_closed && !validate_closed {
        log::warn!(
            "--validate-closed is ignored: socket states are kept by cookie on this kernel, and \
             a socket's state is gone at its release, before its TCP counters are final; \
             `get --validation` covers live TCP sockets"
        );
    }
    maps.set_control(token, validate_closed)
        .context("cannot give the kernel programs the daemon's settings")?;
    // Loading parses the kernel's BTF (tens of MiB of short-lived allocations); hand what was
    // freed back to the system, or the daemon idles at several times its working size.
    sockstats_daemon::sys::malloc::trim();
    let listener = socket_file::bind_listener(&args.socket, args.socket_mode, args.socket_group)?;
    let mut interface_names = InterfaceNames::new(&args.state_dir)
        .context("cannot read this network namespace's cookie")?;
    if let Err(error) = interface_names.refresh() {
        log::warn!("cannot list interfaces over rtnetlink: {error}");
    }
    let core = Core {
        labels: registry,
        rules,
        kernel: Box::new(maps),
    };
    let daemon = Arc::new(Daemon::new(
        core,
        interface_names,
        CgroupTree::new(mount),
        Workloads::open(args.container_metadata_root.clone(), &args.state_dir),
        DaemonInfo {
            programs: attached.programs.clone(),
            payload_hooks: attached.payload.clone(),
            kernel_limits: attached.kernel_limits.clone(),
            cgroup_root: cgroup_root.path,
            bpffs_dir: args.bpffs_dir.clone(),
            state_dir: args.state_dir.clone(),
            socket: args.socket.clone(),
            validate_closed,
            states_by_cookie: attached.states_by_cookie,
            started: Instant::now(),
            config,
            destinations,
        },
    ));
    open_history(args, &daemon, &attached.maps_dir);
    sockstats_daemon::rules::sync::resolve_and_sync(&daemon)?;
    let rule_count = daemon.with_core(|core| core.rules.rules().len());
    if rule_count > 0 {
        log::info!("{rule_count} labeling rule(s) in force (`sockstats rules` lists them)");
    }
    Ok((attached, daemon, listener))
}

/// Gives the config's networks their stable ids, and the destination trie's entries.
fn destinations_of(
    args: &Args,
    config: &config::Config,
) -> Result<(
    DestinationNames,
    Vec<(sockstats_common::DestinationPrefix, u32)>,
)> {
    let names = DestinationNames::open(&args.state_dir, &config.networks)?;
    let prefixes = destinations::prefixes(&config.networks, |name| {
        names.id(name).expect("every configured network has an id")
    });
    log::info!(
        "{} named network(s), {} destination prefixes",
        config.networks.len(),
        prefixes.len()
    );
    Ok((names, prefixes))
}

/// Opens the usage history in the state dir. A file it cannot use is logged (and reported by
/// `status`): the daemon counts and serves all the same, and tries again at every recording.
fn open_history(args: &Args, daemon: &Daemon, maps_dir: &Path) {
    let (history, opened) = History::open(
        &args.state_dir,
        &daemon.info().config,
        kernel_epoch(maps_dir),
        Duration::from_secs(args.history_interval),
        Arc::new(SystemClock),
    );
    match opened {
        Ok(()) => log::info!(
            "recording the usage history into {} every {} s",
            history.path().display(),
            args.history_interval
        ),
        Err(error) => log::error!("usage history: {error}; the daemon goes on counting"),
    }
    daemon.set_history(Arc::new(history));
}

/// Names the kernel's counters: this boot and the inode of the pinned accounts map. A
/// different name means the counters were made anew (a reboot, `--uninstall`, pins removed)
/// and restarted from zero.
fn kernel_epoch(maps_dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt as _;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let pin = maps_dir.join("ACCOUNTS");
    let inode = std::fs::metadata(&pin).map_or(0, |metadata| metadata.ino());
    format!("{} {inode}", boot.trim())
}

/// The rules of `--rules-file`, or of the default file if it exists.
fn read_rules_file(path: Option<&Path>) -> Result<Vec<(Selector, String)>> {
    let (path, must_exist) = match path {
        Some(path) => (path, true),
        None => (Path::new(DEFAULT_RULES_FILE), false),
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(Vec::new())
        }
        Err(source) => {
            return Err(RuleError::ReadConfig {
                path: path.to_owned(),
                source,
            }
            .into())
        }
    };
    let rules = sockstats_daemon::rules::parse_config(&text, path, owners::uid_of_user)?;
    log::info!("read {} rule(s) from {}", rules.len(), path.display());
    Ok(rules)
}

/// Serves clients and runs every background task ([`tasks::run`]) until SIGTERM or SIGINT.
async fn serve_until_signal(
    args: &Args,
    daemon: Arc<Daemon>,
    listener: std::os::unix::net::UnixListener,
    log_program_id: Option<u32>,
    counters_since: SystemTime,
) -> Result<()> {
    let listener = tokio::net::UnixListener::from_std(listener)
        .context("cannot register the listening socket")?;
    // Signal handlers first: a SIGTERM right after the socket answers must shut down cleanly.
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let stats_log = args.stats_log.clone().map(|path| {
        let config = StatsLogConfig {
            path,
            interval: Duration::from_secs(args.stats_log_interval),
            max_bytes: args.stats_log_max_bytes,
            keep: args.stats_log_keep,
            state_file: args.state_dir.join("stats-log-totals.json"),
        };
        log::info!(
            "writing per-label deltas to {} every {:?}",
            config.path.display(),
            config.interval
        );
        config
    });
    let metrics = match args.metrics {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for metrics on {address}"))?;
            log::info!(
                "serving Prometheus metrics at http://{}/metrics",
                listener.local_addr()?
            );
            Some(listener)
        }
        None => None,
    };
    let options = Options {
        limits: ServerLimits {
            max_clients: usize::try_from(args.max_clients).unwrap_or(usize::MAX),
            max_clients_per_uid: usize::try_from(args.max_clients_per_uid).unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(args.request_timeout),
        },
        log_program_id,
        stats_log,
        metrics,
        otlp: otlp_config(args, counters_since),
    };
    let (trigger, shutdown) = daemon::shutdown::channel();
    let running = tokio::spawn(tasks::run(daemon, listener, options, shutdown));
    log::info!("serving on {}", args.socket.display());
    tokio::select! {
        _ = terminate.recv() => log::info!("SIGTERM: shutting down"),
        _ = interrupt.recv() => log::info!("SIGINT: shutting down"),
    }
    trigger.trigger();
    let left = running.await.context("the daemon's tasks panicked")?;
    if !left.is_empty() {
        log::warn!(
            "stopped without waiting for: {} (still busy after {} s)",
            left.join(", "),
            SHUTDOWN_WITHIN.as_secs()
        );
    }
    Ok(())
}

/// `--otlp-endpoint` and `--otlp-interval`, said in the log.
fn otlp_config(args: &Args, counters_since: SystemTime) -> Option<OtlpConfig> {
    let endpoint = args.otlp_endpoint.clone()?;
    let config = OtlpConfig {
        endpoint,
        interval: args.otlp_interval,
        source: Source {
            host_name: otlp::host_name(),
            counters_since,
        },
    };
    log::info!(
        "exporting OTLP metrics to {} every {} (host.name {}, counters since {})",
        config.endpoint,
        humantime::format_duration(config.interval),
        config.source.host_name,
        humantime::format_rfc3339_seconds(counters_since)
    );
    Some(config)
}

/// Clients pass fds: allow as many open fds as the hard limit permits (the soft default of 1024
/// is a handful of fd-passing clients).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(error) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                log::warn!("cannot raise the open-file limit from {soft} to {hard}: {error}");
            }
        }
    }
}
