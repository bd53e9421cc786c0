//! `sockstatsd`: the sockstats daemon. See `sockstatsd --help`.
use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use clap::Parser;
use sockstats_common::{protocol::DEFAULT_SOCKET_PATH, DEFAULT_MAX_ACCOUNTS, DEFAULT_MAX_SOCKETS};
use sockstats_daemon::{
    cgroup::{self, CgroupTree},
    daemon::{
        self,
        run::{self as tasks, Options, SHUTDOWN_WITHIN},
        server::socket_file,
        state::{Core, DaemonInfo},
        tasks::stats_log::StatsLogConfig,
        Daemon, ServerLimits,
    },
    interfaces::InterfaceNames,
    kernel::{
        self,
        hooks::{PayloadChoice, PayloadSet},
        AttachedKernel, LoadOptions,
    },
    labels::LabelRegistry,
    rules::{RuleError, RuleSet, Selector, DEFAULT_RULES_FILE},
    sys::owners,
};
use tokio::signal::unix::{signal, SignalKind};

/// Accounts the bytes every TCP/UDP socket on this host sends and receives, per label.
///
/// Loads eBPF programs that count payload bytes per socket, pins them so counting continues
/// while the daemon is down, and answers `sockstats` (and the client library) on a Unix socket.
/// Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) and Linux 5.10+ with BTF.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
#[expect(
    clippy::doc_markdown,
    reason = "doc comments are the plain-text --help"
)]
struct Args {
    /// Unix socket to serve clients on.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET_PATH)]
    socket: PathBuf,
    /// Permissions of the socket file, in octal. Anyone who can connect can label the sockets
    /// they hold and read all stats.
    #[arg(long, value_name = "MODE", default_value = "0666", value_parser = parse_mode)]
    socket_mode: u32,
    /// Group of the socket file (a name or a number), set with the mode before `listen`: with
    /// --socket-mode 0660 only root and that group may connect.
    #[arg(long, value_name = "GROUP", value_parser = parse_group)]
    socket_group: Option<u32>,
    /// Directory on a BPF file system for pinned maps and links (bpffs at /sys/fs/bpf is
    /// mounted if needed).
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/sockstats")]
    bpffs_dir: PathBuf,
    /// Directory for persistent state (the label registry).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/sockstats")]
    state_dir: PathBuf,
    /// cgroup v2 directory whose subtree is accounted [default: the whole host, i.e. the
    /// cgroup2 mount found in /proc/self/mountinfo].
    #[arg(long, value_name = "DIR")]
    cgroup_root: Option<PathBuf>,
    /// Which hooks count payload bytes: `auto` (the sock_send_length/sock_recv_length
    /// tracepoints where the kernel has them, else fexit on tcp_sendmsg, udp_sendmsg, ...),
    /// `tp_btf` or `fexit` (only that set, or fail).
    #[arg(long, value_name = "SET", default_value = "auto", value_parser = ["auto", "tp_btf", "fexit"])]
    payload_hooks: String,
    /// Serve Prometheus metrics (text format) at http://ADDR/metrics, e.g. 127.0.0.1:9464.
    /// Off by default; anyone who can reach ADDR can read every label's totals.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Every --stats-log-interval, append one JSON line of the per-label payload bytes moved
    /// since the previous line (labels that changed only) to this file. Off by default.
    #[arg(long, value_name = "FILE")]
    stats_log: Option<PathBuf>,
    /// Seconds between stats log lines.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    stats_log_interval: u64,
    /// Rotate the stats log before it grows past this many bytes (to FILE.1, FILE.2, ...).
    #[arg(long, value_name = "BYTES", default_value_t = 10 * 1024 * 1024)]
    stats_log_max_bytes: u64,
    /// Rotated stats log files kept.
    #[arg(long, value_name = "N", default_value_t = 5)]
    stats_log_keep: usize,
    /// Let `get --validation` cover closed TCP sockets too: a kernel program on every TCP
    /// state change adds each socket's final tcp_info counters to its label when it reaches
    /// TCP_CLOSE. Off by default, and then that program is not attached at all (it would run
    /// about ten times per TCP connection). Without it, validation covers live TCP sockets.
    #[arg(long)]
    validate_closed: bool,
    /// Labeling rules read at start, one per line: `uid <N> <label>`, `user <name> <label>` or
    /// `cgroup <path below the cgroup2 mount> <label>`; `#` starts a comment. The default file
    /// may be missing; a file named here must exist.
    #[arg(long, value_name = "FILE")]
    rules_file: Option<PathBuf>,
    /// Most clients served at once.
    #[arg(long, value_name = "N", default_value_t = daemon::server::DEFAULT_MAX_CLIENTS, value_parser = clap::value_parser!(u64).range(1..))]
    max_clients: u64,
    /// Most connections one non-root uid may hold at once.
    #[arg(long, value_name = "N", default_value_t = daemon::server::DEFAULT_MAX_CLIENTS_PER_UID, value_parser = clap::value_parser!(u64).range(1..))]
    max_clients_per_uid: u64,
    /// Seconds a started request line may take to arrive, and a reply to be read, before the
    /// connection is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout: u64,
    /// Most labels one non-root uid may make (labels that exist can be used by anyone).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_labels_per_uid: usize,
    /// On kernels before 5.11 only (where socket states are kept in a hash by cookie): live
    /// sockets tracked at once. Sockets beyond it are counted in the overflow bucket. Changing
    /// it needs fresh maps (`--uninstall` first). Newer kernels keep each socket's state with
    /// the socket, without a limit of their own.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_SOCKETS, value_parser = clap::value_parser!(u32).range(1..))]
    max_sockets: u32,
    /// Accounts the kernel keeps running totals in: one per (label, interface) pair that ever
    /// moved bytes (id 0 is never used, so N-1 pairs). Bytes of pairs beyond it are counted in
    /// the overflow bucket. Each costs 48 bytes per CPU. Changing it needs fresh maps
    /// (`--uninstall` first).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ACCOUNTS, value_parser = clap::value_parser!(u32).range(2..))]
    max_accounts: u32,
    /// Detach the programs and delete every pin under --bpffs-dir (the kernel-side totals go
    /// with them), then exit.
    #[arg(long)]
    uninstall: bool,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal file mode like 0660"))
}

fn parse_group(text: &str) -> Result<u32, String> {
    if let Ok(gid) = text.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(text) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        _ => Err(format!("no group named {text:?}")),
    }
}

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
    let (attached, daemon, listener) = start(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve_until_signal(
        args,
        daemon,
        listener,
        attached.log_program_id,
    ))?;
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
    let options = LoadOptions {
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
    maps.set_control(token, args.validate_closed)
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
        DaemonInfo {
            programs: attached.programs.clone(),
            payload_hooks: attached.payload.clone(),
            kernel_limits: attached.kernel_limits.clone(),
            cgroup_root: cgroup_root.path,
            bpffs_dir: args.bpffs_dir.clone(),
            state_dir: args.state_dir.clone(),
            socket: args.socket.clone(),
            validate_closed: args.validate_closed,
            started: Instant::now(),
        },
    ));
    sockstats_daemon::rules::sync::resolve_and_sync(&daemon)?;
    let rule_count = daemon.with_core(|core| core.rules.rules().len());
    if rule_count > 0 {
        log::info!("{rule_count} labeling rule(s) in force (`sockstats rules` lists them)");
    }
    Ok((attached, daemon, listener))
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
