//! `sockstats-bench` (run by `cargo xtask bench`, as root): what accounting costs, measured side
//! by side in one process.
//!
//! 1. Throughput rounds: loopback TCP at 1 KiB, 16 KiB and 1 MiB writes, 64-byte UDP
//!    datagrams, short TCP connections, and real servers (nginx serving a 512-byte file to
//!    ab, a connection per request; iperf3 with 1 KiB writes), with nothing attached, with a
//!    private sockstatsd attached (uninstalled after each round) and with nethogs capturing
//!    `lo`, in a rotating order. With sockstats attached, each round also measures the
//!    sockstats programs' time per connection (short connections, nginx requests).
//! 2. Program cost: ns per invocation of each sockstats program beside empty programs of the
//!    same types, from `kernel.bpf_stats_enabled`.
//! 3. Destinations: UDP to one peer and to two peers in turn, and short TCP connections,
//!    between two network namespaces over a veth pair, with nothing attached and with
//!    sockstatsd configured with 0, 10 and 1,000 named prefixes (`destinations`).
//! 4. The daemon: memory and CPU idle, `get` latency with many live sockets, memory and CPU
//!    while TCP connections churn.
//!
//! The workload runs in a cgroup of its own, which the daemon accounts (`--cgroup-root`); the
//! rest of the host is left alone (only the tracepoints fire host-wide, as they do in
//! production). Results go to stdout as tables and to a JSON file.
mod bpf_stats;
mod cgroup;
mod connection_cost;
mod daemon;
mod daemon_load;
mod destinations;
#[allow(
    unsafe_code,
    reason = "the raw bpf(2) calls that load the empty programs the costs are measured against"
)]
mod empty_programs;
mod iperf;
mod nethogs;
mod nginx;
mod procstat;
mod program_cost;
mod report;
mod server;
mod sockets;
mod stats;
#[allow(
    unsafe_code,
    reason = "the libc calls of the workloads, in safe wrappers"
)]
mod sys;
mod throughput;
mod workload;

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};
use clap::Parser;

use crate::{
    cgroup::BenchCgroup,
    daemon::BenchDaemon,
    report::{DaemonResults, Report, Settings},
    sockets::LiveSockets,
    workload::Timing,
};

/// Measures what sockstats costs: A/B throughput rounds, per-program cost, `get` latency and
/// the daemon's memory and CPU. Needs root.
#[derive(Debug, Parser)]
#[command(about, long_about)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "command-line switches, each one a flag of its own"
)]
struct Args {
    /// A smoke run for CI: one round, short workloads, few sockets (numbers are not meaningful).
    #[arg(long)]
    quick: bool,
    /// Rounds of each configuration (throughput) and of the program-cost measurement.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds each workload is measured for (after a warm-up of a fifth of that).
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Live socket counts to measure `get` at.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    sockets: Vec<usize>,
    /// `get` queries per socket count.
    #[arg(long, default_value_t = 10)]
    gets: usize,
    /// TCP connections opened and closed while the daemon is watched.
    #[arg(long, default_value_t = 100_000)]
    churn: usize,
    /// Seconds the daemon is watched doing nothing.
    #[arg(long, default_value_t = 5.0)]
    idle_seconds: f64,
    /// Skip the nethogs comparison.
    #[arg(long)]
    no_nethogs: bool,
    /// Named-prefix counts of the destination section's configs.
    #[arg(long, value_delimiter = ',', default_value = "0,10,1000")]
    destination_prefixes: Vec<usize>,
    /// Skip the destination section (it makes two network namespaces and a veth pair).
    #[arg(long)]
    no_destinations: bool,
    /// Skip the real-server workloads (nginx + ab, iperf3); they are skipped anyway, saying
    /// so, where not installed.
    #[arg(long)]
    no_servers: bool,
    /// ab requests per nginx measurement (after a warm-up of a fifth as many), and in the
    /// program-time-per-request pass.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Where sockstatsd and sockstats are [default: next to this binary].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Where to write the JSON results.
    #[arg(long, value_name = "FILE", default_value = "target/bench/bench.json")]
    out: PathBuf,
    /// Internal: be a socket holder (open N sockets, keep them until stdin closes).
    #[arg(long, value_name = "N", hide = true)]
    hold_sockets: Option<usize>,
}

