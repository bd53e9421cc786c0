//! The daemon under load: its memory and CPU while idle, `get` latency with many live sockets,
//! and its memory and CPU while loopback TCP connections churn.
use std::{
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};
use serde::Serialize;

use crate::{
    daemon::BenchDaemon,
    procstat,
    sockets::{self, LiveSockets},
    stats::Spread,
};

const MIB: f64 = 1024.0 * 1024.0;

#[expect(clippy::cast_precision_loss, reason = "MiB for people")]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB
}

#[derive(Debug, Serialize)]
pub struct Idle {
    pub seconds: f64,
    pub cpu_seconds: f64,
    pub rss_mib: f64,
}

/// The daemon's CPU and memory over `duration` of doing nothing.
pub fn idle(daemon: &BenchDaemon, duration: Duration) -> Result<Idle> {
    let before = procstat::sample(daemon.pid())?;
    thread::sleep(duration);
    let after = procstat::sample(daemon.pid())?;
    Ok(Idle {
        seconds: duration.as_secs_f64(),
        cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        rss_mib: mib(after.rss_bytes),
    })
}

#[derive(Debug, Serialize)]
pub struct GetLatency {
    /// Live sockets with an entry in the kernel (as `status` counts them).
    pub live_sockets: u64,
    /// `sockstats get --json`, the whole command (process start included), milliseconds.
    pub cli_ms: Option<Spread>,
    /// One `get` over an open client connection, milliseconds.
    pub client_ms: Option<Spread>,
    /// The daemon's resident memory after these queries.
    pub daemon_rss_mib: f64,
}

fn millis(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// `get` latency with `count` live sockets held by this process, `repeat` times each way.
pub fn get_latency(
    daemon: &BenchDaemon,
    bin_dir: &Path,
    live: &mut LiveSockets,
    count: usize,
    repeat: usize,
) -> Result<GetLatency> {
    live.grow_to(count)?;
    let live_sockets = daemon.client()?.status()?.live_sockets;
    let mut cli = Vec::new();
    for attempt in 0..=repeat {
        let start = Instant::now();
        let out = Command::new(bin_dir.join("sockstats"))
            .arg("--socket")
            .arg(&daemon.socket)
            .args(["get", "--json"])
            .output()
            .context("run sockstats get --json")?;
        let elapsed = millis(start);
        if !out.status.success() {
            bail!(
                "sockstats get --json failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if attempt > 0 {
            cli.push(elapsed); // the first one warms caches up
        }
    }
    let mut client = daemon.client()?;
    let mut direct = Vec::new();
    for attempt in 0..=repeat {
        let start = Instant::now();
        client.get().context("get")?;
        if attempt > 0 {
            direct.push(millis(start));
        }
    }
    Ok(GetLatency {
        live_sockets,
        cli_ms: Spread::of(&cli),
        client_ms: Spread::of(&direct),
        daemon_rss_mib: mib(procstat::sample(daemon.pid())?.rss_bytes),
    })
}

#[derive(Debug, Serialize)]
pub struct Churn {
    pub connections: usize,
    pub seconds: f64,
    pub connections_per_second: f64,
    pub daemon_cpu_seconds: f64,
    /// Daemon CPU per second of churn, percent of one CPU.
    pub daemon_cpu_percent: f64,
    /// Highest daemon RSS sampled every 50 ms during the churn.
    pub daemon_max_rss_mib: f64,
}

/// Opens and closes `connections` loopback TCP connections while sampling the daemon.
pub fn churn(daemon: &BenchDaemon, connections: usize) -> Result<Churn> {
    let pid = daemon.pid();
    let before = procstat::sample(pid)?;
    let max_rss = Arc::new(AtomicU64::new(before.rss_bytes));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (max_rss, done) = (Arc::clone(&max_rss), Arc::clone(&done));
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(sample) = procstat::sample(pid) {
                    max_rss.fetch_max(sample.rss_bytes, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let elapsed = sockets::churn_tcp(connections, 1000);
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler thread");
    let seconds = elapsed?.as_secs_f64();
    let after = procstat::sample(pid)?;
    let cpu = after.cpu_seconds - before.cpu_seconds;
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    Ok(Churn {
        connections,
        seconds,
        connections_per_second: connections as f64 / seconds,
        daemon_cpu_seconds: cpu,
        daemon_cpu_percent: 100.0 * cpu / seconds,
        daemon_max_rss_mib: mib(max_rss.load(Ordering::Relaxed).max(after.rss_bytes)),
    })
}

/// The daemon's peak resident memory since it started (`VmHWM`).
pub fn peak_rss_mib(daemon: &BenchDaemon) -> Result<f64> {
    Ok(mib(procstat::sample(daemon.pid())?.peak_rss_bytes))
}
