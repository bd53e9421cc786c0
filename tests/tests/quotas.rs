//! Quotas on the real kernel: labeled loopback bytes past a quota's warning threshold and past
//! its limit run the quota command exactly once each, with the crossing in its environment
//! (used bytes as `history` has them); `sockstats quotas --json` and the metric agree; neither
//! a `kill -9` nor a restart fires anything again.
use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    thread,
    time::{Duration, Instant, SystemTime},
};

use sockstats_common::protocol::{HistoryQuery, Period};
use sockstats_tests::{
    http::{free_loopback_port, http_get},
    traffic::{tcp_pair, tcp_send},
    Harness, TestDaemon,
};

const LABEL: &str = "quota-up";
const LIMIT: u64 = 100 * 1024;
const QUOTA: &str = "quota quota-up interface=lo day 100KiB warn=50%";

/// The environment of every run of the quota command so far, oldest first.
fn runs(dir: &Path) -> Vec<BTreeMap<String, String>> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("runs dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "env"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            fs::read_to_string(path)
                .expect("run file")
                .lines()
                .filter_map(|line| line.split_once('='))
                .filter(|(name, _)| name.starts_with("SOCKSTATS_"))
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect()
        })
        .collect()
}

/// Waits (up to 15 s) until the command has run `count` times, then 3 s (three recordings)
/// more to see that it runs no more.
fn wait_for_runs(daemon: &TestDaemon, dir: &Path, count: usize) -> Vec<BTreeMap<String, String>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while runs(dir).len() < count {
        assert!(
            Instant::now() < deadline,
            "the quota command ran {} times, not {count}:\n{}",
            runs(dir).len(),
            daemon.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_secs(3));
    let runs = runs(dir);
    assert_eq!(runs.len(), count, "{runs:#?}\n{}", daemon.log());
    runs
}

/// The label's payload bytes in today's bucket of the history.
fn history_today(daemon: &TestDaemon) -> u64 {
    let reply = daemon
        .client()
        .history(HistoryQuery {
            period: Period::Day,
            labels: vec![LABEL.to_owned()],
            ..HistoryQuery::default()
        })
        .expect("history");
    let bucket = reply.buckets.last().expect("a bucket today");
    let counts = &bucket.stats[LABEL];
    u64::try_from(counts.tx_bytes + counts.rx_bytes).expect("no negative use")
}

