//! SIGTERM stops every task the daemon runs, promptly, with clients and scrapes still open.
use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    os::unix::net::UnixStream,
    time::{Duration, Instant},
};

use sockstats_tests::{
    http::free_loopback_port,
    traffic::{tcp_pair, tcp_send},
    Harness,
};

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn sigterm_joins_every_task_within_seconds_with_clients_and_scrapes_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stats.log");
    let log_arg = log.display().to_string();
    let port = free_loopback_port();
    let metrics = format!("127.0.0.1:{port}");
    let mut harness = Harness::start_with_args(
        "shutdown",
        &[
            "--stats-log",
            &log_arg,
            "--stats-log-interval",
            "3600",
            "--metrics",
            &metrics,
        ],
    );
    let (client, server) = tcp_pair(false);
    harness
        .daemon
        .client()
        .label(&client, "before-stop")
        .expect("label");
    tcp_send(&client, &server, 12_345, 4096);
    // An idle client, one halfway through a request line, and a scrape that never sends its
    // request: none of them may hold the daemon up.
    let mut idle = UnixStream::connect(&harness.daemon.socket).expect("connect");
    idle.write_all(b"{\"op\":\"status\"}\n").expect("request");
    let mut reply = [0u8; 1];
    idle.read_exact(&mut reply).expect("a reply starts");
    let mut half = UnixStream::connect(&harness.daemon.socket).expect("connect");
    half.write_all(b"{\"op\":").expect("half a request");
    let scrape = TcpStream::connect(&metrics).expect("connect to the metrics port");

    let started = Instant::now();
    harness.daemon.stop(); // SIGTERM; asserts a clean exit
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");

    // The stats log wrote its last line (the interval is an hour: this is the only one).
    let text = std::fs::read_to_string(&log).expect("the stats log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
    assert_eq!(line["stats"]["before-stop"][0], 12_345, "{text}");
    // The clients see the connection end.
    idle.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    drop((half, scrape));
}
