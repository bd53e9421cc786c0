//! OTLP push (`sockstatsd --otlp-endpoint`): a receiver that decodes with the OpenTelemetry
//! project's own Python definitions gets the counters, and the last export equals
//! `sockstats get --interfaces --json` exactly; a collector that is down at first gets them
//! once it is up, and `sockstats debug` counts the failed tries; one that answers 400 gets
//! each export once, with no retries.
use std::{
    collections::BTreeMap,
    process::Command,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use sockstats_tests::{
    daemon::binary,
    http::free_loopback_port,
    otlp::{value, Receiver},
    traffic::{tcp_pair, tcp_send},
    Harness, TestDaemon,
};

const SENT: usize = 3 * 1024 * 1024 + 17;
const ANSWERED: usize = 40_000 + 3;

/// (SENT, ANSWERED) as the export's integers.
fn moved() -> (i64, i64) {
    (
        i64::try_from(SENT).expect("small"),
        i64::try_from(ANSWERED).expect("small"),
    )
}

fn now_nanos() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_nanos()).expect("before 2262")
}

fn start(name: &str, port: u16) -> Harness {
    let endpoint = format!("http://127.0.0.1:{port}/v1/metrics");
    Harness::start_with_args(
        name,
        &["--otlp-endpoint", &endpoint, "--otlp-interval", "1s"],
    )
}

/// Moves SENT bytes from a socket labeled `<prefix>-client` to one labeled
/// `<prefix>-server` and ANSWERED back, over loopback.
fn move_labeled_bytes(daemon: &TestDaemon, prefix: &str) {
    let (client, server) = tcp_pair(false);
    let mut control = daemon.client();
    control
        .label(&client, &format!("{prefix}-client"))
        .expect("label");
    control
        .label(&server, &format!("{prefix}-server"))
        .expect("label");
    tcp_send(&client, &server, SENT, 64 * 1024);
    tcp_send(&server, &client, ANSWERED, 1000);
}

