//! The daemon's life: restarts keep label ids and totals; the CLI speaks the documented shapes.
use serde_json::Value;
use sockstats_common::protocol::ByteCounts;
use sockstats_tests::{
    traffic::{tcp_pair, tcp_send},
    Harness,
};

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn restart_keeps_ids_and_totals_and_counting_goes_on_while_down() {
    let mut harness = Harness::start("restart");
    let (client, server) = tcp_pair(false);
    let first_id = harness
        .daemon
        .client()
        .label(&client, "persist")
        .expect("label")
        .label_id;
    tcp_send(&client, &server, 10_000, 1000);

    harness.daemon.stop();
    // The programs stay attached and pinned: bytes moved while the daemon is down count.
    tcp_send(&client, &server, 20_000, 1000);
    harness.daemon.restart();
    assert!(
        harness.daemon.log().contains("keeping them"),
        "the restarted daemon reuses the pinned programs:\n{}",
        harness.daemon.log()
    );

    assert_eq!(
        harness.daemon.stats("persist"),
        ByteCounts {
            tx_bytes: 30_000,
            rx_bytes: 0
        }
    );
    let mut control = harness.daemon.client();
    assert_eq!(
        control.label(&client, "persist").expect("label").label_id,
        first_id
    );
    let second_id = control.label(&server, "another").expect("label").label_id;
    assert_eq!(second_id, first_id + 1);
    drop((client, server));

    harness.daemon.kill();
    harness.daemon.restart();
    let stats = harness.daemon.get().stats;
    assert_eq!(
        stats["persist"],
        ByteCounts {
            tx_bytes: 30_000,
            rx_bytes: 0
        }
    );
    assert_eq!(
        stats["another"],
        ByteCounts {
            tx_bytes: 0,
            rx_bytes: 30_000
        }
    );
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn cli_prints_the_documented_json_and_tables() {
    let harness = Harness::start("cli");
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(true);
    daemon.client().label(&client, "cli-label").expect("label");
    tcp_send(&client, &server, 5000, 5000);
    tcp_send(&server, &client, 70, 70);

    let out = daemon.cli(&["get", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("get --json is JSON");
    assert_eq!(json["stats"]["cli-label"]["tx_bytes"], 5000);
    assert_eq!(json["stats"]["cli-label"]["rx_bytes"], 70);
    assert_eq!(json["stats"]["unlabeled"]["tx_bytes"], 70);
    assert!(json.get("current_interface").is_some(), "{json}");
    assert!(
        json.get("ok").is_none(),
        "the CLI prints the documented shape only: {json}"
    );

    let out = daemon.cli(&["get", "--bytes"]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.starts_with("LABEL"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("cli-label") && l.contains("5000") && l.ends_with("70")),
        "{text}"
    );
    let out = daemon.cli(&["get"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("4.9 KiB"));

    let out = daemon.cli(&["get", "--interfaces", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).expect("get --interfaces --json is JSON");
    assert_eq!(
        json["stats"]["cli-label"]["tx_bytes_by_interface"]["lo"],
        5000
    );
    assert_eq!(
        json["stats"]["cli-label"]["rx_bytes_by_interface"]["lo"],
        70
    );
    assert!(json["interfaces"]
        .as_array()
        .expect("interfaces")
        .contains(&Value::from("lo")));
    assert!(
        json["wire"]["cli-label"]["lo"]["tx_packets"]
            .as_u64()
            .expect("packets")
            > 0
    );
    let out = daemon.cli(&["get", "--interfaces", "--wire", "--bytes"]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.starts_with("LABEL      INTERFACE"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("cli-label") && l.contains(" lo ") && l.contains("5000")),
        "{text}"
    );
    let out = daemon.cli(&["get", "--wire"]);
    assert!(!out.status.success(), "--wire needs --interfaces");

    let out = daemon.cli(&["labels", "--json"]);
    let json: Value = serde_json::from_slice(&out.stdout).expect("labels --json is JSON");
    assert_eq!(json["labels"][0]["name"], "cli-label");
    assert_eq!(json["labels"][0]["id"], 1);

    let out = daemon.cli(&["status"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("attached") && text.contains("tp_btf/sock_send_length"),
        "{text}"
    );

    let missing = std::process::Command::new(sockstats_tests::daemon::binary("sockstats"))
        .args(["--socket", "/nonexistent/sockstats.sock", "status"])
        .output()
        .expect("run sockstats");
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("daemon not running at /nonexistent/sockstats.sock: start it with"),
        "{stderr}"
    );
}

/// Sets a sysctl for the life of the guard, restoring the old value on drop.
struct Sysctl {
    path: &'static str,
    old: String,
}

impl Sysctl {
    fn set(path: &'static str, value: &str) -> Self {
        let old = std::fs::read_to_string(path).expect("read sysctl");
        std::fs::write(path, value).expect("write sysctl");
        Self { path, old }
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path, self.old.trim());
    }
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn debug_shows_hooks_run_counts_map_fill_and_counters() {
    let harness = Harness::start("debug");
    let daemon = &harness.daemon;
    let _stats = Sysctl::set("/proc/sys/kernel/bpf_stats_enabled", "1");
    let (client, server) = tcp_pair(false);
    daemon.client().label(&client, "debugged").expect("label");
    tcp_send(&client, &server, 100_000, 1000);

    let debug = daemon.client().debug_info().expect("debug_info");
    assert!(debug.bpf_stats_enabled);
    assert!(!debug.kernel.is_empty());
    for program in [
        "sock_send_length",
        "sock_recv_length",
        "packet_egress",
        "packet_ingress",
    ] {
        let stats = debug
            .programs
            .iter()
            .find(|p| p.name == program)
            .expect(program);
        assert!(stats.prog_id.is_some() && stats.run_count > 0, "{stats:?}");
        assert!(stats.average_ns.is_some_and(|ns| ns > 0.0), "{stats:?}");
    }
    let accounts = debug
        .maps
        .iter()
        .find(|m| m.name == "ACCOUNT_KEYS")
        .expect("ACCOUNT_KEYS");
    assert!(
        accounts.entries >= 1 && accounts.capacity == 4096,
        "{accounts:?}"
    );
    assert!(debug.live_sockets >= 2 && debug.labels == 1, "{debug:?}");
    assert!(
        debug.counters["sockets_created"] >= 1,
        "{:?}",
        debug.counters
    );
    assert_eq!(debug.counters["sockets_map_full"], 0);

    let out = daemon.cli(&["debug"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "PROGRAM",
        "AVG NS",
        "ACCOUNT_KEYS",
        "sockets_map_full",
        "kernel.bpf_stats_enabled=1",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}
