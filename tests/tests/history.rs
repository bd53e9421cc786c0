//! The usage history on the real kernel: labeled loopback traffic lands in the buckets of now,
//! and every label's history sums to `get` after a `kill -9` in the middle of a stream and a
//! restart; a damaged history file leaves accounting intact and is left as it was.
use std::{
    collections::BTreeMap,
    fs, thread,
    time::{Duration, Instant, SystemTime},
};

use sockstats_common::protocol::{ByteCounts, HistoryQuery, HistoryReply, Period};
use sockstats_tests::{
    history::{bucket_sums, wait_for_a_recording},
    traffic::{tcp_pair, tcp_send, Stream},
    Harness, TestDaemon,
};

const MIB: usize = 1024 * 1024;

/// Every bucket of `period` there is.
fn history(daemon: &TestDaemon, period: Period) -> HistoryReply {
    daemon
        .client()
        .history(HistoryQuery {
            period,
            ..HistoryQuery::default()
        })
        .expect("history")
}

/// Each label's bytes summed over every bucket of `period`.
fn sums(daemon: &TestDaemon, period: Period) -> BTreeMap<String, ByteCounts> {
    bucket_sums(&history(daemon, period))
}

/// The labels of `get` with bytes.
fn totals(daemon: &TestDaemon) -> BTreeMap<String, ByteCounts> {
    daemon
        .get()
        .stats
        .into_iter()
        .filter(|(_, counts)| *counts != ByteCounts::default())
        .collect()
}

