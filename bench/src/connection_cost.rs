//! Program time per TCP connection: with sockstats attached, the run time of every sockstats
//! program (`kernel.bpf_stats_enabled`) over short TCP connections (`tcp_connect`) and over
//! nginx answering `ab` (one connection per request), divided by the connections made.
//!
//! Statistics add clock reads to every invocation of every program, so they are on only in a
//! pass of their own after a round's timed workloads: they never lower a throughput ratio. The
//! tracepoint programs fire for every socket of the host, so what other processes do meanwhile
//! lands here too (the calls per connection show it).
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::{
    bpf_stats::{self, RunStats},
    cgroup::BenchCgroup,
    daemon::BenchDaemon,
    nginx::{self, Nginx},
    program_cost::ProgramCosts,
    stats::Spread,
    workload,
};

/// The target for the sockstats programs' time per connection.
pub const TARGET_NS: f64 = 1500.0;

/// What one pass measured for one workload.
pub struct Pass {
    workload: &'static str,
    per: &'static str,
    /// Connections (or requests, one connection each) made with statistics on.
    units: u64,
    /// What each sockstats program ran meanwhile: name, hook, statistics (each round has a
    /// daemon of its own, so program ids differ between rounds; names do not).
    programs: Vec<(String, String, RunStats)>,
    /// Payload bytes sockstats accounted meanwhile (every label), if the daemon answered.
    accounted_bytes: Option<u64>,
}

pub struct Setup<'a> {
    pub cgroup: &'a BenchCgroup,
    pub nginx: Option<&'a nginx::Tools>,
    /// `ab` requests of the nginx pass.
    pub requests: usize,
    /// How long the `tcp_connect` pass makes connections.
    pub duration: Duration,
}

/// Payload bytes the daemon has accounted so far, over every label.
fn accounted(daemon: &BenchDaemon) -> Option<u64> {
    let reply = daemon.client().ok()?.get().ok()?;
    Some(
        reply
            .stats
            .values()
            .chain([&reply.overflow])
            .map(|c| c.tx_bytes + c.rx_bytes)
            .sum(),
    )
}

/// Runs `work` with statistics read before and after; `work` returns the units it made.
fn pass(
    daemon: &BenchDaemon,
    workload: &'static str,
    per: &'static str,
    work: impl FnOnce() -> Result<u64>,
) -> Result<Pass> {
    let ids: Vec<u32> = daemon.programs.iter().filter_map(|p| p.prog_id).collect();
    let bytes_before = accounted(daemon);
    let before = bpf_stats::read(&ids);
    let units = work()?;
    let after = bpf_stats::read(&ids);
    let bytes_after = accounted(daemon);
    let programs = daemon
        .programs
        .iter()
        .filter_map(|p| {
            let id = p.prog_id?;
            let stats = after.get(&id)?.since(before.get(&id).copied()?);
            Some((p.name.clone(), p.hook.clone(), stats))
        })
        .collect();
    Ok(Pass {
        workload,
        per,
        units,
        programs,
        accounted_bytes: bytes_before
            .zip(bytes_after)
            .map(|(b, a)| a.saturating_sub(b)),
    })
}

/// One round's passes, with `daemon` attached: `tcp_connect`, then nginx + ab if installed.
pub fn measure(daemon: &BenchDaemon, setup: &Setup) -> Result<Vec<Pass>> {
    eprintln!("bench: program time per connection (statistics on)");
    let _stats = bpf_stats::enable()?;
    let mut passes = vec![pass(daemon, "tcp_connect", "connection", || {
        workload::tcp_connections_for(setup.duration)
    })?];
    if let Some(tools) = setup.nginx {
        let mut server = Nginx::start(tools, setup.cgroup)?;
        server.ab(tools, setup.cgroup, (setup.requests / 5).max(1))?;
        let nginx_pass = pass(daemon, "nginx_ab", "request", || {
            Ok(server.ab(tools, setup.cgroup, setup.requests)?.complete)
        })?;
        server.stop()?;
        let file_bytes = nginx_pass.units * nginx::FILE_BYTES as u64;
        if let Some(bytes) = nginx_pass.accounted_bytes.filter(|b| *b < file_bytes) {
            eprintln!(
                "bench: warning: sockstats accounted {bytes} bytes for {} requests of a \
                 {}-byte file: are nginx and ab in the accounted cgroup?",
                nginx_pass.units,
                nginx::FILE_BYTES
            );
        }
        passes.push(nginx_pass);
    }
    Ok(passes)
}

