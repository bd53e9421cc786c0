//! The usage history keeps the destination dimension, on real interfaces: a client namespace
//! the test makes, linked by veth to namespaces standing in for the internet
//! (`198.51.100.0/24`, `2001:db8:5::/64`), a private network (`10.77.0.0/24`, `fd00:77::/64`)
//! and the config's network `lab` (`10.88.0.0/16`, `2001:db8:88::/48`), and loopback for
//! `host`. Labeled TCP traffic of exact sizes, IPv4 and IPv6, lands in `history --by
//! destination` to the byte, per destination; the `--destination` filter, `top` and `get`
//! agree with it; an unknown destination is refused naming the known ones; and a `kill -9` in
//! the middle of streams to three destinations loses and doubles nothing in any of them.
use std::{
    collections::BTreeMap,
    net::TcpStream,
    thread,
    time::{Duration, Instant},
};

use sockstats_common::{
    client::Client,
    protocol::{
        ByteCounts, ErrorCode, HistoryBy, HistoryCounts, HistoryQuery, HistoryReply, Period,
    },
};
use sockstats_tests::{
    history::{bucket_sums, wait_for_a_recording},
    netns::{tcp_between, TestNetns, Topology},
    traffic::{tcp_send, Stream},
    Harness, TestDaemon,
};

const CONFIG: &str = "network lab 10.88.0.0/16 2001:db8:88::/48\n";

/// The label of the client ends (in the client namespace).
const NEAR: &str = "hdest-near";
/// The label of the server ends (in the namespace of each destination).
const FAR: &str = "hdest-far";

/// Payload bytes per key: a destination name (a label where said).
type Sums = BTreeMap<String, ByteCounts>;

/// A daemon recording every second, with [`CONFIG`] (removed with the returned guard), whose
/// history has started: bytes moved from now on are all history.
fn start(name: &str) -> (Harness, tempfile::TempDir) {
    let (harness, config) = Harness::start_with_config(name, CONFIG, &["--history-interval", "1"]);
    wait_for_a_recording(&harness.daemon, Duration::from_secs(10));
    (harness, config)
}

/// A TCP connection from the client namespace to `server` in `server_ns`, its client end
/// labeled [`NEAR`] and its server end [`FAR`].
fn labeled_connection(
    control: &mut Client,
    net: &Topology,
    server_ns: &TestNetns,
    server: &str,
) -> (TcpStream, TcpStream) {
    let (client, server) = tcp_between(&net.client, server_ns, server);
    control.label(&client, NEAR).expect("label the client end");
    control.label(&server, FAR).expect("label the server end");
    (client, server)
}

fn add(map: &mut Sums, destination: &str, tx: u64, rx: u64) {
    let counts = map.entry(destination.to_owned()).or_default();
    counts.tx_bytes += tx;
    counts.rx_bytes += rx;
}

fn total(map: &Sums) -> ByteCounts {
    map.values()
        .fold(ByteCounts::default(), |sum, counts| ByteCounts {
            tx_bytes: sum.tx_bytes + counts.tx_bytes,
            rx_bytes: sum.rx_bytes + counts.rx_bytes,
        })
}

fn without_zeros(map: Sums) -> Sums {
    map.into_iter()
        .filter(|(_, counts)| *counts != ByteCounts::default())
        .collect()
}

/// What `get --destinations` counts for `label` now, per destination.
fn get_by_destination(daemon: &TestDaemon, label: &str) -> Sums {
    let reply = daemon
        .client()
        .get_destinations(false, false)
        .expect("get_destinations");
    let mut map = Sums::new();
    if let Some(stats) = reply.stats.get(label) {
        for (destination, bytes) in &stats.tx_bytes_by_destination {
            add(&mut map, destination, *bytes, 0);
        }
        for (destination, bytes) in &stats.rx_bytes_by_destination {
            add(&mut map, destination, 0, *bytes);
        }
    }
    without_zeros(map)
}

fn history(daemon: &TestDaemon, query: HistoryQuery) -> HistoryReply {
    daemon.client().history(query).expect("history")
}

/// `history --by destination --label LABEL` over every bucket of `period`, summed.
fn history_by_destination(daemon: &TestDaemon, period: Period, label: &str) -> Sums {
    without_zeros(bucket_sums(&history(
        daemon,
        HistoryQuery {
            period,
            by: HistoryBy::Destination,
            labels: vec![label.to_owned()],
            ..HistoryQuery::default()
        },
    )))
}