/// `sockstats quotas --json`'s one quota.
fn quotas_json(daemon: &TestDaemon) -> serde_json::Value {
    let out = daemon.cli(&["quotas", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let quotas = reply["quotas"].as_array().expect("quotas").clone();
    assert_eq!(quotas.len(), 1, "{reply}");
    quotas[0].clone()
}

/// `sockstats_quota_used_ratio` of the quota on the metrics endpoint. Read off the line
/// itself: `prometheus-parse` drops a label whose value holds `=`, as the quota's name does.
fn metric(daemon: &TestDaemon, port: u16) -> f64 {
    let (status, body) = http_get(daemon, port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(
        body.contains("# TYPE sockstats_quota_used_ratio gauge\n"),
        "{body}"
    );
    let series = format!(
        "sockstats_quota_used_ratio{{quota=\"{QUOTA}\",label=\"{LABEL}\",interface=\"lo\",period=\"day\"}} "
    );
    let lines: Vec<&str> = body
        .lines()
        .filter(|line| line.starts_with("sockstats_quota_used_ratio"))
        .collect();
    assert_eq!(lines.len(), 1, "{body}");
    lines[0]
        .strip_prefix(&series)
        .unwrap_or_else(|| panic!("{:?} is not {series:?}", lines[0]))
        .parse()
        .expect("a number")
}

#[expect(clippy::cast_precision_loss, reason = "test values are small")]
fn ratio(used: u64) -> f64 {
    used as f64 / LIMIT as f64
}

/// Checks one run's environment against the crossing it should be.
fn check_run(run: &BTreeMap<String, String>, threshold: &str, used: u64, today: &str) {
    let expected = [
        ("SOCKSTATS_QUOTA", QUOTA.to_owned()),
        ("SOCKSTATS_LABEL", LABEL.to_owned()),
        ("SOCKSTATS_INTERFACE", "lo".to_owned()),
        ("SOCKSTATS_PERIOD", "day".to_owned()),
        ("SOCKSTATS_PERIOD_START", today.to_owned()),
        ("SOCKSTATS_THRESHOLD", threshold.to_owned()),
        ("SOCKSTATS_USED_BYTES", used.to_string()),
        ("SOCKSTATS_LIMIT_BYTES", LIMIT.to_string()),
        ("SOCKSTATS_USED_RATIO", format!("{:.6}", ratio(used))),
        ("SOCKSTATS_DIRECTION", "both".to_owned()),
        ("SOCKSTATS_METERED", "0".to_owned()),
        ("SOCKSTATS_WARN_PERCENT", "50".to_owned()),
    ];
    for (name, value) in expected {
        assert_eq!(run.get(name), Some(&value), "{name} in {run:#?}");
    }
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn the_quota_command_runs_once_per_crossing_and_never_again_after_kill_9_or_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runs_dir = dir.path().join("runs");
    fs::create_dir(&runs_dir).expect("runs dir");
    // Each run writes its environment to a file named by when it ran, so they sort.
    let command = dir.path().join("alert");
    fs::write(
        &command,
        format!(
            "#!/bin/sh\nrun=$(mktemp {dir}/tmp.XXXXXX)\nenv > \"$run\"\nmv \"$run\" \"{dir}/$(date +%s%N).env\"\n",
            dir = runs_dir.display()
        ),
    )
    .expect("write the command");
    fs::set_permissions(&command, fs::Permissions::from_mode(0o755)).expect("chmod");
    let config = dir.path().join("sockstats.conf");
    fs::write(
        &config,
        format!("{QUOTA}\nquota-command {}\n", command.display()),
    )
    .expect("write the config");
    let port = free_loopback_port();
    let address = format!("127.0.0.1:{port}");
    let config_arg = config.display().to_string();
    let mut harness = Harness::start_with_args(
        "quotas",
        &[
            "--history-interval",
            "1",
            "--config",
            &config_arg,
            "--metrics",
            &address,
        ],
    );
    let daemon = &mut harness.daemon;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let today = humantime::format_rfc3339_seconds(
        SystemTime::UNIX_EPOCH + Duration::from_secs(now - now % 86_400),
    )
    .to_string();
    // Let the first recording start the history from the kernel's totals.
    thread::sleep(Duration::from_secs(2));
    let (client, server) = tcp_pair(false);
    daemon.client().label(&client, LABEL).expect("label");

    // Past 50 %: one write, so one recording sees all of it.
    tcp_send(&client, &server, 60_000, 60_000);
    let runs = wait_for_runs(daemon, &runs_dir, 1);
    assert_eq!(history_today(daemon), 60_000);
    check_run(&runs[0], "warn", 60_000, &today);
    let quota = quotas_json(daemon);
    assert_eq!(quota["quota"], QUOTA);
    assert_eq!(quota["used_bytes"], 60_000);
    assert_eq!(quota["limit_bytes"], LIMIT);
    assert_eq!(quota["state"], "warn");
    assert_eq!(quota["period_start"], today.as_str());
    assert_eq!(quota["last_fired"]["threshold"], "warn");
    assert_eq!(quota["used_ratio"].as_f64(), Some(ratio(60_000)));
    assert!((metric(daemon, port) - ratio(60_000)).abs() < 1e-12);

    // Past the limit.
    tcp_send(&client, &server, 50_000, 50_000);
    let runs = wait_for_runs(daemon, &runs_dir, 2);
    assert_eq!(history_today(daemon), 110_000);
    check_run(&runs[1], "limit", 110_000, &today);
    let quota = quotas_json(daemon);
    assert_eq!(
        (quota["used_bytes"].as_u64(), quota["state"].as_str()),
        (Some(110_000), Some("over"))
    );
    assert_eq!(quota["last_fired"]["threshold"], "limit");
    assert!((metric(daemon, port) - ratio(110_000)).abs() < 1e-12);
    let table = daemon.cli(&["quotas"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|line| line.starts_with(QUOTA) && line.contains("over")),
        "{text}"
    );

    // kill -9, more bytes while it is down and after: nothing fires again today.
    daemon.kill();
    tcp_send(&client, &server, 1000, 1000);
    daemon.restart();
    tcp_send(&client, &server, 1000, 1000);
    wait_for_runs(daemon, &runs_dir, 2);
    let quota = quotas_json(daemon);
    assert_eq!(quota["used_bytes"], 112_000, "{quota}");
    daemon.stop();
    daemon.restart();
    tcp_send(&client, &server, 1000, 1000);
    wait_for_runs(daemon, &runs_dir, 2);
    assert_eq!(history_today(daemon), 113_000);
    assert_eq!(quotas_json(daemon)["used_bytes"], 113_000);
}
