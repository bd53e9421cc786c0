//! Per-program run time and run count (`kernel.bpf_stats_enabled`, via `BPF_ENABLE_STATS`).
use std::{collections::HashMap, os::fd::OwnedFd};

use anyhow::{Context as _, Result};

/// Statistics stay on while this is held (the kernel counts holders).
pub struct StatsEnabled(#[expect(dead_code, reason = "held for its Drop")] OwnedFd);

/// Turns on run-time statistics for every BPF program until the guard is dropped.
pub fn enable() -> Result<StatsEnabled> {
    let fd = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .context("cannot enable BPF run-time statistics (BPF_ENABLE_STATS, Linux 5.8+)")?;
    Ok(StatsEnabled(fd))
}

/// Cumulative run time and run count of one program.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunStats {
    pub run_time_ns: u64,
    pub run_count: u64,
}

impl RunStats {
    /// What ran between `earlier` and `self`.
    #[must_use]
    pub fn since(self, earlier: RunStats) -> RunStats {
        RunStats {
            run_time_ns: self.run_time_ns.saturating_sub(earlier.run_time_ns),
            run_count: self.run_count.saturating_sub(earlier.run_count),
        }
    }

    /// Nanoseconds per invocation (`None` if it never ran).
    #[must_use]
    pub fn ns_per_run(self) -> Option<f64> {
        #[expect(clippy::cast_precision_loss, reason = "an average")]
        (self.run_count > 0).then(|| self.run_time_ns as f64 / self.run_count as f64)
    }
}

/// The statistics of the programs with these ids.
#[must_use]
pub fn read(ids: &[u32]) -> HashMap<u32, RunStats> {
    let mut found = HashMap::new();
    for info in aya::programs::loaded_programs() {
        let Ok(info) = info else { continue }; // a program unloaded during the walk
        if ids.contains(&info.id()) {
            let run_time_ns = u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX);
            found.insert(
                info.id(),
                RunStats {
                    run_time_ns,
                    run_count: info.run_count(),
                },
            );
        }
    }
    found
}

/// Size of a loaded program: what the verifier walked and what the JIT emitted.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProgramSize {
    pub verified_insns: Option<u32>,
    pub jited_bytes: u32,
}

/// The sizes of the programs with these ids.
#[must_use]
pub fn sizes(ids: &[u32]) -> HashMap<u32, ProgramSize> {
    aya::programs::loaded_programs()
        .flatten()
        .filter(|info| ids.contains(&info.id()))
        .map(|info| {
            (
                info.id(),
                ProgramSize {
                    verified_insns: info.verified_instruction_count(),
                    jited_bytes: info.size_jitted(),
                },
            )
        })
        .collect()
}
