//! The packet programs' time per run in the destination workloads, beside empty `cgroup_skb`
//! programs on the same cgroup (their ns per run is what `kernel.bpf_stats_enabled` itself
//! costs), and what the daemon accounted per destination meanwhile: the check that the config
//! and the topology classify the traffic as the bench says.
//!
//! Statistics are on only in this pass, after a configuration's timed runs: they never lower
//! a rate ratio.
use std::{collections::BTreeMap, fs::File};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::{topology::Topology, workloads::Workload};
use crate::{
    bpf_stats::{self, RunStats},
    cgroup::BenchCgroup,
    daemon::BenchDaemon,
    empty_programs::{self, EmptyKind},
    workload::Timing,
};

/// The hooks of the programs measured, as `sockstats status` names them.
const EGRESS_HOOK: &str = "cgroup_skb/egress";
const INGRESS_HOOK: &str = "cgroup_skb/ingress";

/// Payload bytes the daemon accounted, over every label, per destination name.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Accounted {
    pub tx_bytes_by_destination: BTreeMap<String, u64>,
    pub rx_bytes_by_destination: BTreeMap<String, u64>,
}

impl Accounted {
    fn read(daemon: &BenchDaemon) -> Result<Self> {
        let reply = daemon
            .client()?
            .get_destinations(false, false)
            .context("get_destinations from the bench daemon")?;
        let mut accounted = Self::default();
        for stats in reply.stats.values() {
            for (into, from) in [
                (
                    &mut accounted.tx_bytes_by_destination,
                    &stats.tx_bytes_by_destination,
                ),
                (
                    &mut accounted.rx_bytes_by_destination,
                    &stats.rx_bytes_by_destination,
                ),
            ] {
                for (destination, bytes) in from {
                    *into.entry(destination.clone()).or_default() += bytes;
                }
            }
        }
        Ok(accounted)
    }

    /// What was accounted between `earlier` and `self` (destinations that moved nothing left
    /// out).
    fn since(&self, earlier: &Self) -> Self {
        let delta = |now: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>| {
            now.iter()
                .map(|(d, bytes)| {
                    let moved = bytes.saturating_sub(before.get(d).copied().unwrap_or(0));
                    (d.clone(), moved)
                })
                .filter(|(_, moved)| *moved > 0)
                .collect()
        };
        Self {
            tx_bytes_by_destination: delta(
                &self.tx_bytes_by_destination,
                &earlier.tx_bytes_by_destination,
            ),
            rx_bytes_by_destination: delta(
                &self.rx_bytes_by_destination,
                &earlier.rx_bytes_by_destination,
            ),
        }
    }
}

/// What one workload's pass measured.
pub struct Pass {
    pub egress: RunStats,
    pub ingress: RunStats,
    pub empty_egress: RunStats,
    pub empty_ingress: RunStats,
    pub accounted: Accounted,
}

/// The daemon's program id at `hook`.
fn program_at(daemon: &BenchDaemon, hook: &str) -> Result<u32> {
    daemon
        .programs
        .iter()
        .find(|p| p.hook == hook)
        .and_then(|p| p.prog_id)
        .with_context(|| format!("the bench daemon has no program attached at {hook}"))
}

/// Runs every workload once with statistics on and empty `cgroup_skb` programs attached next
/// to `daemon`'s.
pub fn measure(
    daemon: &BenchDaemon,
    cgroup: &BenchCgroup,
    topology: &Topology,
    timing: Timing,
) -> Result<Vec<Pass>> {
    let btf = aya::Btf::from_sys_fs().context("cannot read /sys/kernel/btf/vmlinux")?;
    let cgroup_dir = File::open(&cgroup.path).context("open the bench cgroup")?;
    let empty_egress = empty_programs::attach(EmptyKind::CgroupSkbEgress, &btf, &cgroup_dir)?;
    let empty_ingress = empty_programs::attach(EmptyKind::CgroupSkbIngress, &btf, &cgroup_dir)?;
    let egress = program_at(daemon, EGRESS_HOOK)?;
    let ingress = program_at(daemon, INGRESS_HOOK)?;
    let ids = [egress, ingress, empty_egress.id, empty_ingress.id];
    let _stats = bpf_stats::enable()?;
    Workload::ALL
        .iter()
        .map(|&workload| {
            let accounted_before = Accounted::read(daemon)?;
            let before = bpf_stats::read(&ids);
            workload.run(topology, timing)?;
            let after = bpf_stats::read(&ids);
            let delta = |id: u32| {
                after
                    .get(&id)
                    .copied()
                    .unwrap_or_default()
                    .since(before.get(&id).copied().unwrap_or_default())
            };
            Ok(Pass {
                egress: delta(egress),
                ingress: delta(ingress),
                empty_egress: delta(empty_egress.id),
                empty_ingress: delta(empty_ingress.id),
                accounted: Accounted::read(daemon)?.since(&accounted_before),
            })
        })
        .collect()
}