impl Args {
    /// `--quick` shrinks everything.
    fn apply_quick(&mut self) {
        if self.quick {
            self.rounds = 1;
            self.seconds = 0.2;
            self.sockets = vec![1000];
            self.gets = 2;
            self.churn = 1000;
            self.idle_seconds = 0.5;
            self.requests = 2000;
        }
    }
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    args.apply_quick();
    let result = match args.hold_sockets {
        Some(count) => sys::raise_open_files()
            .map_err(anyhow::Error::from)
            .and_then(|_| sockets::hold(count)),
        None => run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn bin_dir(args: &Args) -> Result<PathBuf> {
    if let Some(dir) = &args.bin_dir {
        return Ok(dir.clone());
    }
    let exe = std::env::current_exe().context("where is this binary?")?;
    Ok(exe.parent().context("binary has no directory")?.to_owned())
}

/// The real servers to measure: those installed, unless `--no-servers`.
fn servers(args: &Args) -> throughput::Servers {
    if args.no_servers {
        throughput::Servers {
            nginx: Err("--no-servers"),
            iperf3: Err("--no-servers"),
            requests: args.requests,
        }
    } else {
        throughput::Servers {
            nginx: nginx::Tools::find(),
            iperf3: iperf::find(),
            requests: args.requests,
        }
    }
}

fn run(args: &Args) -> Result<()> {
    if !sys::is_root() {
        bail!("the bench loads eBPF programs and must run as root: `sudo cargo xtask bench`");
    }
    if args.rounds == 0 || args.seconds <= 0.0 || args.requests == 0 {
        bail!("--rounds, --seconds and --requests must be positive");
    }
    let bin_dir = bin_dir(args)?;
    for binary in ["sockstatsd", "sockstats"] {
        if !bin_dir.join(binary).exists() {
            bail!(
                "{} is not built (run `cargo xtask bench`)",
                bin_dir.join(binary).display()
            );
        }
    }
    let nethogs = if args.no_nethogs {
        None
    } else {
        Some(nethogs::find().context(
            "nethogs is not installed (`cargo xtask bench` installs it; or pass --no-nethogs)",
        )?)
    };
    let timing = Timing {
        warmup: Duration::from_secs_f64(args.seconds / 5.0),
        measure: Duration::from_secs_f64(args.seconds),
    };
    let servers = servers(args);
    let mut machine = report::Machine::read();
    let cgroup = BenchCgroup::enter()?;

    let (throughput, mut per_connection) = throughput::run(&throughput::Setup {
        bin_dir: &bin_dir,
        cgroup: &cgroup,
        nethogs: nethogs.as_deref(),
        servers: &servers,
        rounds: args.rounds,
        timing,
    })?;

    let destinations = destinations(args, &bin_dir, &cgroup, timing)?;

    eprintln!("bench: starting the daemon for the cost, latency and churn measurements");
    let daemon = BenchDaemon::start(&bin_dir, &cgroup)?;
    let idle = daemon_load::idle(&daemon, Duration::from_secs_f64(args.idle_seconds))?;
    let program_cost = program_cost::run(&daemon, &cgroup, args.rounds, timing)?;
    connection_cost::subtract_empty(&mut per_connection, &program_cost);
    let mut live = LiveSockets::default();
    let mut get_latency = Vec::new();
    let mut counts = args.sockets.clone();
    counts.sort_unstable();
    for count in counts {
        eprintln!("bench: get latency with {count} live sockets");
        get_latency.push(daemon_load::get_latency(
            &daemon, &bin_dir, &mut live, count, args.gets,
        )?);
    }
    eprintln!("bench: closing {} live sockets", live.len());
    live.close_all();
    let churn = if args.churn > 0 {
        eprintln!("bench: churning {} TCP connections", args.churn);
        Some(daemon_load::churn(&daemon, args.churn)?)
    } else {
        None
    };
    let idle_after_load = Some(daemon_load::idle(
        &daemon,
        Duration::from_secs_f64(args.idle_seconds),
    )?);
    let peak_rss_mib = daemon_load::peak_rss_mib(&daemon)?;
    daemon.stop()?;
    drop(cgroup);
    machine.loadavg_after = report::loadavg();

    let mut report = Report {
        machine,
        settings: Settings {
            rounds: args.rounds,
            seconds_per_workload: args.seconds,
            socket_counts: args.sockets.clone(),
            churn_connections: args.churn,
            ab_requests: args.requests,
        },
        throughput,
        program_time_per_connection: per_connection,
        program_cost,
        destinations,
        get_latency,
        daemon: DaemonResults {
            idle,
            churn,
            idle_after_load,
            peak_rss_mib,
        },
        targets: Vec::new(),
    };
    report.targets = report::targets(&report);
    report::print(&report);
    write_json(&args.out, &report)?;
    println!("results written to {}", args.out.display());
    Ok(())
}

/// The destination section, unless `--no-destinations`.
fn destinations(
    args: &Args,
    bin_dir: &Path,
    cgroup: &BenchCgroup,
    timing: Timing,
) -> Result<Option<destinations::DestinationResults>> {
    if args.no_destinations {
        return Ok(None);
    }
    destinations::run(&destinations::Setup {
        bin_dir,
        cgroup,
        rounds: args.rounds,
        timing,
        prefix_counts: &args.destination_prefixes,
    })
    .map(Some)
}

fn write_json(path: &Path, report: &Report) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(report).context("encode the results")?;
    fs::write(path, json + "\n").with_context(|| format!("write {}", path.display()))
}
