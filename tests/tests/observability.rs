//! The Prometheus endpoint: it parses with a real Prometheus text parser and its counters
//! equal `get`.
use std::{collections::BTreeMap, io::Write as _};

use sockstats_tests::{
    http::{free_loopback_port, http_get},
    traffic::{tcp_pair, tcp_send, udp_pair, udp_send},
    Harness,
};

fn value(sample: &prometheus_parse::Sample) -> u64 {
    match sample.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "byte counts"
            )]
            let bytes = v as u64;
            bytes
        }
        _ => panic!("unexpected sample {sample:?}"),
    }
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn metrics_parse_and_equal_get() {
    let port = free_loopback_port();
    let address = format!("127.0.0.1:{port}");
    let harness = Harness::start_with_args("metrics", &["--metrics", &address]);
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(false);
    let (a, b) = udp_pair(true);
    let mut control = daemon.client();
    control.label(&client, "metric-tcp").expect("label");
    control.label(&a, "metric-udp").expect("label");
    tcp_send(&client, &server, 654_321, 4096);
    tcp_send(&server, &client, 1234, 1234);
    let datagrams = udp_send(&a, &b, 300);
    drop((client, server));

    let (status, body) = http_get(daemon, port, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("valid exposition");
    // The parser skips lines it does not understand: every sample line must have become a sample.
    let sample_lines = body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(scrape.samples.len(), sample_lines, "{body}");
    let mut tx: BTreeMap<String, u64> = BTreeMap::new();
    let mut rx: BTreeMap<String, u64> = BTreeMap::new();
    for sample in &scrape.samples {
        let label = sample.labels.get("label").unwrap_or_default().to_owned();
        match sample.metric.as_str() {
            "sockstats_tx_bytes_total" => *tx.entry(label).or_default() += value(sample),
            "sockstats_rx_bytes_total" => *rx.entry(label).or_default() += value(sample),
            _ => {}
        }
    }
    let get = daemon.get().stats;
    for (label, counts) in get.iter().filter(|(label, _)| *label != "scraper") {
        assert_eq!(
            tx.get(label).copied().unwrap_or(0),
            counts.tx_bytes,
            "tx of {label}"
        );
        assert_eq!(
            rx.get(label).copied().unwrap_or(0),
            counts.rx_bytes,
            "rx of {label}"
        );
    }
    assert_eq!(tx["metric-tcp"], 654_321);
    assert_eq!(rx["metric-tcp"], 1234);
    assert_eq!(tx["metric-udp"], datagrams);
    let attached = scrape
        .samples
        .iter()
        .find(|s| s.metric == "sockstats_programs_attached")
        .expect("health");
    assert_eq!(value(attached), daemon.expected_programs() as u64);
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "sockstats_kernel_events_total"
            && s.labels.get("event") == Some("sockets_map_full")));
    assert!(scrape.docs.contains_key("sockstats_tx_bytes_total"));

    let (status, _) = http_get(daemon, port, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn the_stats_log_deltas_sum_to_the_totals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stats.log");
    let log_arg = log.display().to_string();
    let mut harness = Harness::start_with_args(
        "stats-log",
        &["--stats-log", &log_arg, "--stats-log-interval", "1"],
    );
    let (client, server) = tcp_pair(true);
    harness
        .daemon
        .client()
        .label(&client, "logged")
        .expect("label");
    for bytes in [100_000, 200_000, 50_000] {
        tcp_send(&client, &server, bytes, 4096);
        std::thread::sleep(std::time::Duration::from_millis(1300));
    }
    tcp_send(&client, &server, 25_000, 4096);
    let totals = harness.daemon.get().stats;
    harness.daemon.stop(); // writes the last line, with the last burst

    let text = std::fs::read_to_string(&log).expect("read the stats log");
    let mut sums: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut logged_deltas = Vec::new();
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(
            value["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        assert!(
            value["duration_seconds"].as_f64().is_some_and(|d| d > 0.0),
            "{line}"
        );
        for (label, pair) in value["stats"].as_object().expect("stats") {
            let sum = sums.entry(label.clone()).or_default();
            sum.0 += pair[0].as_i64().expect("tx delta");
            sum.1 += pair[1].as_i64().expect("rx delta");
            if label == "logged" {
                logged_deltas.push(pair[0].as_i64().expect("tx delta"));
            }
        }
    }
    // Each line holds exactly the bursts of its interval: every running sum of the logged
    // deltas is a running sum of the bursts (a late tick may merge two), ending at the total.
    let burst_sums = [100_000, 300_000, 350_000, 375_000];
    let mut running = 0;
    for delta in &logged_deltas {
        running += delta;
        assert!(burst_sums.contains(&running), "{logged_deltas:?}:\n{text}");
    }
    assert!(
        logged_deltas.len() >= 3,
        "one line per interval with traffic:\n{text}"
    );
    assert_eq!(sums["logged"], (375_000, 0), "{text}");
    for (label, counts) in &totals {
        let (tx, rx) = sums.get(label).copied().unwrap_or_default();
        assert_eq!(
            (tx, rx),
            (
                i64::try_from(counts.tx_bytes).unwrap(),
                i64::try_from(counts.rx_bytes).unwrap()
            ),
            "{label}: {text}"
        );
    }
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn watch_prints_plain_blocks_off_a_terminal_and_quits_on_q_on_one() {
    let harness = Harness::start("watch");
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(false);
    daemon.client().label(&client, "watched").expect("label");
    tcp_send(&client, &server, 77_777, 7777);

    let out = daemon.cli(&["watch", "--count", "2", "--interval", "0.2", "--bytes"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("TX RATE").count(), 2, "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("watched") && l.contains("77777"))
            .count(),
        2,
        "{text}"
    );

    // On a terminal (script(1) gives it one), q quits and the terminal is restored.
    let command = format!(
        "{} --socket {} watch --interval 0.2",
        sockstats_tests::daemon::binary("sockstats").display(),
        daemon.socket.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run script(1)");
    std::thread::sleep(std::time::Duration::from_millis(800));
    child
        .stdin
        .as_mut()
        .expect("stdin")
        .write_all(b"q")
        .expect("press q");
    let started = std::time::Instant::now();
    let output = child.wait_with_output().expect("watch ends");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "q did not quit"
    );
    assert!(output.status.success(), "{output:?}");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(
        screen.contains("watched") && screen.contains("\u{1b}[?1049l"),
        "{screen:?}"
    );
}

/// `kernel - payload` is within what the kernel counts for SYN and FIN (one byte each).
fn assert_within_syn_fin(label: &str, kernel: u64, payload: u64) {
    assert!(
        kernel >= payload && kernel - payload <= 2,
        "{label}: kernel counted {kernel}, sockstats {payload}"
    );
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn validation_matches_get_for_open_and_closed_tcp_sockets() {
    let harness = Harness::start_with_args("validation", &["--validate-closed"]);
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(false);
    let (client6, server6) = tcp_pair(true);
    let mut control = daemon.client();
    control.label(&client, "checked-client").expect("label");
    control.label(&server, "checked-server").expect("label");
    control.label(&client6, "checked-client").expect("label");
    tcp_send(&client, &server, 2 * 1024 * 1024, 65536);
    tcp_send(&server, &client, 4321, 4321);
    tcp_send(&client6, &server6, 99_999, 1000);

    let get = daemon.get().stats;
    let open = control.get_validation().expect("get_validation");
    assert!(open.live_tcp_sockets >= 4, "{open:?}");
    assert!(open.covers.contains("TCP"), "{open:?}");
    for label in ["checked-client", "checked-server"] {
        // Open sockets: at most the SYN on top (one per connecting socket: two clients here).
        assert!(
            open.stats[label].tx_bytes >= get[label].tx_bytes
                && open.stats[label].tx_bytes - get[label].tx_bytes <= 2,
            "{label}: {open:?} vs {get:?}"
        );
        assert_eq!(open.stats[label].rx_bytes, get[label].rx_bytes, "{label}");
    }

    if daemon.states_by_cookie() {
        // A socket's state is gone at its release, before TCP_CLOSE: closed sockets cannot be
        // validated, and validation says so.
        assert!(!open.closed_covered, "{open:?}");
        assert!(open.covers.contains("--validate-closed"), "{open:?}");
        assert!(daemon.log().contains("--validate-closed is ignored"));
        return;
    }
    drop((client, server, client6, server6));
    // The kernel reports each socket's final counters when it destroys it, just after close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let closed = loop {
        let reply = control.get_validation().expect("get_validation");
        // Four connection sockets and the two listeners (tracked too, with no bytes).
        if reply.closed_tcp_sockets >= 6 || std::time::Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(closed.closed_tcp_sockets >= 6, "{closed:?}");
    assert!(closed.closed_covered, "{closed:?}");
    assert_eq!(closed.notifications_lost, 0, "{closed:?}");
    let get = daemon.get().stats;
    let server_payload = get["checked-server"];
    assert_within_syn_fin(
        "server tx",
        closed.stats["checked-server"].tx_bytes,
        server_payload.tx_bytes,
    );
    assert_within_syn_fin(
        "server rx",
        closed.stats["checked-server"].rx_bytes,
        server_payload.rx_bytes,
    );
    // Two client sockets: up to SYN + FIN each.
    let client_payload = get["checked-client"];
    let client_kernel = closed.stats["checked-client"];
    assert!(
        client_kernel.tx_bytes >= client_payload.tx_bytes
            && client_kernel.tx_bytes - client_payload.tx_bytes <= 4,
        "{closed:?} vs {get:?}"
    );
    assert!(
        client_kernel.rx_bytes >= client_payload.rx_bytes
            && client_kernel.rx_bytes - client_payload.rx_bytes <= 2,
        "{closed:?} vs {get:?}"
    );

    let out = daemon.cli(&["get", "--validation", "--json"]);
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("get --validation --json is JSON");
    assert_eq!(
        json["stats"]["checked-server"]["tx_bytes"],
        closed.stats["checked-server"].tx_bytes
    );
}

/// Is the program on every TCP state change (`inet_sock_set_state`) attached?
fn close_hook_attached(daemon: &sockstats_tests::daemon::TestDaemon) -> bool {
    daemon
        .client()
        .status()
        .expect("status")
        .programs
        .iter()
        .any(|p| p.name == "inet_sock_set_state" && p.prog_id.is_some())
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn validation_costs_nothing_until_asked_for() {
    let harness = Harness::start("validation-off");
    let daemon = &harness.daemon;
    // Without --validate-closed the program on TCP state changes is not attached, so the
    // kernel does no work for validation when sockets change state or close (where states are
    // kept by cookie it is: the backstop that deletes states at TCP_CLOSE).
    assert_eq!(close_hook_attached(daemon), daemon.states_by_cookie());
    let (client, server) = tcp_pair(false);
    let mut control = daemon.client();
    control.label(&client, "live-only").expect("label");
    tcp_send(&client, &server, 100_000, 10_000);
    let live = control.get_validation().expect("get_validation");
    assert!(!live.closed_covered, "{live:?}");
    assert!(live.covers.contains("--validate-closed"), "{live:?}");
    let get = daemon.get().stats;
    assert!(
        live.stats["live-only"].tx_bytes >= get["live-only"].tx_bytes
            && live.stats["live-only"].tx_bytes - get["live-only"].tx_bytes <= 1,
        "{live:?} vs {get:?}"
    );
    drop((client, server));
    // Once the kernel destroyed the closed sockets they are in no dump, and nothing followed
    // their destruction.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let after = loop {
        let reply = control.get_validation().expect("get_validation");
        if reply.stats["live-only"].tx_bytes == 0 || std::time::Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(after.stats["live-only"].tx_bytes, 0, "{after:?}");
    assert_eq!(after.closed_tcp_sockets, 0, "{after:?}");
    let out = daemon.cli(&["get", "--validation"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--validate-closed"), "{text}");

    drop(harness);

    // With it, the program is attached.
    let harness = Harness::start_with_args("validation-on", &["--validate-closed"]);
    assert!(close_hook_attached(&harness.daemon));
}
