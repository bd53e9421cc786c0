//! What classifying destinations costs (issue 15, item 6): UDP and TCP between two network
//! namespaces over a veth pair, with nothing attached and with a private sockstatsd whose
//! config names 0, 10 or 1,000 prefixes, in rounds whose order rotates (as the throughput
//! rounds do), and the packet programs' ns per run beside empty ones.
//!
//! The kernel looks a socket's remote address up in the prefix trie once and again only when
//! it changes: `udp_same_peer` pays one lookup, `udp_alternating_peers` one per datagram (the
//! worst case), `tcp_connect` one per connection. Which addresses match what is said in
//! [`prefixes`].
use std::{fs, net::Ipv4Addr, path::Path};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::{
    bpf_stats::RunStats, cgroup::BenchCgroup, daemon::BenchDaemon, stats::Spread, workload::Timing,
};

mod prefixes;
mod program_time;
mod tables;
mod topology;
mod workloads;

pub use program_time::Accounted;
pub use tables::print;

use self::{program_time::Pass, topology::Topology, workloads::Workload};

pub struct Setup<'a> {
    pub bin_dir: &'a Path,
    pub cgroup: &'a BenchCgroup,
    pub rounds: usize,
    pub timing: Timing,
    /// Named-prefix counts of the configs, one sockstats configuration each.
    pub prefix_counts: &'a [usize],
}

/// What is attached during a configuration's runs.
#[derive(Debug, Clone, Copy)]
enum Config {
    Baseline,
    /// sockstatsd with a config of this many named prefixes.
    Sockstats(usize),
}

/// A workload's rate with one config, over rounds.
#[derive(Debug, Serialize)]
pub struct PrefixRate {
    pub prefixes: usize,
    pub rate: Option<Spread>,
    /// Per round: with sockstats ÷ without, in the same round.
    pub ratio: Option<Spread>,
}

/// One workload's rates over rounds.
#[derive(Debug, Serialize)]
pub struct WorkloadRates {
    pub workload: &'static str,
    pub unit: &'static str,
    pub baseline: Option<Spread>,
    pub sockstats: Vec<PrefixRate>,
}

/// The packet programs' cost in one workload with one config, over rounds.
#[derive(Debug, Serialize)]
pub struct ProgramTime {
    pub workload: &'static str,
    pub prefixes: usize,
    pub packet_egress_runs: u64,
    pub packet_egress_ns: Option<Spread>,
    /// Per round: `packet_egress` ns per run − the empty egress program's.
    pub packet_egress_net_ns: Option<Spread>,
    pub packet_ingress_runs: u64,
    pub packet_ingress_ns: Option<Spread>,
    pub packet_ingress_net_ns: Option<Spread>,
    pub empty_egress_ns: Option<Spread>,
    pub empty_ingress_ns: Option<Spread>,
    /// Payload bytes accounted per destination in the last round's pass.
    pub accounted: Accounted,
}

#[derive(Debug, Serialize)]
pub struct DestinationResults {
    /// The namespaces, link and addresses.
    pub topology: String,
    /// How the named prefixes are chosen.
    pub prefixes: String,
    /// Per prefix count and address of the traffic: the named network holding it.
    pub matching: Vec<Matching>,
    /// Where the kernel kept socket states (`socket_storage` or `hash_by_cookie`).
    pub socket_states: String,
    pub rates: Vec<WorkloadRates>,
    pub program_time: Vec<ProgramTime>,
}

/// The named network that holds one of the traffic's addresses with one config.
#[derive(Debug, Serialize)]
pub struct Matching {
    pub prefixes: usize,
    /// `sender` or `receiver`.
    pub side: &'static str,
    pub address: Ipv4Addr,
    /// `None`: no named prefix holds it (a public address: `internet`).
    pub network: Option<String>,
}

/// Which named network holds each of the traffic's addresses, per prefix count.
fn matching(prefix_counts: &[usize]) -> Vec<Matching> {
    let mut matching = Vec::new();
    for &prefixes in prefix_counts {
        for (side, addresses) in [
            ("sender", topology::SENDER_ADDRESSES),
            ("receiver", topology::RECEIVER_ADDRESSES),
        ] {
            for address in addresses {
                matching.push(Matching {
                    prefixes,
                    side,
                    address,
                    network: prefixes::network_holding(prefixes, address),
                });
            }
        }
    }
    matching
}

/// Per config, per round: each workload's rate.
type Rates = Vec<Vec<Vec<f64>>>;