/// One sockstats program's share of a connection.
#[derive(Debug, Serialize)]
pub struct ProgramPerConnection {
    pub program: String,
    pub hook: String,
    /// Per round: its run time / connections, ns.
    pub ns: Option<Spread>,
    /// Per round: its invocations / connections.
    pub calls: Option<Spread>,
    /// Per round: `ns` minus `calls` × an empty program's ns per run of the same type.
    pub net_ns: Option<Spread>,
}

/// The sockstats programs' time per connection in one workload, over rounds.
#[derive(Debug, Serialize)]
pub struct ConnectionCost {
    pub workload: &'static str,
    /// What the time is divided by: `connection`, or `request` (one connection each).
    pub per: &'static str,
    /// Connections (requests) made with statistics on, over all rounds.
    pub units: u64,
    /// Per round: every sockstats program's run time / connections, ns (what the kernel
    /// counts, the statistics' own clock reads included).
    pub total_ns: Option<Spread>,
    /// Per round: the same minus, per invocation, an empty program's ns per run of the same
    /// type (the program-cost medians): the programs' own work.
    pub net_total_ns: Option<Spread>,
    /// The target for `total_ns` (not asserted).
    pub target_ns: f64,
    /// Per round: payload bytes sockstats accounted / connections.
    pub accounted_bytes: Option<Spread>,
    pub programs: Vec<ProgramPerConnection>,
}

#[expect(clippy::cast_precision_loss, reason = "averages")]
fn per_unit(value: u64, units: u64) -> f64 {
    if units == 0 {
        0.0
    } else {
        value as f64 / units as f64
    }
}