/// Waits (up to 15 s) until the history of [`NEAR`] and [`FAR`] per destination is what
/// `get` counts for them; returns `get`'s (near, far).
fn wait_until_history_is_get(daemon: &TestDaemon) -> (Sums, Sums) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let get = (
            get_by_destination(daemon, NEAR),
            get_by_destination(daemon, FAR),
        );
        let recorded = (
            history_by_destination(daemon, Period::FiveMinutes, NEAR),
            history_by_destination(daemon, Period::FiveMinutes, FAR),
        );
        if recorded == get {
            return get;
        }
        assert!(
            Instant::now() < deadline,
            "history by destination {recorded:#?} never became get's {get:#?}:\n{}",
            daemon.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the CLI, which must succeed, and parses what it printed.
fn cli_json(daemon: &TestDaemon, args: &[&str]) -> serde_json::Value {
    let out = daemon.cli(args);
    assert!(
        out.status.success(),
        "sockstats {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// `sockstats history ARGS… --json`, summed over its buckets.
fn cli_history(daemon: &TestDaemon, args: &[&str]) -> Sums {
    let mut full = vec!["history", "--json"];
    full.extend_from_slice(args);
    let reply: HistoryReply =
        serde_json::from_value(cli_json(daemon, &full)).expect("history --json's shape");
    without_zeros(bucket_sums(&reply))
}

/// `sockstats top ARGS… --json`'s stats.
fn cli_top(daemon: &TestDaemon, args: &[&str]) -> Sums {
    let mut full = vec!["top", "--json"];
    full.extend_from_slice(args);
    let value = cli_json(daemon, &full);
    let stats: BTreeMap<String, HistoryCounts> =
        serde_json::from_value(value["stats"].clone()).expect("top --json's stats");
    let unsigned = |bytes: i64| u64::try_from(bytes).expect("no destination below zero");
    without_zeros(
        stats
            .into_iter()
            .map(|(key, counts)| {
                let counts = ByteCounts {
                    tx_bytes: unsigned(counts.tx_bytes),
                    rx_bytes: unsigned(counts.rx_bytes),
                };
                (key, counts)
            })
            .collect(),
    )
}

/// `history`/`top` of [`NEAR`] by destination.
const NEAR_BY_DESTINATION: [&str; 4] = ["--by", "destination", "--label", NEAR];

fn only<'a>(map: &Sums, destinations: impl IntoIterator<Item = &'a str>) -> Sums {
    destinations
        .into_iter()
        .map(|destination| (destination.to_owned(), map[destination]))
        .collect()
}

/// Every period's history of [`NEAR`] and [`FAR`] is `near` and `far` per destination, and
/// sums to their `get` totals and their history by label.
fn assert_history_is(daemon: &TestDaemon, near: &Sums, far: &Sums) {
    for period in Period::ALL {
        assert_eq!(
            history_by_destination(daemon, period, NEAR),
            *near,
            "{period:?}"
        );
        assert_eq!(
            history_by_destination(daemon, period, FAR),
            *far,
            "{period:?}"
        );
    }
    // The destinations sum to `get`'s totals of the label, and to its history by label.
    assert_eq!(daemon.stats(NEAR), total(near));
    assert_eq!(daemon.stats(FAR), total(far));
    let by_label = bucket_sums(&history(
        daemon,
        HistoryQuery {
            period: Period::Day,
            labels: vec![NEAR.to_owned(), FAR.to_owned()],
            ..HistoryQuery::default()
        },
    ));
    assert_eq!(by_label[NEAR], total(near));
    assert_eq!(by_label[FAR], total(far));
}

/// `sockstats history` and `top` say the same, as JSON and as a table.
fn assert_the_cli_agrees(daemon: &TestDaemon, near: &Sums, far: &Sums) {
    assert_eq!(cli_history(daemon, &NEAR_BY_DESTINATION), *near);
    assert_eq!(
        cli_history(
            daemon,
            &[&NEAR_BY_DESTINATION[..], &["--period", "5min"]].concat()
        ),
        *near
    );
    assert_eq!(cli_top(daemon, &NEAR_BY_DESTINATION), *near);
    assert_eq!(
        cli_top(daemon, &["--by", "destination", "--label", FAR]),
        *far
    );
    // The table has a row per destination, with exact counts under --bytes.
    let table = daemon.cli(&["top", "--by", "destination", "--label", NEAR, "--bytes"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{table:?}");
    assert!(text.contains("DESTINATION"), "{text}");
    for (destination, counts) in near {
        let row: Vec<&str> = text
            .lines()
            .find(|line| line.split_whitespace().next() == Some(destination.as_str()))
            .unwrap_or_else(|| panic!("no {destination} row in {text}"))
            .split_whitespace()
            .collect();
        assert_eq!(
            row[1..4],
            [
                counts.tx_bytes.to_string(),
                counts.rx_bytes.to_string(),
                (counts.tx_bytes + counts.rx_bytes).to_string()
            ],
            "{text}"
        );
    }
}

/// `--destination` keeps only that destination's bytes, whatever the rows are keyed by.
fn assert_the_destination_filter_keeps_only_its_bytes(
    daemon: &TestDaemon,
    near: &Sums,
    far: &Sums,
) {
    let internet = ["--destination", "internet"];
    assert_eq!(
        cli_history(daemon, &[&NEAR_BY_DESTINATION[..], &internet].concat()),
        only(near, ["internet"])
    );
    assert_eq!(
        cli_top(daemon, &[&NEAR_BY_DESTINATION[..], &internet].concat()),
        only(near, ["internet"])
    );
    let by_label = cli_history(
        daemon,
        &["--label", NEAR, "--label", FAR, "--destination", "internet"],
    );
    assert_eq!(
        by_label,
        Sums::from([
            (NEAR.to_owned(), near["internet"]),
            (FAR.to_owned(), far["internet"])
        ]),
        "by label, internet only"
    );
    // Repeated, it keeps each one named.
    assert_eq!(
        cli_history(
            daemon,
            &[
                &NEAR_BY_DESTINATION[..],
                &internet,
                &["--destination", "lab"]
            ]
            .concat()
        ),
        only(near, ["internet", "lab"])
    );
    assert_eq!(
        history_by_destination_of(daemon, &["host", "private"]),
        only(near, ["host", "private"])
    );
}

/// An unknown destination is refused, naming the known ones.
fn assert_an_unknown_destination_is_refused(daemon: &TestDaemon) {
    for command in ["history", "top"] {
        let out = daemon.cli(&[command, "--by", "destination", "--destination", "nosuch"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command}: {out:?}");
        assert!(out.stdout.is_empty(), "{command}: {out:?}");
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.starts_with("sockstats: no destination \"nosuch\": the destinations are ")
                && ["host", "private", "internet", "lab"]
                    .iter()
                    .all(|name| stderr.contains(name)),
            "{command}: {stderr}"
        );
    }
    let refused = daemon
        .client()
        .history(HistoryQuery {
            by: HistoryBy::Destination,
            destinations: vec!["internet".to_owned(), "nosuch".to_owned()],
            ..HistoryQuery::default()
        })
        .expect_err("an unknown destination is refused");
    assert_eq!(refused.code(), Some(ErrorCode::NotFound), "{refused}");
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn history_by_destination_is_exact_per_destination_v4_and_v6_and_agrees_with_get_and_top() {
    let (harness, _config) = start("hdest-exact");
    let daemon = &harness.daemon;
    let net = Topology::new();
    // The labels are new: nothing of theirs moved before the history began, so their whole
    // `get` totals are history.
    assert_eq!(daemon.stats(NEAR), ByteCounts::default());
    assert_eq!(daemon.stats(FAR), ByteCounts::default());
    let mut control = daemon.client();
    let peers = [
        ("host", &net.client, "127.0.0.1:0"),
        ("host", &net.client, "[::1]:0"),
        ("internet", &net.internet, "198.51.100.2:0"),
        ("internet", &net.internet, "[2001:db8:5::2]:0"),
        ("private", &net.private, "10.77.0.2:0"),
        ("private", &net.private, "[fd00:77::2]:0"),
        ("lab", &net.named, "10.88.0.2:0"),
        ("lab", &net.named, "[2001:db8:88::2]:0"),
    ];
    let mut near = Sums::new();
    let mut far = Sums::new();
    let mut connections = Vec::new();
    for (index, (destination, server_ns, server)) in peers.into_iter().enumerate() {
        let (client, server) = labeled_connection(&mut control, &net, server_ns, server);
        let out = 100_003 * (index + 1) + index;
        let back = 7_001 * (index + 1);
        tcp_send(&client, &server, out, 8192);
        tcp_send(&server, &client, back, 1000);
        add(&mut near, destination, out as u64, back as u64);
        add(&mut far, destination, back as u64, out as u64);
        connections.push((client, server));
    }
    drop(control);

    // What `get` counts is what moved, per destination; the history follows it to the byte.
    let (got_near, got_far) = wait_until_history_is_get(daemon);
    assert_eq!(got_near, near, "get of {NEAR}");
    assert_eq!(got_far, far, "get of {FAR}");
    assert_history_is(daemon, &near, &far);
    assert_the_cli_agrees(daemon, &near, &far);
    assert_the_destination_filter_keeps_only_its_bytes(daemon, &near, &far);
    assert_an_unknown_destination_is_refused(daemon);

    drop(connections);
}

/// `history --by destination --label NEAR --destination D…` (every bucket of the day).
fn history_by_destination_of(daemon: &TestDaemon, destinations: &[&str]) -> Sums {
    without_zeros(bucket_sums(&history(
        daemon,
        HistoryQuery {
            period: Period::Day,
            by: HistoryBy::Destination,
            labels: vec![NEAR.to_owned()],
            destinations: destinations.iter().map(|d| (*d).to_owned()).collect(),
            ..HistoryQuery::default()
        },
    )))
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn history_by_destination_loses_and_doubles_nothing_across_kill_9_and_restart() {
    let (mut harness, _config) = start("hdest-kill");
    let daemon = &mut harness.daemon;
    let net = Topology::new();
    let mut control = daemon.client();
    let (to_internet, internet_side) =
        labeled_connection(&mut control, &net, &net.internet, "198.51.100.2:0");
    let (to_lab, lab_side) =
        labeled_connection(&mut control, &net, &net.named, "[2001:db8:88::2]:0");
    let (to_host, host_side) = labeled_connection(&mut control, &net, &net.client, "[::1]:0");
    drop(control);
    // A known start, recorded before the streams.
    tcp_send(&to_internet, &internet_side, 123_457, 4096);
    tcp_send(&lab_side, &to_lab, 65_537, 4096);
    tcp_send(&to_host, &host_side, 9_999, 1000);
    let mut near = Sums::new();
    add(&mut near, "internet", 123_457, 0);
    add(&mut near, "lab", 0, 65_537);
    add(&mut near, "host", 9_999, 0);
    assert_eq!(wait_until_history_is_get(daemon).0, near);

    // Streams to three destinations (one of them inbound) while the daemon is killed and
    // comes back; the kernel goes on counting meanwhile.
    let streams = [
        (
            "internet",
            Stream::start(&to_internet, &internet_side),
            true,
        ),
        ("lab", Stream::start(&lab_side, &to_lab), false),
        ("host", Stream::start(&to_host, &host_side), true),
    ];
    thread::sleep(Duration::from_millis(1500));
    // Mid-way: recordings took in part of every stream already.
    let recorded = history_by_destination(daemon, Period::FiveMinutes, NEAR);
    for (destination, before) in &near {
        let counts = recorded.get(destination).copied().unwrap_or_default();
        assert!(
            counts.tx_bytes + counts.rx_bytes > before.tx_bytes + before.rx_bytes,
            "nothing of the {destination} stream recorded yet: {recorded:#?}"
        );
    }
    daemon.kill();
    thread::sleep(Duration::from_millis(1500));
    daemon.restart();
    thread::sleep(Duration::from_millis(1500));
    for (destination, stream, outbound) in streams {
        let (sent, received) = stream.finish();
        assert_eq!(sent, received, "{destination}");
        if outbound {
            add(&mut near, destination, sent, 0);
        } else {
            add(&mut near, destination, 0, received);
        }
    }
    // And a known exchange after the restart.
    tcp_send(&to_lab, &lab_side, 31_337, 1000);
    add(&mut near, "lab", 31_337, 0);
    let far: Sums = near
        .iter()
        .map(|(destination, counts)| {
            let swapped = ByteCounts {
                tx_bytes: counts.rx_bytes,
                rx_bytes: counts.tx_bytes,
            };
            (destination.clone(), swapped)
        })
        .collect();

    let (got_near, got_far) = wait_until_history_is_get(daemon);
    assert_eq!(got_near, near, "get of {NEAR}");
    assert_eq!(got_far, far, "get of {FAR}");
    assert_history_is(daemon, &near, &far);
    assert_eq!(cli_top(daemon, &NEAR_BY_DESTINATION), near);
}
