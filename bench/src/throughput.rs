//! Alternating A/B(/C) rounds: the same workloads with nothing attached, with sockstats
//! attached (a private daemon started for the round and uninstalled after it), and with
//! nethogs capturing `lo`. The order of the configurations rotates every round, so slow
//! drifts of the machine (other work, thermal) spread over all of them. The workloads are the
//! bench's own loopback ones and, where installed, real servers: nginx answering ab, iperf3.
//! With sockstats attached, each round ends with a pass that measures its program time per
//! connection (`connection_cost`).
use std::{path::Path, time::Instant};

use anyhow::Result;
use serde::Serialize;

use crate::{
    cgroup::BenchCgroup,
    connection_cost::{self, ConnectionCost, Pass},
    daemon::BenchDaemon,
    iperf,
    nethogs::Nethogs,
    nginx, procstat,
    stats::Spread,
    workload::{self, Timing},
};

/// A workload of a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// One TCP stream, written this many bytes at a time.
    Tcp(usize),
    /// Datagrams of this many bytes.
    Udp(usize),
    /// Short TCP connections, one after another.
    TcpConnections,
    /// nginx serving a small file to ab, a new connection per request.
    NginxAb,
    /// iperf3 over loopback, written this many bytes at a time.
    Iperf3(usize),
}

impl Workload {
    /// The bench's own loopback workloads: always run.
    pub const LOOPBACK: [Workload; 5] = [
        Workload::Tcp(1024),
        Workload::Tcp(16 * 1024),
        Workload::Tcp(1024 * 1024),
        Workload::Udp(64),
        Workload::TcpConnections,
    ];

    #[must_use]
    pub fn name(self) -> String {
        match self {
            Workload::Tcp(size) if size >= 1024 * 1024 => format!("tcp_{}mib", size / 1024 / 1024),
            Workload::Tcp(size) => format!("tcp_{}kib", size / 1024),
            Workload::Udp(size) => format!("udp_{size}b"),
            Workload::TcpConnections => "tcp_connect".to_owned(),
            Workload::NginxAb => "nginx_ab".to_owned(),
            Workload::Iperf3(size) => format!("iperf3_{}kib", size / 1024),
        }
    }

    #[must_use]
    pub fn unit(self) -> &'static str {
        match self {
            Workload::Tcp(_) | Workload::Iperf3(_) => "bytes/s",
            Workload::Udp(_) => "datagrams/s",
            Workload::TcpConnections => "connections/s",
            Workload::NginxAb => "requests/s",
        }
    }

    pub fn run(self, setup: &Setup) -> Result<f64> {
        let timing = setup.timing;
        match self {
            Workload::Tcp(size) => workload::tcp_throughput(size, timing),
            Workload::Udp(size) => workload::udp_rate(size, timing),
            Workload::TcpConnections => workload::tcp_connections(timing),
            Workload::NginxAb => nginx::requests_per_second(
                setup
                    .servers
                    .nginx
                    .as_ref()
                    .expect("only run when installed"),
                setup.cgroup,
                setup.servers.requests,
            ),
            Workload::Iperf3(size) => iperf::bytes_per_second(
                setup
                    .servers
                    .iperf3
                    .as_ref()
                    .expect("only run when installed"),
                setup.cgroup,
                size,
                timing,
            ),
        }
    }
}

/// The real servers, where installed; `Err` says why a server workload is skipped.
pub struct Servers {
    pub nginx: Result<nginx::Tools, &'static str>,
    pub iperf3: Result<std::path::PathBuf, &'static str>,
    /// `ab` requests per nginx measurement.
    pub requests: usize,
}

impl Servers {
    /// The server workloads to run, and the ones skipped with the reason.
    fn workloads(&self) -> (Vec<Workload>, Vec<Skipped>) {
        let mut run = Vec::new();
        let mut skipped = Vec::new();
        for (workload, found) in [
            (Workload::NginxAb, self.nginx.as_ref().err()),
            (Workload::Iperf3(1024), self.iperf3.as_ref().err()),
        ] {
            match found {
                None => run.push(workload),
                Some(reason) => skipped.push(Skipped {
                    workload: workload.name(),
                    reason: (*reason).to_owned(),
                }),
            }
        }
        (run, skipped)
    }
}

/// A workload this run did not measure, and why.
#[derive(Debug, Serialize)]
pub struct Skipped {
    pub workload: String,
    pub reason: String,
}

/// What is attached during a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    Baseline,
    Sockstats,
    Nethogs,
}

impl Config {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Config::Baseline => "baseline",
            Config::Sockstats => "sockstats",
            Config::Nethogs => "nethogs",
        }
    }
}

/// One workload over all rounds.
#[derive(Debug, Serialize)]
pub struct WorkloadResult {
    pub workload: String,
    pub unit: &'static str,
    pub baseline: Option<Spread>,
    pub sockstats: Option<Spread>,
    /// Per round: with sockstats / without, in the same round.
    pub sockstats_ratio: Option<Spread>,
    pub nethogs: Option<Spread>,
    pub nethogs_ratio: Option<Spread>,
}

/// CPU the tool itself used while the workloads ran, in percent of one CPU.
#[derive(Debug, Serialize)]
pub struct ToolCpu {
    /// The sockstats daemon process (the kernel programs run in the workload's own context and
    /// show up in the throughput ratio and in `program_cost`, not here).
    pub sockstats_daemon_percent: Option<Spread>,
    pub nethogs_percent: Option<Spread>,
}

#[derive(Debug, Serialize)]
pub struct ThroughputResults {
    pub workloads: Vec<WorkloadResult>,
    /// Server workloads not measured (not installed, or `--no-servers`).
    pub skipped: Vec<Skipped>,
    pub tool_cpu: ToolCpu,
}