/// Medians and spreads over rounds (`rounds[i]` is round i's passes), per workload.
#[must_use]
pub fn summarize(rounds: &[Vec<Pass>]) -> Vec<ConnectionCost> {
    let mut workloads: Vec<(&'static str, &'static str)> = Vec::new();
    for pass in rounds.iter().flatten() {
        if !workloads.iter().any(|(w, _)| *w == pass.workload) {
            workloads.push((pass.workload, pass.per));
        }
    }
    workloads
        .into_iter()
        .map(|(workload, per)| {
            let passes: Vec<&Pass> = rounds
                .iter()
                .flatten()
                .filter(|p| p.workload == workload)
                .collect();
            let mut programs: Vec<(&str, &str)> = Vec::new();
            for (name, hook, _) in passes.iter().flat_map(|p| &p.programs) {
                if !programs.iter().any(|(n, _)| n == name) {
                    programs.push((name, hook));
                }
            }
            // A program missing from a round (it did not load then) counts as zero there, so
            // every program's samples line up by round.
            let of_program = |name: &str, value: fn(RunStats) -> u64| -> Vec<f64> {
                passes
                    .iter()
                    .map(|p| {
                        let stats = p.programs.iter().find(|(n, _, _)| n == name);
                        per_unit(stats.map_or(0, |(_, _, s)| value(*s)), p.units)
                    })
                    .collect()
            };
            let totals: Vec<f64> = passes
                .iter()
                .map(|p| {
                    let ns = p.programs.iter().map(|(_, _, s)| s.run_time_ns).sum();
                    per_unit(ns, p.units)
                })
                .collect();
            let bytes: Vec<f64> = passes
                .iter()
                .filter_map(|p| Some(per_unit(p.accounted_bytes?, p.units)))
                .collect();
            ConnectionCost {
                workload,
                per,
                units: passes.iter().map(|p| p.units).sum(),
                total_ns: Spread::of(&totals),
                net_total_ns: None,
                target_ns: TARGET_NS,
                accounted_bytes: Spread::of(&bytes),
                programs: programs
                    .into_iter()
                    .map(|(name, hook)| ProgramPerConnection {
                        program: name.to_owned(),
                        hook: hook.to_owned(),
                        ns: Spread::of(&of_program(name, |s| s.run_time_ns)),
                        calls: Spread::of(&of_program(name, |s| s.run_count)),
                        net_ns: None,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Fills in the net figures: each program's time minus its calls × the median ns per run of
/// the empty program it was compared with in the program-cost rounds.
pub fn subtract_empty(costs: &mut [ConnectionCost], program_cost: &ProgramCosts) {
    let empty_ns = |program: &str| -> Option<f64> {
        let compared_with = program_cost
            .sockstats
            .iter()
            .find(|p| p.program == program)?
            .compared_with
            .as_deref()?;
        let empty = program_cost
            .empty
            .iter()
            .find(|e| e.program == compared_with)?;
        Some(empty.ns_per_run.as_ref()?.median)
    };
    for cost in costs {
        let mut totals: Option<Vec<f64>> = None;
        for program in &mut cost.programs {
            let (Some(ns), Some(calls), Some(empty)) =
                (&program.ns, &program.calls, empty_ns(&program.program))
            else {
                totals = None;
                break;
            };
            let net: Vec<f64> = ns
                .samples
                .iter()
                .zip(&calls.samples)
                .map(|(ns, calls)| ns - calls * empty)
                .collect();
            let sum = totals.get_or_insert_with(|| vec![0.0; net.len()]);
            for (total, value) in sum.iter_mut().zip(&net) {
                *total += value;
            }
            program.net_ns = Spread::of(&net);
        }
        cost.net_total_ns = totals.as_deref().and_then(Spread::of);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program_cost::{EmptyCost, ProgramCost};

    fn pass(units: u64, runs: &[(&str, u64, u64)]) -> Pass {
        Pass {
            workload: "tcp_connect",
            per: "connection",
            units,
            programs: runs
                .iter()
                .map(|&(name, run_time_ns, run_count)| {
                    (
                        name.to_owned(),
                        format!("hook/{name}"),
                        RunStats {
                            run_time_ns,
                            run_count,
                        },
                    )
                })
                .collect(),
            accounted_bytes: Some(units * 4),
        }
    }

    fn two_rounds() -> Vec<ConnectionCost> {
        summarize(&[
            vec![pass(
                100,
                &[
                    ("sock_create", 200_000, 200),
                    ("sock_release", 100_000, 400),
                ],
            )],
            vec![pass(200, &[("sock_create", 600_000, 400)])],
        ])
    }

    #[test]
    fn divides_each_programs_time_and_calls_by_the_connections() {
        let costs = two_rounds();
        assert_eq!(costs.len(), 1);
        let cost = &costs[0];
        assert_eq!(cost.units, 300);
        assert_eq!(
            cost.total_ns.as_ref().unwrap().samples,
            vec![3000.0, 3000.0]
        );
        assert!((cost.accounted_bytes.as_ref().unwrap().median - 4.0).abs() < 1e-9);
        let create = &cost.programs[0];
        assert_eq!(create.program, "sock_create");
        assert_eq!(create.ns.as_ref().unwrap().samples, vec![2000.0, 3000.0]);
        assert_eq!(create.calls.as_ref().unwrap().samples, vec![2.0, 2.0]);
        // Missing from the second round: zero there, so the rounds line up.
        let release = &cost.programs[1];
        assert_eq!(release.ns.as_ref().unwrap().samples, vec![1000.0, 0.0]);
        assert_eq!(release.calls.as_ref().unwrap().samples, vec![4.0, 0.0]);
    }

    #[test]
    fn no_connections_costs_nothing_rather_than_dividing_by_zero() {
        let costs = summarize(&[vec![pass(0, &[("p", 500, 5)])]]);
        assert!(costs[0].total_ns.as_ref().unwrap().median.abs() < f64::EPSILON);
    }

    fn cost_against(program: &str, empty: &str) -> ProgramCost {
        ProgramCost {
            program: program.to_owned(),
            hook: format!("hook/{program}"),
            hot_path: false,
            runs: 1,
            ns_per_run: None,
            compared_with: Some(empty.to_owned()),
            net_ns: None,
            ns_per_run_one_cpu: None,
            net_ns_one_cpu: None,
            size: bpf_stats::ProgramSize::default(),
        }
    }

    #[test]
    fn net_takes_an_empty_programs_time_off_every_call() {
        let mut costs = two_rounds();
        let empty = |program: &'static str, ns: f64| EmptyCost {
            program,
            hook: String::new(),
            runs: 1,
            ns_per_run: Spread::of(&[ns]),
            ns_per_run_one_cpu: None,
        };
        let program_cost = ProgramCosts {
            sockstats: vec![
                cost_against("sock_create", "empty_sock_crt"),
                cost_against("sock_release", "empty_sock_crt"),
            ],
            empty: vec![empty("empty_sock_crt", 100.0)],
            sockstats_cpu_percent: None,
        };
        subtract_empty(&mut costs, &program_cost);
        let cost = &costs[0];
        // Round 1: 2000 - 2 × 100 and 1000 - 4 × 100; round 2: 3000 - 2 × 100 and 0.
        let create = cost.programs[0].net_ns.as_ref().unwrap();
        assert_eq!(create.samples, vec![1800.0, 2800.0]);
        let release = cost.programs[1].net_ns.as_ref().unwrap();
        assert_eq!(release.samples, vec![600.0, 0.0]);
        assert_eq!(
            cost.net_total_ns.as_ref().unwrap().samples,
            vec![2400.0, 2800.0]
        );
    }
}