/// Runs the section: the topology is made first and removed at the end, also on failure.
pub fn run(setup: &Setup) -> Result<DestinationResults> {
    let topology = Topology::new().context("cannot make the destination bench's namespaces")?;
    let configs_dir = tempfile::Builder::new()
        .prefix("sockstats-bench-destinations-")
        .tempdir()
        .context("tempdir")?;
    for &count in setup.prefix_counts {
        let path = config_path(configs_dir.path(), count);
        fs::write(&path, prefixes::config_text(count))
            .with_context(|| format!("write {}", path.display()))?;
    }
    let configs: Vec<Config> = std::iter::once(Config::Baseline)
        .chain(setup.prefix_counts.iter().map(|&n| Config::Sockstats(n)))
        .collect();
    let mut rates: Rates = vec![Vec::new(); configs.len()];
    // Per sockstats config (in `prefix_counts` order), per round: the passes.
    let mut passes: Vec<Vec<Vec<Pass>>> = setup.prefix_counts.iter().map(|_| Vec::new()).collect();
    let mut socket_states = String::new();
    for round in 0..setup.rounds {
        let mut order: Vec<usize> = (0..configs.len()).collect();
        order.rotate_left(round % configs.len());
        for index in order {
            let config = configs[index];
            eprintln!(
                "bench: destinations round {}/{}: {}",
                round + 1,
                setup.rounds,
                match config {
                    Config::Baseline => "baseline".to_owned(),
                    Config::Sockstats(n) => format!("sockstats, {n} named prefixes"),
                }
            );
            let run_workloads = || {
                Workload::ALL
                    .iter()
                    .map(|w| w.run(&topology, setup.timing))
                    .collect::<Result<Vec<f64>>>()
            };
            match config {
                Config::Baseline => rates[index].push(run_workloads()?),
                Config::Sockstats(count) => {
                    let config_file = config_path(configs_dir.path(), count);
                    let daemon =
                        BenchDaemon::start_with(setup.bin_dir, setup.cgroup, Some(&config_file))?;
                    socket_states.clone_from(&daemon.socket_states);
                    rates[index].push(run_workloads()?);
                    let pass =
                        program_time::measure(&daemon, setup.cgroup, &topology, setup.timing)?;
                    daemon.stop()?;
                    passes[index - 1].push(pass);
                }
            }
        }
    }
    Ok(DestinationResults {
        topology: format!(
            "namespaces {} (sender) and {} (receiver), a veth pair between them with {} and {} \
             on the sender's end, {} and {} on the receiver's (/24 each)",
            "ssb<pid>s",
            "ssb<pid>r",
            topology::SENDER_ADDRESSES[0],
            topology::SENDER_ADDRESSES[1],
            topology::RECEIVER_ADDRESSES[0],
            topology::RECEIVER_ADDRESSES[1],
        ),
        prefixes: "the siblings of the receiver addresses first (for each length from /32 to \
                   /8, the prefix that shares all the address's bits but the last), so the \
                   trie branches at every one of those bits on the path of their lookups, then \
                   pseudo-random public /16 to /28 prefixes; ten to a network line (bench0, \
                   bench1, ...)"
            .to_owned(),
        matching: matching(setup.prefix_counts),
        socket_states,
        rates: summarize_rates(setup.prefix_counts, &rates),
        program_time: summarize_passes(setup.prefix_counts, &passes),
    })
}

fn config_path(dir: &Path, count: usize) -> std::path::PathBuf {
    dir.join(format!("sockstats-{count}-prefixes.conf"))
}

/// Rates and per-round ratios: config 0 is the baseline, config i + 1 has `prefix_counts[i]`.
fn summarize_rates(prefix_counts: &[usize], rates: &Rates) -> Vec<WorkloadRates> {
    let series = |config: usize, workload: usize| -> Vec<f64> {
        rates[config].iter().map(|round| round[workload]).collect()
    };
    Workload::ALL
        .iter()
        .enumerate()
        .map(|(w, workload)| {
            let baseline = series(0, w);
            WorkloadRates {
                workload: workload.name(),
                unit: workload.unit(),
                baseline: Spread::of(&baseline),
                sockstats: prefix_counts
                    .iter()
                    .enumerate()
                    .map(|(i, &prefixes)| {
                        let with = series(i + 1, w);
                        let ratios: Vec<f64> =
                            with.iter().zip(&baseline).map(|(a, b)| a / b).collect();
                        PrefixRate {
                            prefixes,
                            rate: Spread::of(&with),
                            ratio: Spread::of(&ratios),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Per workload and prefix count: ns per run over rounds, net of the empty programs.
fn summarize_passes(prefix_counts: &[usize], passes: &[Vec<Vec<Pass>>]) -> Vec<ProgramTime> {
    let mut times = Vec::new();
    for (w, workload) in Workload::ALL.iter().enumerate() {
        for (i, &prefixes) in prefix_counts.iter().enumerate() {
            let rounds: Vec<&Pass> = passes[i].iter().map(|round| &round[w]).collect();
            let ns = |pick: fn(&Pass) -> RunStats| -> Vec<f64> {
                rounds.iter().filter_map(|p| pick(p).ns_per_run()).collect()
            };
            let net = |ours: fn(&Pass) -> RunStats, empty: fn(&Pass) -> RunStats| {
                rounds
                    .iter()
                    .filter_map(|p| Some(ours(p).ns_per_run()? - empty(p).ns_per_run()?))
                    .collect::<Vec<f64>>()
            };
            times.push(ProgramTime {
                workload: workload.name(),
                prefixes,
                packet_egress_runs: rounds.iter().map(|p| p.egress.run_count).sum(),
                packet_egress_ns: Spread::of(&ns(|p| p.egress)),
                packet_egress_net_ns: Spread::of(&net(|p| p.egress, |p| p.empty_egress)),
                packet_ingress_runs: rounds.iter().map(|p| p.ingress.run_count).sum(),
                packet_ingress_ns: Spread::of(&ns(|p| p.ingress)),
                packet_ingress_net_ns: Spread::of(&net(|p| p.ingress, |p| p.empty_ingress)),
                empty_egress_ns: Spread::of(&ns(|p| p.empty_egress)),
                empty_ingress_ns: Spread::of(&ns(|p| p.empty_ingress)),
                accounted: rounds
                    .last()
                    .map(|p| p.accounted.clone())
                    .unwrap_or_default(),
            });
        }
    }
    times
}
