//! What sockstats promises (README): nothing lost or counted twice across crashes, full maps
//! counted in the overflow bucket, hostile and greedy clients bounded, permissions enforced,
//! and every request answered under load.
use std::{
    fs,
    io::{Read as _, Write as _},
    net::UdpSocket,
    os::unix::{
        fs::MetadataExt as _, fs::PermissionsExt as _, net::UnixStream, process::CommandExt as _,
    },
    path::Path,
    process::{Command, Output},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use sockstats_common::protocol::{ByteCounts, ErrorCode};
use sockstats_tests::{
    daemon::binary,
    http::{free_loopback_port, http_get},
    traffic::{tcp_pair, tcp_send, Stream},
    Harness, TestDaemon,
};

const NOBODY: u32 = 65_534;

fn counts(tx_bytes: u64, rx_bytes: u64) -> ByteCounts {
    ByteCounts { tx_bytes, rx_bytes }
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn kill_9_during_labeled_traffic_loses_and_doubles_nothing_and_uninstall_detaches() {
    let mut harness = Harness::start("crash");
    let (client, server) = tcp_pair(false);
    let mut control = harness.daemon.client();
    control.label(&client, "steady").expect("label");
    control.label(&server, "steady-rx").expect("label");
    let (short_client, short_server) = tcp_pair(true);
    control.label(&short_client, "short").expect("label");
    drop(control);

    let stream = Stream::start(&client, &server);
    thread::sleep(Duration::from_millis(300));
    harness.daemon.kill();
    // While the daemon is down: traffic goes on, and a labeled socket moves bytes and closes.
    tcp_send(&short_client, &short_server, 123_457, 4096);
    drop((short_client, short_server));
    thread::sleep(Duration::from_millis(300));
    harness.daemon.restart();
    thread::sleep(Duration::from_millis(200));
    harness.daemon.kill();
    harness.daemon.restart();
    thread::sleep(Duration::from_millis(200));
    let (sent, received) = stream.finish();
    assert_eq!(sent, received);
    assert!(sent > 10_000_000, "only {sent} bytes moved");

    let stats = harness.daemon.get().stats;
    assert_eq!(stats["steady"], counts(sent, 0));
    assert_eq!(stats["steady-rx"], counts(0, received));
    assert_eq!(stats["short"], counts(123_457, 0));
    assert_eq!(stats["unlabeled"], counts(0, 123_457));

    // --uninstall is refused while a daemon owns the pins, then detaches everything.
    let program_ids: Vec<u32> = harness
        .daemon
        .client()
        .status()
        .expect("status")
        .programs
        .iter()
        .filter_map(|p| p.prog_id)
        .collect();
    assert_eq!(program_ids.len(), harness.daemon.expected_programs());
    let bpffs_dir = harness.daemon.bpffs_dir.clone();
    let uninstall = || {
        Command::new(binary("sockstatsd"))
            .arg("--uninstall")
            .arg("--bpffs-dir")
            .arg(&bpffs_dir)
            .output()
            .expect("run sockstatsd --uninstall")
    };
    let refused = uninstall();
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("owns the pins"),
        "{}",
        stderr_of(&refused)
    );
    harness.daemon.stop();
    let done = uninstall();
    assert!(done.status.success(), "{}", stderr_of(&done));
    assert!(!harness.daemon.bpffs_dir.exists());
    // The kernel frees detached programs after an RCU grace period: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let still_loaded = || -> Vec<u32> {
        aya::programs::loaded_programs()
            .flatten()
            .map(|p| p.id())
            .filter(|id| program_ids.contains(id))
            .collect()
    };
    while !still_loaded().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(still_loaded(), Vec::<u32>::new(), "programs still loaded");
    drop(client);
    drop(server);
    harness.daemon.restart();
}

