//! CPU time and memory of a process, from /proc.
use std::fs;

use anyhow::{Context as _, Result};

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// User plus system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// Peak resident set size (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
}

fn clock_ticks_per_second() -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "ticks per second is about 100")]
    crate::sys::clock_ticks_per_second().map_or(100.0, |ticks| ticks as f64)
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reads `pid`'s CPU time and memory.
pub fn sample(pid: u32) -> Result<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `fields[0]` is field 3.
    let ticks: u64 = fields
        .get(11..13)
        .context("short /proc/PID/stat")?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    #[expect(clippy::cast_precision_loss, reason = "CPU ticks fit an f64 exactly")]
    Ok(ProcSample {
        cpu_seconds: ticks as f64 / clock_ticks_per_second(),
        rss_bytes: status_kib(&status, "VmRSS:").unwrap_or(0) * 1024,
        peak_rss_bytes: status_kib(&status, "VmHWM:").unwrap_or(0) * 1024,
    })
}