fn json(daemon: &TestDaemon, args: &[&str]) -> Value {
    let output = daemon.cli(args);
    assert!(
        output.status.success(),
        "sockstats {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// The payload bytes per label on `lo`, as `sockstats get --interfaces --json` says.
fn get_on_lo(daemon: &TestDaemon, labels: &[String]) -> BTreeMap<String, (i64, i64)> {
    let reply = json(daemon, &["get", "--interfaces", "--json"]);
    labels
        .iter()
        .map(|label| {
            let stats = &reply["stats"][label];
            let tx = stats["tx_bytes_by_interface"]["lo"]
                .as_i64()
                .expect("tx on lo");
            let rx = stats["rx_bytes_by_interface"]["lo"]
                .as_i64()
                .expect("rx on lo");
            (label.clone(), (tx, rx))
        })
        .collect()
}

/// The same, as the export's `sockstats.payload.io` points say.
fn exported_on_lo(points: &[Value], labels: &[String]) -> BTreeMap<String, (i64, i64)> {
    labels
        .iter()
        .map(|label| {
            let on = |direction| {
                value(
                    points,
                    "sockstats.payload.io",
                    &[
                        ("sockstats.label", label),
                        ("network.interface.name", "lo"),
                        ("network.io.direction", direction),
                    ],
                )
            };
            (label.clone(), (on("transmit"), on("receive")))
        })
        .collect()
}

/// Waits for an export read after `after` (ns since the epoch); returns its points.
fn export_after(
    receiver: &Receiver,
    daemon: &TestDaemon,
    after: i64,
    within: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        if let Some((_, points)) = receiver.requests().into_iter().next_back() {
            if points
                .iter()
                .all(|p| p["time"].as_i64().is_some_and(|t| t > after))
            {
                return points;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no export read after the traffic within {within:?}; receiver:\n{}\ndaemon:\n{}",
            receiver.log(),
            daemon.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

fn labels(prefix: &str) -> Vec<String> {
    vec![format!("{prefix}-client"), format!("{prefix}-server")]
}

fn otlp_debug(daemon: &TestDaemon) -> Value {
    json(daemon, &["debug", "--json"])["otlp"].clone()
}

/// The exporter's `debug` state once its count `field` is at least `at_least` (within 15 s).
fn debug_once(daemon: &TestDaemon, field: &str, at_least: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let debug = otlp_debug(daemon);
        if debug[field].as_u64().is_some_and(|n| n >= at_least) {
            return debug;
        }
        assert!(
            Instant::now() < deadline,
            "{field} never reached {at_least}: {debug}\n{}",
            daemon.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn the_last_export_equals_get() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_loopback_port();
    let receiver = Receiver::start(port, dir.path());
    let before_start = now_nanos();
    let mut harness = start("otlp-push", port);
    let daemon = &harness.daemon;
    move_labeled_bytes(daemon, "otlp");
    let traffic_done = now_nanos();
    let points = export_after(&receiver, daemon, traffic_done, Duration::from_secs(10));

    let labels = labels("otlp");
    let exported = exported_on_lo(&points, &labels);
    assert_eq!(exported, get_on_lo(daemon, &labels));
    // And both are the bytes the test moved.
    let (sent, answered) = moved();
    assert_eq!(exported["otlp-client"], (sent, answered));
    assert_eq!(exported["otlp-server"], (answered, sent));

    for point in &points {
        assert_eq!(point["content_type"], "application/x-protobuf");
        assert_eq!(point["path"], "/v1/metrics");
        assert_eq!(point["resource"]["service.name"], "sockstatsd");
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        assert_eq!(point["resource"]["host.name"], host.trim());
        assert_eq!(point["resource"]["service.instance.id"], host.trim());
        if point["kind"] == "sum" {
            assert_eq!(point["monotonic"], true, "{point}");
            assert_eq!(point["temporality"], 2, "cumulative: {point}");
            // The counters began when this test's daemon made its pins.
            let start = point["start"].as_i64().expect("start");
            assert!(
                start >= before_start - 1_000_000_000 && start <= traffic_done,
                "{point}"
            );
        }
    }
    for metric in [
        "sockstats.overflow.io",
        "sockstats.kernel.events",
        "sockstats.sockets.live",
    ] {
        assert!(
            points.iter().any(|p| p["metric"] == metric),
            "{metric} missing"
        );
    }
    let debug = otlp_debug(daemon);
    assert_eq!(
        debug["endpoint"],
        format!("http://127.0.0.1:{port}/v1/metrics")
    );
    assert!(debug["sent"].as_u64().expect("sent") >= 1, "{debug}");
    assert_eq!(debug["failed"], 0, "{debug}");
    let text = daemon.cli(&["debug"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!(
            "otlp http://127.0.0.1:{port}/v1/metrics every 1 s: "
        )),
        "{text}"
    );

    // A restarted daemon keeps the pinned counters, and says they began when they did (the
    // pins' time), not when it started.
    let began = points[0]["start"].as_i64().expect("start");
    harness.daemon.stop();
    harness.daemon.restart();
    let restarted = now_nanos();
    let points = export_after(
        &receiver,
        &harness.daemon,
        restarted,
        Duration::from_secs(10),
    );
    assert_eq!(
        exported_on_lo(&points, &labels)["otlp-client"],
        (sent, answered)
    );
    let sums = points.iter().filter(|p| p["kind"] == "sum");
    assert!(sums.clone().count() > 0);
    for point in sums {
        assert_eq!(point["start"].as_i64(), Some(began), "{point}");
    }
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_collector_down_at_first_gets_the_totals_once_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_loopback_port();
    let harness = start("otlp-down", port);
    let daemon = &harness.daemon;
    move_labeled_bytes(daemon, "late");
    let traffic_done = now_nanos();

    // Nothing listens: every try is refused, counted and retried; accounting goes on.
    let debug = debug_once(daemon, "failed", 2);
    assert_eq!(debug["sent"], 0, "{debug}");
    assert!(debug["queued"].as_u64().expect("queued") >= 1, "{debug}");
    let error = debug["last_error"].as_str().expect("a last error");
    assert!(error.contains("refused"), "{error}");
    assert!(debug["last_error_at"].is_string(), "{debug}");
    let text = String::from_utf8_lossy(&daemon.cli(&["debug"]).stdout).into_owned();
    assert!(text.contains("otlp last error "), "{text}");
    assert!(
        daemon.log().contains("otlp: cannot export to"),
        "{}",
        daemon.log()
    );
    let labels = labels("late");
    assert_eq!(
        get_on_lo(daemon, &labels)["late-client"],
        moved(),
        "accounting went on"
    );

    let receiver = Receiver::start(port, dir.path());
    let points = export_after(&receiver, daemon, traffic_done, Duration::from_secs(20));
    assert_eq!(exported_on_lo(&points, &labels), get_on_lo(daemon, &labels));
    // The exports queued while it was down came too, oldest first.
    let requests = receiver.requests();
    assert!(requests.len() >= 2, "{} request(s)", requests.len());
    let times: Vec<i64> = requests
        .values()
        .map(|points| points[0]["time"].as_i64().expect("time"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
    let debug = otlp_debug(daemon);
    assert!(debug["sent"].as_u64().expect("sent") >= 2, "{debug}");
    assert!(debug["failed"].as_u64().expect("failed") >= 2, "{debug}");
    assert!(debug["last_success_at"].is_string(), "{debug}");
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_collector_that_refuses_is_not_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_loopback_port();
    let _receiver = Receiver::answering(port, dir.path(), 400);
    let harness = start("otlp-refused", port);
    let daemon = &harness.daemon;
    // A 400 is for good: each export is tried once and counted as refused; a retry would
    // only follow a failure (which `failed` counts).
    let debug = debug_once(daemon, "refused", 3);
    assert_eq!(debug["failed"], 0, "{debug}");
    assert_eq!(debug["sent"], 0, "{debug}");
    assert!(debug["queued"].as_u64().expect("queued") <= 1, "{debug}");
    let error = debug["last_error"].as_str().expect("a last error");
    assert!(
        error.contains("400 Bad Request") && error.contains("refused by the test"),
        "{error}"
    );
}

#[test]
#[ignore = "runs the built sockstatsd: cargo xtask test"]
fn a_bad_endpoint_refuses_to_start_with_one_line() {
    for (endpoint, says) in [
        (
            "https://127.0.0.1:4318/v1/metrics",
            "https is not supported yet",
        ),
        ("collector:4318", "not a URL"),
        ("http://:4318/v1/metrics", "no host"),
    ] {
        let output = Command::new(binary("sockstatsd"))
            .args(["--otlp-endpoint", endpoint])
            .output()
            .expect("run sockstatsd");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(says),
            "{endpoint}: {stderr}"
        );
    }
}