/// Waits (up to 15 s) until the history of every label sums to `get`; returns the totals.
fn wait_until_history_is_get(daemon: &TestDaemon) -> BTreeMap<String, ByteCounts> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let totals = totals(daemon);
        let sums = sums(daemon, Period::FiveMinutes);
        if sums == totals {
            return totals;
        }
        assert!(
            Instant::now() < deadline,
            "history {sums:?} never summed to get {totals:?}:\n{}",
            daemon.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn labeled_traffic_lands_in_buckets_and_history_sums_to_get_across_kill_9_and_restart() {
    let mut harness = Harness::start_with_args("history-sums", &["--history-interval", "1"]);
    let daemon = &mut harness.daemon;
    wait_for_a_recording(daemon, Duration::from_secs(10));
    let (client, server) = tcp_pair(false);
    let mut control = daemon.client();
    control.label(&client, "history-up").expect("label");
    control.label(&server, "history-down").expect("label");
    drop(control);
    tcp_send(&client, &server, 3 * MIB + 17, 64 * 1024);
    let before = SystemTime::now();
    let totals = wait_until_history_is_get(daemon);
    let up = ByteCounts {
        tx_bytes: 3 * MIB as u64 + 17,
        rx_bytes: 0,
    };
    assert_eq!(totals["history-up"], up);
    // The bytes are in the bucket of now, in every period, and the periods agree.
    let now = humantime::format_rfc3339_seconds(before).to_string();
    for period in Period::ALL {
        let reply = history(daemon, period);
        let bucket = reply
            .buckets
            .iter()
            .find(|bucket| bucket.stats.contains_key("history-up"))
            .expect("a bucket with the label");
        assert!(
            bucket.start <= now && now < bucket.end,
            "{period:?}: {} – {} does not hold {now}",
            bucket.start,
            bucket.end
        );
        assert_eq!(sums(daemon, period), totals, "{period:?}");
    }

    // kill -9 in the middle of a stream; the kernel goes on counting while the daemon is down.
    let stream = Stream::start(&client, &server);
    thread::sleep(Duration::from_millis(1500));
    daemon.kill();
    thread::sleep(Duration::from_millis(1500));
    daemon.restart();
    thread::sleep(Duration::from_millis(1500));
    let (sent, received) = stream.finish();
    assert_eq!(sent, received);
    let totals = wait_until_history_is_get(daemon);
    assert_eq!(totals["history-up"].tx_bytes, up.tx_bytes + sent);
    assert_eq!(totals["history-down"].rx_bytes, up.tx_bytes + received);
    for period in Period::ALL {
        assert_eq!(sums(daemon, period), totals, "{period:?}");
    }
    // And once more after a clean restart.
    daemon.stop();
    daemon.restart();
    tcp_send(&server, &client, 12_345, 1000);
    let totals = wait_until_history_is_get(daemon);
    assert_eq!(totals["history-down"].tx_bytes, 12_345);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_damaged_history_file_leaves_accounting_intact_and_is_never_touched() {
    let mut harness = Harness::start_with_args("history-damaged", &["--history-interval", "1"]);
    let daemon = &mut harness.daemon;
    daemon.stop();
    let file = daemon.state_dir.join("history.sqlite");
    for leftover in ["history.sqlite-wal", "history.sqlite-shm"] {
        let _ = fs::remove_file(daemon.state_dir.join(leftover));
    }
    let garbage = b"not a database, somebody's notes\n".repeat(300);
    fs::write(&file, &garbage).expect("write garbage");
    daemon.restart();

    let (client, server) = tcp_pair(false);
    daemon
        .client()
        .label(&client, "still-counted")
        .expect("label");
    tcp_send(&client, &server, MIB + 1, 4096);
    assert_eq!(
        daemon.stats("still-counted"),
        ByteCounts {
            tx_bytes: MIB as u64 + 1,
            rx_bytes: 0
        }
    );
    thread::sleep(Duration::from_millis(2500));
    let status = daemon.client().status().expect("status");
    let health = status.history.expect("the daemon has a history");
    assert!(!health.recording, "{health:?}");
    let error = health.error.expect("an error");
    assert!(
        error.contains("is damaged or not a SQLite database") && error.contains("move it away"),
        "{error}"
    );
    let cli = daemon.cli(&["history"]);
    assert!(!cli.status.success());
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("sockstats: the usage history cannot be read: ")
            && stderr.contains("is damaged"),
        "{stderr}"
    );
    let status_text = String::from_utf8_lossy(&daemon.cli(&["status"]).stdout).into_owned();
    assert!(
        status_text.contains("history: NOT recording:"),
        "{status_text}"
    );
    let debug_text = String::from_utf8_lossy(&daemon.cli(&["debug"]).stdout).into_owned();
    assert!(
        debug_text.contains("history: NOT recording:"),
        "{debug_text}"
    );
    assert!(daemon.log().contains("is damaged or not a SQLite database"));
    assert_eq!(
        fs::read(&file).expect("read"),
        garbage,
        "the file is untouched"
    );

    // Moved away: the next recording starts a new history, and counting never stopped.
    fs::rename(&file, daemon.state_dir.join("history.sqlite.damaged")).expect("move away");
    // The recorder backs off while failing (up to a minute between tries).
    wait_for_a_recording(daemon, Duration::from_secs(70));
    tcp_send(&client, &server, 777, 777);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sums(daemon, Period::Hour)
        .get("still-counted")
        .map(|counts| counts.tx_bytes)
        != Some(777)
    {
        assert!(Instant::now() < deadline, "the new history never recorded");
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(daemon.stats("still-counted").tx_bytes, MIB as u64 + 1 + 777);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn metered_interfaces_filter_the_history_and_reset_forgets_a_label() {
    let (harness, dir) = Harness::start_with_config(
        "history-metered",
        "metered lo\nbilling-day 31\n",
        &["--history-interval", "1"],
    );
    let daemon = &harness.daemon;
    wait_for_a_recording(daemon, Duration::from_secs(10));
    let (client, server) = tcp_pair(false);
    daemon.client().label(&client, "metered-up").expect("label");
    daemon
        .client()
        .label(&server, "metered-down")
        .expect("label");
    tcp_send(&client, &server, 200_003, 1000);
    let totals = wait_until_history_is_get(daemon);
    let metered = |interfaces: Vec<String>| {
        let reply = daemon
            .client()
            .history(HistoryQuery {
                period: Period::Month,
                by: sockstats_common::protocol::HistoryBy::Interface,
                metered: true,
                interfaces,
                ..HistoryQuery::default()
            })
            .expect("history");
        let mut sum = 0i64;
        for bucket in &reply.buckets {
            assert_eq!(bucket.stats.keys().collect::<Vec<_>>(), ["lo"]);
            sum += bucket.stats["lo"].tx_bytes;
        }
        sum
    };
    let all_tx: u64 = totals.values().map(|counts| counts.tx_bytes).sum();
    assert_eq!(metered(Vec::new()), i64::try_from(all_tx).expect("fits"));
    assert_eq!(metered(vec!["eth0".to_owned()]), 0);
    let get = daemon.get();
    assert_eq!(
        get.current_interface_metered,
        get.current_interface.as_deref() == Some("lo")
    );

    let reset = daemon.cli(&["history", "reset", "--label", "metered-up"]);
    assert!(reset.status.success(), "{reset:?}");
    let sums = sums(daemon, Period::Day);
    assert!(!sums.contains_key("metered-up"), "{sums:?}");
    assert_eq!(sums["metered-down"], totals["metered-down"]);
    // The same as a chart (fonts-dejavu-core, installed by `cargo xtask test`).
    let png = dir.path().join("chart.png");
    let plotted = daemon.cli(&[
        "history",
        "--period",
        "day",
        "--plot",
        png.to_str().expect("utf-8"),
    ]);
    assert!(plotted.status.success(), "{plotted:?}");
    assert_eq!(&fs::read(&png).expect("the chart")[1..4], b"PNG");
    let json = daemon.cli(&["history", "--json", "--period", "day"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(value["period"], "day");
    assert_eq!(
        value["buckets"][0]["stats"]["metered-down"]["rx_bytes"],
        200_003
    );
}
