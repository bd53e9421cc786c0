//! Cost per invocation of each sockstats program, beside empty programs of the same types on
//! the same hooks, from the kernel's own run-time statistics (`kernel.bpf_stats_enabled`).
//!
//! Statistics add two clock reads and some bookkeeping to every invocation of every program;
//! an empty program's `run_time_ns / run_cnt` is that overhead alone. What a sockstats program
//! costs beyond an empty one of its type (`net_ns`) is what the target (40 ns) is about.
use std::{collections::HashMap, fs::File, time::Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::{
    bpf_stats::{self, RunStats},
    cgroup::BenchCgroup,
    daemon::BenchDaemon,
    empty_programs::{self, EmptyKind, EmptyProgram},
    sockets,
    stats::Spread,
    workload::{self, Timing},
};

/// The empty programs loaded beside sockstats'.
const EMPTIES: [EmptyKind; 5] = [
    EmptyKind::TpBtf("sock_send_length"),
    EmptyKind::TpBtf("sock_recv_length"),
    EmptyKind::CgroupSkbEgress,
    EmptyKind::CgroupSkbIngress,
    EmptyKind::CgroupSockCreate,
];

/// Programs on the per-send/receive and per-packet paths: the 40 ns target is theirs.
const HOT_PATH: [&str; 4] = [
    "sock_send_length",
    "sock_recv_length",
    "packet_egress",
    "packet_ingress",
];

/// Connections opened and closed per round (for the per-connection programs).
const CHURN_PER_ROUND: usize = 2000;

#[derive(Debug, Serialize)]
pub struct ProgramCost {
    pub program: String,
    pub hook: String,
    pub hot_path: bool,
    /// Invocations over all rounds.
    pub runs: u64,
    pub ns_per_run: Option<Spread>,
    /// The empty program this one is compared with.
    pub compared_with: Option<String>,
    /// Per round: this program's ns per run minus the empty one's.
    pub net_ns: Option<Spread>,
}

#[derive(Debug, Serialize)]
pub struct EmptyCost {
    pub program: &'static str,
    pub hook: String,
    pub runs: u64,
    pub ns_per_run: Option<Spread>,
}

#[derive(Debug, Serialize)]
pub struct ProgramCosts {
    pub sockstats: Vec<ProgramCost>,
    pub empty: Vec<EmptyCost>,
    /// Sum of sockstats' program run time per second of workload, in percent of one CPU
    /// (statistics overhead included).
    pub sockstats_cpu_percent: Option<Spread>,
}

/// The empty program a sockstats program at `hook` is measured against: the one on the same
/// hook, else one of the same type.
fn empty_for(hook: &str, empties: &[EmptyProgram]) -> Option<usize> {
    empties
        .iter()
        .position(|e| e.kind.hook() == hook)
        .or_else(|| {
            let program_type = if hook.starts_with("tp_btf/") {
                "tp_btf"
            } else if hook.starts_with("cgroup_skb/") {
                "cgroup_skb"
            } else {
                "cgroup_sock"
            };
            empties
                .iter()
                .position(|e| e.kind.program_type() == program_type)
        })
}

/// Runs `rounds` rounds of the workloads with sockstats (`daemon`) and the empty programs
/// attached and statistics on.
pub fn run(
    daemon: &BenchDaemon,
    cgroup: &BenchCgroup,
    rounds: usize,
    timing: Timing,
) -> Result<ProgramCosts> {
    let btf = aya::Btf::from_sys_fs().context("cannot read /sys/kernel/btf/vmlinux")?;
    let cgroup_dir = File::open(&cgroup.path).context("open the bench cgroup")?;
    let empties = EMPTIES
        .iter()
        .map(|kind| empty_programs::attach(*kind, &btf, &cgroup_dir))
        .collect::<Result<Vec<_>>>()?;
    let ours: Vec<(String, String, u32)> = daemon
        .programs
        .iter()
        .filter_map(|p| Some((p.name.clone(), p.hook.clone(), p.prog_id?)))
        .collect();
    let ids: Vec<u32> = ours
        .iter()
        .map(|(_, _, id)| *id)
        .chain(empties.iter().map(|e| e.id))
        .collect();

    let _stats = bpf_stats::enable()?;
    let mut per_round: Vec<HashMap<u32, RunStats>> = Vec::new();
    let mut cpu_percent = Vec::new();
    for round in 0..rounds {
        eprintln!("bench: program cost round {}/{rounds}", round + 1);
        let before = bpf_stats::read(&ids);
        let start = Instant::now();
        workload::tcp_throughput(1024, timing)?;
        workload::tcp_throughput(1024 * 1024, timing)?;
        workload::udp_rate(64, timing)?;
        sockets::churn_tcp(CHURN_PER_ROUND, 500)?;
        let seconds = start.elapsed().as_secs_f64();
        let after = bpf_stats::read(&ids);
        let delta: HashMap<u32, RunStats> = after
            .iter()
            .map(|(id, stats)| {
                (
                    *id,
                    stats.since(before.get(id).copied().unwrap_or_default()),
                )
            })
            .collect();
        #[expect(clippy::cast_precision_loss, reason = "a share")]
        let ours_ns: f64 = ours
            .iter()
            .filter_map(|(_, _, id)| delta.get(id))
            .map(|s| s.run_time_ns as f64)
            .sum();
        cpu_percent.push(100.0 * ours_ns / 1e9 / seconds);
        per_round.push(delta);
    }

    Ok(summarize(&ours, &empties, &per_round, &cpu_percent))
}

/// Medians and spreads over the rounds.
fn summarize(
    ours: &[(String, String, u32)],
    empties: &[EmptyProgram],
    per_round: &[HashMap<u32, RunStats>],
    cpu_percent: &[f64],
) -> ProgramCosts {
    let series = |id: u32| -> (u64, Vec<f64>) {
        let runs = per_round
            .iter()
            .filter_map(|r| r.get(&id))
            .map(|s| s.run_count)
            .sum();
        let ns = per_round
            .iter()
            .filter_map(|r| r.get(&id).and_then(|s| s.ns_per_run()))
            .collect();
        (runs, ns)
    };
    let sockstats = ours
        .iter()
        .map(|(name, hook, id)| {
            let (runs, ns) = series(*id);
            let empty = empty_for(hook, empties).map(|i| &empties[i]);
            let net: Vec<f64> = empty
                .map(|e| {
                    per_round
                        .iter()
                        .filter_map(|r| {
                            Some(r.get(id)?.ns_per_run()? - r.get(&e.id)?.ns_per_run()?)
                        })
                        .collect()
                })
                .unwrap_or_default();
            ProgramCost {
                program: name.clone(),
                hook: hook.clone(),
                hot_path: HOT_PATH.contains(&name.as_str()),
                runs,
                ns_per_run: Spread::of(&ns),
                compared_with: empty.map(|e| e.kind.name().to_owned()),
                net_ns: Spread::of(&net),
            }
        })
        .collect();
    let empty = empties
        .iter()
        .map(|e| {
            let (runs, ns) = series(e.id);
            EmptyCost {
                program: e.kind.name(),
                hook: e.kind.hook(),
                runs,
                ns_per_run: Spread::of(&ns),
            }
        })
        .collect();
    ProgramCosts {
        sockstats,
        empty,
        sockstats_cpu_percent: Spread::of(cpu_percent),
    }
}