pub struct Setup<'a> {
    pub bin_dir: &'a Path,
    pub cgroup: &'a BenchCgroup,
    pub nethogs: Option<&'a Path>,
    pub servers: &'a Servers,
    pub rounds: usize,
    pub timing: Timing,
}

/// Per configuration: per workload the rate of each round, and the tool's CPU per round.
#[derive(Default)]
struct Samples {
    rates: Vec<Vec<f64>>,
    cpu_percent: Vec<f64>,
}

/// What one configuration gave in one round.
struct RoundResult {
    rates: Vec<f64>,
    /// The tool's CPU, in percent of one CPU.
    cpu_percent: Option<f64>,
    /// The program time per connection passes (sockstats only).
    passes: Vec<Pass>,
}

/// Runs every workload once; returns the rates and the seconds it took.
fn run_workloads(workloads: &[Workload], setup: &Setup) -> Result<(Vec<f64>, f64)> {
    let start = Instant::now();
    let rates = workloads
        .iter()
        .map(|w| w.run(setup))
        .collect::<Result<Vec<_>>>()?;
    Ok((rates, start.elapsed().as_secs_f64()))
}

fn run_config(config: Config, workloads: &[Workload], setup: &Setup) -> Result<RoundResult> {
    match config {
        Config::Baseline => Ok(RoundResult {
            rates: run_workloads(workloads, setup)?.0,
            cpu_percent: None,
            passes: Vec::new(),
        }),
        Config::Sockstats => {
            let daemon = BenchDaemon::start(setup.bin_dir, setup.cgroup)?;
            let before = procstat::sample(daemon.pid())?.cpu_seconds;
            let (rates, seconds) = run_workloads(workloads, setup)?;
            let cpu = procstat::sample(daemon.pid())?.cpu_seconds - before;
            let passes = connection_cost::measure(
                &daemon,
                &connection_cost::Setup {
                    cgroup: setup.cgroup,
                    nginx: setup.servers.nginx.as_ref().ok(),
                    requests: setup.servers.requests,
                    duration: setup.timing.measure,
                },
            )?;
            daemon.stop()?;
            Ok(RoundResult {
                rates,
                cpu_percent: Some(100.0 * cpu / seconds),
                passes,
            })
        }
        Config::Nethogs => {
            let binary = setup.nethogs.expect("only run when installed").to_owned();
            let nethogs = Nethogs::start(&binary, setup.cgroup)?;
            let before = nethogs.cpu_seconds()?;
            let (rates, seconds) = run_workloads(workloads, setup)?;
            let cpu = nethogs.cpu_seconds()? - before;
            nethogs.stop()?;
            Ok(RoundResult {
                rates,
                cpu_percent: Some(100.0 * cpu / seconds),
                passes: Vec::new(),
            })
        }
    }
}

fn ratios(with: &[f64], without: &[f64]) -> Vec<f64> {
    with.iter().zip(without).map(|(a, b)| a / b).collect()
}

/// The A/B(/C) rounds; returns the rates and the sockstats programs' time per connection.
pub fn run(setup: &Setup) -> Result<(ThroughputResults, Vec<ConnectionCost>)> {
    let (servers, skipped) = setup.servers.workloads();
    for s in &skipped {
        eprintln!("bench: skipping {}: {}", s.workload, s.reason);
    }
    let workloads: Vec<Workload> = Workload::LOOPBACK.into_iter().chain(servers).collect();
    let mut configs = vec![Config::Baseline, Config::Sockstats];
    if setup.nethogs.is_some() {
        configs.push(Config::Nethogs);
    }
    let mut samples: Vec<Samples> = configs.iter().map(|_| Samples::default()).collect();
    let mut passes = Vec::new();
    for round in 0..setup.rounds {
        let mut order: Vec<usize> = (0..configs.len()).collect();
        order.rotate_left(round % configs.len());
        for index in order {
            let config = configs[index];
            eprintln!(
                "bench: throughput round {}/{}: {}",
                round + 1,
                setup.rounds,
                config.name()
            );
            let result = run_config(config, &workloads, setup)?;
            let entry = &mut samples[index];
            entry.rates.push(result.rates);
            entry.cpu_percent.extend(result.cpu_percent);
            if !result.passes.is_empty() {
                passes.push(result.passes);
            }
        }
    }
    let per_workload = |config: Config, workload: usize| -> Vec<f64> {
        configs
            .iter()
            .position(|c| *c == config)
            .map(|i| samples[i].rates.iter().map(|r| r[workload]).collect())
            .unwrap_or_default()
    };
    let results = workloads
        .iter()
        .enumerate()
        .map(|(i, workload)| {
            let baseline = per_workload(Config::Baseline, i);
            let sockstats = per_workload(Config::Sockstats, i);
            let nethogs = per_workload(Config::Nethogs, i);
            WorkloadResult {
                workload: workload.name(),
                unit: workload.unit(),
                baseline: Spread::of(&baseline),
                sockstats: Spread::of(&sockstats),
                sockstats_ratio: Spread::of(&ratios(&sockstats, &baseline)),
                nethogs: Spread::of(&nethogs),
                nethogs_ratio: Spread::of(&ratios(&nethogs, &baseline)),
            }
        })
        .collect();
    let cpu_of = |config: Config| {
        configs
            .iter()
            .position(|c| *c == config)
            .and_then(|i| Spread::of(&samples[i].cpu_percent))
    };
    let throughput = ThroughputResults {
        workloads: results,
        skipped,
        tool_cpu: ToolCpu {
            sockstats_daemon_percent: cpu_of(Config::Sockstats),
            nethogs_percent: cpu_of(Config::Nethogs),
        },
    };
    Ok((throughput, connection_cost::summarize(&passes)))
}
