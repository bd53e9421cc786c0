//! A real load generator: iperf3 over loopback with 1 KiB writes (`iperf3 -s` on a port of
//! its own, `iperf3 -c 127.0.0.1 -l 1024 -t SECONDS --json`), both as children of the bench in
//! its accounted cgroup. The rate is the receiver's bits per second from the JSON, as bytes.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context as _, Result};

use crate::{
    cgroup::BenchCgroup,
    server::{self, Server},
    workload::Timing,
};

/// Where Debian installs iperf3 (`cargo xtask bench` does).
pub fn find() -> Result<PathBuf, &'static str> {
    server::installed(&["/usr/bin/iperf3"]).ok_or("iperf3 is not installed")
}

/// iperf3 takes whole seconds (`-t 0` would run until killed): the measurement rounded up, at
/// least one second, and the warm-up (`--omit`) rounded to the nearest second.
fn whole_seconds(timing: Timing) -> (u64, u64) {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a few seconds, positive"
    )]
    let whole = |seconds: f64, at_least: f64| seconds.max(at_least) as u64;
    (
        whole(timing.measure.as_secs_f64().ceil(), 1.0),
        whole(timing.warmup.as_secs_f64().round(), 0.0),
    )
}

/// The receiver's bits per second over the test (omitted seconds excluded), from iperf3's JSON.
fn received_bits_per_second(json: &str) -> Result<f64> {
    let value: serde_json::Value = serde_json::from_str(json).context("iperf3 printed no JSON")?;
    if let Some(error) = value.get("error").and_then(serde_json::Value::as_str) {
        bail!("iperf3: {error}");
    }
    value
        .pointer("/end/sum_received/bits_per_second")
        .and_then(serde_json::Value::as_f64)
        .context("no end.sum_received.bits_per_second in iperf3's JSON")
}

/// Bytes per second iperf3 moves over loopback with `write_size`-byte writes; the server is
/// started for this measurement and stopped after it.
pub fn bytes_per_second(
    iperf3: &Path,
    cgroup: &BenchCgroup,
    write_size: usize,
    timing: Timing,
) -> Result<f64> {
    let dir = tempfile::Builder::new()
        .prefix("sockstats-bench-iperf3-")
        .tempdir()
        .context("tempdir")?;
    let port = server::free_port()?;
    let port_arg = port.to_string();
    let server = Server::start(
        Command::new(iperf3).args(["-s", "-B", "127.0.0.1", "-p", &port_arg]),
        cgroup,
        &dir.path().join("server.out"),
        port,
    )?;
    let (seconds, omit) = whole_seconds(timing);
    let (status, json) = server::run_client(
        Command::new(iperf3)
            .args(["-c", "127.0.0.1", "-p", &port_arg, "--json"])
            .args(["-l", &write_size.to_string()])
            .args(["-t", &seconds.to_string()])
            .args(["-O", &omit.to_string()]),
        cgroup,
        &dir.path().join("client.json"),
        Duration::from_secs(seconds + omit + 30),
    )?;
    server.stop()?;
    let bits = received_bits_per_second(&json)?;
    if !status.success() {
        bail!("iperf3 -c exited with {status}:\n{json}");
    }
    Ok(bits / 8.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_receivers_rate_and_refuses_an_error() {
        let json = r#"{"start": {}, "end": {"sum_sent": {"bits_per_second": 2.0e9},
            "sum_received": {"bits_per_second": 1.5e9}}}"#;
        assert!((received_bits_per_second(json).unwrap() - 1.5e9).abs() < 1.0);
        let failed = r#"{"start": {}, "end": {}, "error": "unable to connect to server"}"#;
        let error = received_bits_per_second(failed).unwrap_err().to_string();
        assert!(error.contains("unable to connect"), "{error}");
    }

    #[test]
    fn seconds_are_whole_and_never_zero() {
        let timing = |warmup, measure| Timing {
            warmup: Duration::from_secs_f64(warmup),
            measure: Duration::from_secs_f64(measure),
        };
        assert_eq!(whole_seconds(timing(0.04, 0.2)), (1, 0));
        assert_eq!(whole_seconds(timing(0.2, 1.0)), (1, 0));
        assert_eq!(whole_seconds(timing(1.0, 5.0)), (5, 1));
        assert_eq!(whole_seconds(timing(0.5, 2.5)), (3, 1));
    }
}
