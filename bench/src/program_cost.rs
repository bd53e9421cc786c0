//! Cost per invocation of each sockstats program, beside empty programs of the same types on
//! the same hooks, from the kernel's own run-time statistics (`kernel.bpf_stats_enabled`).
//!
//! Statistics add two clock reads and some bookkeeping to every invocation of every program;
//! an empty program's `run_time_ns / run_cnt` is that overhead alone. What a sockstats program
//! costs beyond an empty one of its type (`net_ns`) is what the target (40 ns) is about.
//!
//! Every round runs the workloads twice: as the scheduler places them (the two ends of a
//! loopback connection on two CPUs, so the counters of a socket bounce between their caches)
//! and with the bench pinned to one CPU (no bouncing: the programs' own instructions).
use std::{collections::HashMap, fs::File, time::Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::{
    bpf_stats::{self, ProgramSize, RunStats},
    cgroup::BenchCgroup,
    daemon::BenchDaemon,
    empty_programs::{self, EmptyKind, EmptyProgram},
    sockets,
    stats::Spread,
    sys,
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
    /// The same with the workload pinned to one CPU.
    pub ns_per_run_one_cpu: Option<Spread>,
    pub net_ns_one_cpu: Option<Spread>,
    pub size: ProgramSize,
}

#[derive(Debug, Serialize)]
pub struct EmptyCost {
    pub program: &'static str,
    pub hook: String,
    pub runs: u64,
    pub ns_per_run: Option<Spread>,
    pub ns_per_run_one_cpu: Option<Spread>,
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
    let mut free = Vec::new();
    let mut pinned = Vec::new();
    let mut cpu_percent = Vec::new();
    for round in 0..rounds {
        eprintln!("bench: program cost round {}/{rounds}", round + 1);
        let (delta, seconds) = measure_round(&ids, timing)?;
        #[expect(clippy::cast_precision_loss, reason = "a share")]
        let ours_ns: f64 = ours
            .iter()
            .filter_map(|(_, _, id)| delta.get(id))
            .map(|s| s.run_time_ns as f64)
            .sum();
        cpu_percent.push(100.0 * ours_ns / 1e9 / seconds);
        free.push(delta);
        pinned.push(sys::on_one_cpu(0, || measure_round(&ids, timing))??.0);
    }
    let sizes = bpf_stats::sizes(&ids);
    Ok(summarize(
        &ours,
        &empties,
        &[free, pinned],
        &sizes,
        &cpu_percent,
    ))
}

/// Runs the workloads once; returns what each program ran meanwhile, and the seconds taken.
fn measure_round(ids: &[u32], timing: Timing) -> Result<(HashMap<u32, RunStats>, f64)> {
    let before = bpf_stats::read(ids);
    let start = Instant::now();
    workload::tcp_throughput(1024, timing)?;
    workload::tcp_throughput(1024 * 1024, timing)?;
    workload::udp_rate(64, timing)?;
    sockets::churn_tcp(CHURN_PER_ROUND, 500)?;
    let seconds = start.elapsed().as_secs_f64();
    let delta = bpf_stats::read(ids)
        .iter()
        .map(|(id, stats)| {
            (
                *id,
                stats.since(before.get(id).copied().unwrap_or_default()),
            )
        })
        .collect();
    Ok((delta, seconds))
}

/// Per placement (free, one CPU), per round: what each program ran.
type Rounds = [Vec<HashMap<u32, RunStats>>; 2];

/// Invocations over all rounds, and ns per run of each round.
fn series(rounds: &[HashMap<u32, RunStats>], id: u32) -> (u64, Vec<f64>) {
    let runs = rounds
        .iter()
        .filter_map(|r| r.get(&id))
        .map(|s| s.run_count)
        .sum();
    let ns = rounds
        .iter()
        .filter_map(|r| r.get(&id).and_then(|s| s.ns_per_run()))
        .collect();
    (runs, ns)
}

/// Per round: ns per run of `id` minus that of `empty`.
fn net(rounds: &[HashMap<u32, RunStats>], id: u32, empty: u32) -> Vec<f64> {
    rounds
        .iter()
        .filter_map(|r| Some(r.get(&id)?.ns_per_run()? - r.get(&empty)?.ns_per_run()?))
        .collect()
}

/// Medians and spreads over the rounds.
fn summarize(
    ours: &[(String, String, u32)],
    empties: &[EmptyProgram],
    rounds: &Rounds,
    sizes: &HashMap<u32, ProgramSize>,
    cpu_percent: &[f64],
) -> ProgramCosts {
    let [free, pinned] = rounds;
    let sockstats = ours
        .iter()
        .map(|(name, hook, id)| {
            let (free_runs, free_ns) = series(free, *id);
            let (pinned_runs, pinned_ns) = series(pinned, *id);
            let empty = empty_for(hook, empties).map(|i| &empties[i]);
            ProgramCost {
                program: name.clone(),
                hook: hook.clone(),
                hot_path: HOT_PATH.contains(&name.as_str()),
                runs: free_runs + pinned_runs,
                ns_per_run: Spread::of(&free_ns),
                compared_with: empty.map(|e| e.kind.name().to_owned()),
                net_ns: empty.and_then(|e| Spread::of(&net(free, *id, e.id))),
                ns_per_run_one_cpu: Spread::of(&pinned_ns),
                net_ns_one_cpu: empty.and_then(|e| Spread::of(&net(pinned, *id, e.id))),
                size: sizes.get(id).copied().unwrap_or_default(),
            }
        })
        .collect();
    let empty = empties
        .iter()
        .map(|e| {
            let (free_runs, free_ns) = series(free, e.id);
            let (pinned_runs, pinned_ns) = series(pinned, e.id);
            EmptyCost {
                program: e.kind.name(),
                hook: e.kind.hook(),
                runs: free_runs + pinned_runs,
                ns_per_run: Spread::of(&free_ns),
                ns_per_run_one_cpu: Spread::of(&pinned_ns),
            }
        })
        .collect();
    ProgramCosts {
        sockstats,
        empty,
        sockstats_cpu_percent: Spread::of(cpu_percent),
    }
}