/// Runs another `sockstatsd` on `socket` and `bpffs_dir`, accounting `cgroup_root`, with its
/// state in `state_dir` and `extra` arguments, and returns how it ended (the tests expect a
/// refusal, so it never keeps running).
fn second_daemon(
    socket: &Path,
    bpffs_dir: &Path,
    cgroup_root: &Path,
    state_dir: &Path,
    extra: &[&str],
) -> Output {
    Command::new(binary("sockstatsd"))
        .args(extra)
        .arg("--socket")
        .arg(socket)
        .arg("--bpffs-dir")
        .arg(bpffs_dir)
        .arg("--cgroup-root")
        .arg(cgroup_root)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--rules-file")
        .arg("/dev/null")
        .output()
        .expect("run a second sockstatsd")
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn full_maps_send_overflow_to_its_bucket_and_totals_stay_exact() {
    const PAIRS: u64 = 30;
    let port = free_loopback_port().to_string();
    let metrics = format!("127.0.0.1:{port}");
    // Room for 7 (label, interface) accounts: not for 30 labels on loopback.
    let harness =
        Harness::start_with_args("full-maps", &["--max-accounts", "8", "--metrics", &metrics]);
    let daemon = &harness.daemon;
    let mut control = daemon.client();
    let mut pairs = Vec::new();
    for n in 0..PAIRS {
        let (client, server) = tcp_pair(n % 2 == 1);
        let label = if n < 3 {
            "fits".to_owned()
        } else {
            format!("label-{n}")
        };
        control.label(&client, &label).expect("label");
        pairs.push((client, server));
    }
    let mut total = 0u64;
    for (n, (client, server)) in (0u64..).zip(&pairs) {
        let bytes = 10_000 + n * 17;
        tcp_send(client, server, usize::try_from(bytes).expect("small"), 1000);
        total += bytes;
    }
    let reply = daemon.get();
    let mut counted = reply.overflow;
    for stats in reply.stats.values() {
        counted.tx_bytes += stats.tx_bytes;
        counted.rx_bytes += stats.rx_bytes;
    }
    assert_eq!(counted, counts(total, total));
    assert!(reply.overflow.tx_bytes > 0, "nothing overflowed: {reply:?}");
    // The first label's accounts were made before the others filled the map.
    assert_eq!(reply.stats["fits"], counts(10_000 + 10_017 + 10_034, 0));

    let debug = daemon.client().debug_info().expect("debug");
    assert!(debug.counters["accounts_full"] > 0);
    assert_eq!(debug.counters["overflow_tx_bytes"], reply.overflow.tx_bytes);
    let accounts = debug
        .maps
        .iter()
        .find(|m| m.name == "ACCOUNT_KEYS")
        .expect("ACCOUNT_KEYS");
    assert_eq!(accounts.capacity, 8);
    let text = String::from_utf8_lossy(&daemon.cli(&["debug"]).stdout).into_owned();
    assert!(text.contains("accounts_full"), "{text}");
    let (status, body) = http_get(daemon, port.parse().expect("port"), "/metrics");
    assert!(status.contains("200"), "{status}");
    // The scrape's own sockets find the map full too: its bytes join the overflow while it
    // is served, so the metric lies between the overflow before and after it.
    let metric: u64 = body
        .lines()
        .find_map(|l| {
            l.strip_prefix("sockstats_overflow_bytes_total{layer=\"payload\",direction=\"tx\"} ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no payload tx overflow metric in\n{body}"));
    let after = daemon.get().overflow.tx_bytes;
    assert!(
        (reply.overflow.tx_bytes..=after).contains(&metric),
        "metric {metric}, overflow {} before and {after} after the scrape",
        reply.overflow.tx_bytes
    );

    // The pinned maps keep their capacity: another one is refused with what to do.
    let other = tempfile::tempdir().expect("tempdir");
    let output = second_daemon(
        &other.path().join("s.sock"),
        &daemon.bpffs_dir,
        &harness.cgroup.path,
        other.path(),
        &["--max-accounts", "32"],
    );
    assert!(!output.status.success());
    // The first daemon still owns the pins; that is what the second one is told.
    assert!(
        stderr_of(&output).contains("owns the pins"),
        "{}",
        stderr_of(&output)
    );
    drop(pairs);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_changed_max_sockets_on_existing_pins_is_refused_with_what_to_do() {
    let mut harness = Harness::start_with_args("capacity", &["--max-sockets", "64"]);
    harness.daemon.stop();
    let other = tempfile::tempdir().expect("tempdir");
    let output = second_daemon(
        &other.path().join("s.sock"),
        &harness.daemon.bpffs_dir,
        &harness.cgroup.path,
        other.path(),
        &["--max-sockets", "32"],
    );
    assert!(!output.status.success());
    let message = stderr_of(&output);
    assert!(
        message.contains("track 64 sockets, not the 32 asked for"),
        "{message}"
    );
    assert!(message.contains("--uninstall"), "{message}");
    let output = second_daemon(
        &other.path().join("s.sock"),
        &harness.daemon.bpffs_dir,
        &harness.cgroup.path,
        other.path(),
        &["--max-sockets", "64", "--max-accounts", "16"],
    );
    assert!(!output.status.success());
    let message = stderr_of(&output);
    assert!(
        message.contains("hold 4096 accounts, not the 16 asked for"),
        "{message}"
    );
    harness.daemon.restart();
}

/// Raises this process's open-file limit to `n`.
fn raise_nofile(n: u64) {
    sockstats_tests::sys::set_nofile_limit(n).expect("setrlimit(RLIMIT_NOFILE)");
}

fn rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn ten_thousand_connections_at_once_are_capped_and_everyone_else_is_served() {
    raise_nofile(20_000);
    let harness = Harness::start("flood");
    let daemon = &harness.daemon;
    let fds_before = daemon.open_fds();
    let mut flood = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        match UnixStream::connect(&daemon.socket) {
            Ok(stream) => flood.push(stream),
            // The listen backlog is full while the daemon refuses the excess: try again.
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
    }
    // The excess is told why and closed; the daemon answers a status on a held slot.
    let mut refused = 0;
    for stream in flood.iter_mut().skip(1000).take(50) {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        if reply.contains("maximum of 256 clients") {
            refused += 1;
        }
    }
    assert_eq!(refused, 50);
    assert!(
        rss_kib(daemon.pid()) < 64 * 1024,
        "RSS {} KiB",
        rss_kib(daemon.pid())
    );
    drop(flood);
    let fds_after = daemon.settle_fds(fds_before);
    assert!(
        fds_after <= fds_before,
        "connections leaked fds: {fds_after} open, {fds_before} before"
    );
    assert!(
        daemon
            .client()
            .status()
            .expect("status after the flood")
            .attached
    );
}

/// Lets `nobody` reach the daemon's socket.
fn open_socket_dir(daemon: &TestDaemon) {
    let dir = daemon.socket.parent().expect("socket dir");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Runs a Python snippet as `nobody` with the daemon's socket in `SOCKET`; returns stdout.
fn python_as_nobody(daemon: &TestDaemon, script: &str) -> String {
    let output = Command::new("python3")
        .args(["-c", script])
        .env("SOCKET", &daemon.socket)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run python3 as nobody");
    assert!(output.status.success(), "{}", stderr_of(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn one_user_cannot_take_every_slot_or_every_label() {
    let harness = Harness::start_with_args("greedy", &["--max-labels-per-uid", "5"]);
    let daemon = &harness.daemon;
    open_socket_dir(daemon);
    // nobody opens 40 connections and asks each for its status.
    let answers = python_as_nobody(
        daemon,
        r#"
import json, os, socket
conns, ok, limited = [], 0, 0
for _ in range(40):
    c = socket.socket(socket.AF_UNIX); c.connect(os.environ["SOCKET"]); conns.append(c)
for c in conns:
    try:
        c.sendall(b'{"op":"status"}\n')
    except OSError:
        pass  # refused connections are closed by the daemon right after its reply
    reply = json.loads(c.makefile().readline())
    if reply["ok"]: ok += 1
    elif reply.get("code") == "limit_reached": limited += 1
print(ok, limited)
"#,
    );
    assert_eq!(answers, "32 8");

    // nobody makes labels until its quota is used; root still can.
    let labels = python_as_nobody(
        daemon,
        r#"
import json, os, socket
d = socket.socket(socket.AF_UNIX); d.connect(os.environ["SOCKET"])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
codes = []
for n in range(8):
    socket.send_fds(d, [json.dumps({"op": "label", "label": f"mine-{n}"}).encode() + b"\n"], [s.fileno()])
    reply = json.loads(d.makefile().readline())
    codes.append("ok" if reply["ok"] else reply["code"])
print(" ".join(codes))
"#,
    );
    assert_eq!(
        labels,
        "ok ok ok ok ok limit_reached limit_reached limit_reached"
    );
    let socket = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let mut control = daemon.client();
    control.label(&socket, "mine-1").expect("an existing label");
    for n in 0..10 {
        control
            .label(&socket, &format!("root-{n}"))
            .expect("root has no quota");
    }
    let error = sockstats_common::client::Client::connect(&daemon.socket)
        .expect("connect")
        .label(&socket, "bad name!")
        .expect_err("bad label");
    assert_eq!(error.code(), Some(ErrorCode::BadLabel));
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn half_written_requests_and_clients_that_never_read_are_cut_off() {
    let harness = Harness::start_with_args("slow", &["--request-timeout", "1"]);
    let daemon = &harness.daemon;
    let started = Instant::now();
    let mut half = UnixStream::connect(&daemon.socket).expect("connect");
    half.write_all(br#"{"op":"get""#).expect("write");
    let mut reply = String::new();
    half.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    half.read_to_string(&mut reply).expect("read until closed");
    assert!(reply.contains("not completed within 1 s"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A client that pipelines requests and never reads the replies is dropped, and the daemon
    // keeps serving others meanwhile.
    let mut greedy = UnixStream::connect(&daemon.socket).expect("connect");
    greedy
        .set_write_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // More requests than the socket buffers hold: the write only ends when the daemon, whose
    // replies nobody reads, gives up on this client and closes the connection.
    let requests = b"{\"op\":\"debug_info\"}\n".repeat(50_000);
    let writer = thread::spawn(move || {
        let written = greedy.write_all(&requests);
        (greedy, written)
    });
    thread::sleep(Duration::from_millis(500));
    let served = Instant::now();
    assert!(
        daemon
            .client()
            .status()
            .expect("others are served")
            .attached
    );
    assert!(served.elapsed() < Duration::from_secs(2));
    let (mut greedy, written) = writer.join().expect("writer");
    let kind = written
        .expect_err("the daemon kept reading from a client that never reads")
        .kind();
    assert!(
        matches!(
            kind,
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "the daemon did not close the connection: {kind:?}"
    );
    greedy
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    // Reading now drains what the daemon wrote before it gave up, then ends.
    let mut sink = Vec::new();
    let end = greedy.read_to_end(&mut sink);
    assert!(
        end.is_ok()
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{end:?}"
    );
    assert!(rss_kib(daemon.pid()) < 64 * 1024);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn socket_mode_and_group_are_set_and_enforced() {
    const GROUP: u32 = 4242; // no user is in it
    let harness = Harness::start_with_args(
        "perms",
        &["--socket-mode", "0660", "--socket-group", "4242"],
    );
    let daemon = &harness.daemon;
    open_socket_dir(daemon);
    let metadata = fs::metadata(&daemon.socket).expect("stat socket");
    assert_eq!(metadata.mode() & 0o777, 0o660);
    assert_eq!(metadata.gid(), GROUP);
    let output = Command::new(binary("sockstats"))
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("status")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run sockstats as nobody");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("no permission to connect"),
        "{}",
        stderr_of(&output)
    );
    let in_group = Command::new(binary("sockstats"))
        .arg("--socket")
        .arg(&daemon.socket)
        .arg("status")
        .uid(NOBODY)
        .gid(GROUP)
        .output()
        .expect("run sockstats as nobody in the group");
    assert!(in_group.status.success(), "{}", stderr_of(&in_group));
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_live_socket_file_and_owned_pins_are_never_taken_over_but_a_stale_file_is() {
    let mut harness = Harness::start("takeover");
    let other = tempfile::tempdir().expect("tempdir");
    let second = |socket: &Path, bpffs: &Path| {
        second_daemon(socket, bpffs, &harness.cgroup.path, other.path(), &[])
    };
    let same_socket = second(&harness.daemon.socket, &other.path().join("bpf-unused"));
    assert!(!same_socket.status.success());
    assert!(
        stderr_of(&same_socket).contains("already serving"),
        "{}",
        stderr_of(&same_socket)
    );
    let same_pins = second(&other.path().join("s.sock"), &harness.daemon.bpffs_dir);
    assert!(!same_pins.status.success());
    assert!(
        stderr_of(&same_pins).contains("owns the pins"),
        "{}",
        stderr_of(&same_pins)
    );
    assert!(
        harness
            .daemon
            .client()
            .status()
            .expect("first daemon unharmed")
            .attached
    );

    // After a crash the socket file stays behind; the next daemon replaces it.
    harness.daemon.kill();
    assert!(harness.daemon.socket.exists());
    harness.daemon.restart();
    assert!(harness.daemon.client().status().expect("status").attached);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn two_hundred_clients_are_all_answered_while_4_gib_move_and_counts_stay_exact() {
    const CLIENTS: usize = 200;
    const BYTES: u64 = 4 << 30;
    let harness = Harness::start("load");
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(false);
    daemon.client().label(&client, "bulk").expect("label");
    let moving = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|n| {
            let socket_path = daemon.socket.clone();
            let moving = Arc::clone(&moving);
            let answered = Arc::clone(&answered);
            thread::spawn(move || {
                let mut control = sockstats_common::client::Client::connect(&socket_path)
                    .expect("connect under load");
                let mut rounds = 0;
                while moving.load(Ordering::Relaxed) || rounds < 3 {
                    let socket = UdpSocket::bind("127.0.0.1:0").expect("udp");
                    socket.send_to(&[1; 10], "127.0.0.1:9").expect("send");
                    control
                        .label(&socket, &format!("worker-{}", n % 10))
                        .expect("label answered");
                    control.get().expect("get answered");
                    answered.fetch_add(2, Ordering::Relaxed);
                    rounds += 1;
                }
                rounds
            })
        })
        .collect();
    tcp_send(
        &client,
        &server,
        usize::try_from(BYTES).expect("64-bit"),
        1 << 20,
    );
    moving.store(false, Ordering::Relaxed);
    let rounds: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    assert!(rounds >= 3 * CLIENTS);
    assert_eq!(answered.load(Ordering::Relaxed), 2 * rounds as u64);
    let stats = daemon.get().stats;
    assert_eq!(stats["bulk"], counts(BYTES, 0));
    assert_eq!(stats["unlabeled"], counts(0, BYTES));
    let worker_tx: u64 = (0..10)
        .map(|n| stats[&format!("worker-{n}")].tx_bytes)
        .sum();
    assert_eq!(worker_tx, 10 * rounds as u64);
}
