//! Exact per-label accounting on the real kernel: every count is compared with the bytes the
//! test itself moved over loopback.
use std::{net::TcpStream, os::fd::AsFd, thread};

use sockstats_common::protocol::ByteCounts;
use sockstats_tests::{
    traffic::{tcp_pair, tcp_send, udp_pair, udp_send},
    Harness,
};

const MIB: usize = 1024 * 1024;

fn counts(tx_bytes: usize, rx_bytes: usize) -> ByteCounts {
    ByteCounts {
        tx_bytes: tx_bytes as u64,
        rx_bytes: rx_bytes as u64,
    }
}

fn tcp_exact(ipv6: bool) {
    let harness = Harness::start(if ipv6 { "tcp6" } else { "tcp4" });
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(ipv6);
    let mut control = daemon.client();
    let reply = control.label(&client, "tcp-client").expect("label client");
    assert_eq!(reply.sockets[0].protocol, "tcp");
    assert_eq!(reply.sockets[0].family, if ipv6 { "ipv6" } else { "ipv4" });
    control.label(&server, "tcp-server").expect("label server");

    tcp_send(&client, &server, 8 * MIB + 123, 64 * 1024);
    tcp_send(&server, &client, 3 * MIB + 7, 1000);

    let stats = daemon.get().stats;
    assert_eq!(stats["tcp-client"], counts(8 * MIB + 123, 3 * MIB + 7));
    assert_eq!(stats["tcp-server"], counts(3 * MIB + 7, 8 * MIB + 123));
    assert_eq!(stats["unlabeled"], counts(0, 0));
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn tcp_over_ipv4_is_exact() {
    tcp_exact(false);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn tcp_over_ipv6_is_exact() {
    tcp_exact(true);
}

fn udp_exact(ipv6: bool) {
    let harness = Harness::start(if ipv6 { "udp6" } else { "udp4" });
    let daemon = &harness.daemon;
    let (a, b) = udp_pair(ipv6);
    let mut control = daemon.client();
    assert_eq!(
        control.label(&a, "udp-a").expect("label").sockets[0].protocol,
        "udp"
    );
    control.label(&b, "udp-b").expect("label");

    let a_to_b = udp_send(&a, &b, 5000);
    let b_to_a = udp_send(&b, &a, 3000);

    let stats = daemon.get().stats;
    assert_eq!(
        stats["udp-a"],
        ByteCounts {
            tx_bytes: a_to_b,
            rx_bytes: b_to_a
        }
    );
    assert_eq!(
        stats["udp-b"],
        ByteCounts {
            tx_bytes: b_to_a,
            rx_bytes: a_to_b
        }
    );
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn udp_over_ipv4_is_exact() {
    udp_exact(false);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn udp_over_ipv6_is_exact() {
    udp_exact(true);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn bytes_before_labeling_count_under_the_label() {
    let harness = Harness::start("late-label");
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(false);
    tcp_send(&client, &server, 100_000, 4096);
    tcp_send(&server, &client, 2_000, 4096);
    assert_eq!(daemon.stats("unlabeled"), counts(102_000, 102_000));

    daemon.client().label(&client, "late").expect("label");
    assert_eq!(daemon.stats("late"), counts(100_000, 2_000));
    assert_eq!(daemon.stats("unlabeled"), counts(2_000, 100_000));

    tcp_send(&client, &server, 5, 5);
    assert_eq!(daemon.stats("late"), counts(100_005, 2_000));

    // Unlabeling gives every byte back to `unlabeled`.
    daemon.client().unlabel(&client).expect("unlabel");
    assert_eq!(daemon.stats("late"), counts(0, 0));
    assert_eq!(daemon.stats("unlabeled"), counts(102_005, 102_005));
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn closed_sockets_keep_their_bytes() {
    let harness = Harness::start("closed");
    let daemon = &harness.daemon;
    let live_before = daemon.client().status().expect("status").live_sockets;
    let datagrams;
    {
        let (client, server) = tcp_pair(true);
        let mut control = daemon.client();
        control.label(&client, "closing-client").expect("label");
        control.label(&server, "closing-server").expect("label");
        tcp_send(&client, &server, 2 * MIB, 32 * 1024);
        tcp_send(&server, &client, 999, 999);
        let (a, b) = udp_pair(false);
        control.label(&a, "closing-client").expect("label");
        datagrams = udp_send(&a, &b, 100);
        assert_eq!(
            daemon.stats("closing-client"),
            ByteCounts {
                tx_bytes: 2 * MIB as u64 + datagrams,
                rx_bytes: 999
            }
        );
        assert_eq!(
            daemon.stats("unlabeled"),
            ByteCounts {
                tx_bytes: 0,
                rx_bytes: datagrams
            }
        );
    }
    // All sockets are closed now: their entries are folded into the totals and gone.
    let stats = daemon.get().stats;
    assert_eq!(
        stats["closing-client"],
        ByteCounts {
            tx_bytes: 2 * MIB as u64 + datagrams,
            rx_bytes: 999
        }
    );
    assert_eq!(
        stats["unlabeled"],
        ByteCounts {
            tx_bytes: 0,
            rx_bytes: datagrams
        }
    );
    assert_eq!(stats["closing-server"], counts(999, 2 * MIB));
    assert_eq!(
        daemon.client().status().expect("status").live_sockets,
        live_before
    );
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn accepted_and_unlabeled_sockets_are_counted_exactly() {
    let harness = Harness::start("unlabeled");
    let daemon = &harness.daemon;
    // The server side is an accepted socket: sock_create never sees it, first traffic does.
    let (client, server) = tcp_pair(false);
    daemon.client().label(&server, "accepted").expect("label");
    tcp_send(&client, &server, 700_000, 10_000);
    tcp_send(&server, &client, 300_000, 10_000);
    assert_eq!(daemon.stats("accepted"), counts(300_000, 700_000));
    assert_eq!(daemon.stats("unlabeled"), counts(700_000, 300_000));
    drop((client, server));
    assert_eq!(daemon.stats("accepted"), counts(300_000, 700_000));
    assert_eq!(daemon.stats("unlabeled"), counts(700_000, 300_000));
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn two_labels_never_bleed_into_each_other() {
    let harness = Harness::start("two-labels");
    let daemon = &harness.daemon;
    let first = tcp_pair(false);
    let second = tcp_pair(true);
    let mut control = daemon.client();
    control
        .label_all(&[first.0.as_fd(), first.1.as_fd()], "first")
        .expect("label");
    control
        .label_all(&[second.0.as_fd(), second.1.as_fd()], "second")
        .expect("label");
    thread::scope(|scope| {
        scope.spawn(|| tcp_send(&first.0, &first.1, 3 * MIB, 8192));
        scope.spawn(|| tcp_send(&second.1, &second.0, 5 * MIB + 1, 100_000));
    });
    let stats = daemon.get().stats;
    assert_eq!(stats["first"], counts(3 * MIB, 3 * MIB));
    assert_eq!(stats["second"], counts(5 * MIB + 1, 5 * MIB + 1));
    assert_eq!(stats["unlabeled"], counts(0, 0));
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn concurrent_writers_on_one_socket_are_exact() {
    use std::io::{Read, Write};
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 4 * MIB + 3;
    let harness = Harness::start("atomics");
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(false);
    daemon.client().label(&client, "shared").expect("label");
    let reader = {
        let mut server: TcpStream = server.try_clone().expect("clone");
        thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 20];
            let mut got = 0;
            while got < WRITERS * PER_WRITER {
                got += server.read(&mut buf).expect("read");
            }
            got
        })
    };
    thread::scope(|scope| {
        for writer in 0..WRITERS {
            let mut stream = client.try_clone().expect("clone");
            scope.spawn(move || {
                let block = vec![u8::try_from(writer).expect("few writers"); 1000 + writer * 333];
                let mut left = PER_WRITER;
                while left > 0 {
                    let n = left.min(block.len());
                    stream.write_all(&block[..n]).expect("write");
                    left -= n;
                }
            });
        }
    });
    assert_eq!(reader.join().expect("reader"), WRITERS * PER_WRITER);
    assert_eq!(daemon.stats("shared"), counts(WRITERS * PER_WRITER, 0));
    assert_eq!(daemon.stats("unlabeled"), counts(0, WRITERS * PER_WRITER));
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn whole_host_mode_counts_labeled_sockets_exactly() {
    // No --cgroup-root: the programs see every socket of the host, as in production.
    let harness = Harness::start_whole_host("whole-host");
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(false);
    let mut control = daemon.client();
    control.label(&client, "host-client").expect("label");
    control.label(&server, "host-server").expect("label");
    tcp_send(&client, &server, MIB + 5, 4096);
    tcp_send(&server, &client, 77, 77);
    let (a, b) = udp_pair(true);
    control.label(&a, "host-client").expect("label");
    let datagrams = udp_send(&a, &b, 200);
    drop((client, server, a, b));
    let stats = daemon.get().stats;
    assert_eq!(
        stats["host-client"],
        ByteCounts {
            tx_bytes: MIB as u64 + 5 + datagrams,
            rx_bytes: 77
        }
    );
    assert_eq!(stats["host-server"], counts(77, MIB + 5));
    let daemon_status = daemon.client().status().expect("status");
    assert!(
        !daemon_status.cgroup_root.contains("sockstats-test"),
        "{}",
        daemon_status.cgroup_root
    );
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn connections_never_accepted_leave_no_entries_behind() {
    use std::{io::Write, net::TcpListener};
    let harness = Harness::start("never-accepted");
    let daemon = &harness.daemon;
    let baseline = daemon.client().status().expect("status").live_sockets;
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("addr");
        let mut clients: Vec<TcpStream> = (0..5)
            .map(|_| TcpStream::connect(address).expect("connect"))
            .collect();
        // Data reaches the queued (never accepted) server sockets: their packets make socket
        // states that no sock_release will ever see, since no process ever holds them.
        for client in &mut clients {
            client.write_all(&[7; 1000]).expect("write");
        }
        thread::sleep(std::time::Duration::from_millis(100));
        drop(listener); // the kernel resets and destroys the queued connections
    }
    thread::sleep(std::time::Duration::from_millis(200));
    let status = daemon.client().status().expect("status");
    // They never counted as live; with socket storage their states went with the sockets,
    // and cookie-keyed states (before 5.11) are deleted when TCP closes them.
    assert_eq!(status.live_sockets, baseline, "{status:?}");
    if status
        .kernel_limits
        .iter()
        .any(|limit| limit.contains("hash by cookie"))
    {
        assert!(
            status.counters["deleted_at_close"] >= 5,
            "{:?}",
            status.counters
        );
    }
    // The clients' bytes stay counted, under unlabeled.
    assert_eq!(daemon.stats("unlabeled").tx_bytes, 5000);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn socket_churn_leaves_the_maps_at_baseline_and_every_byte_counted() {
    use std::io::{Read, Write};
    // `cargo xtask soak` runs this with a million; CI with the default.
    let connections: usize = std::env::var("SOCKSTATS_CHURN")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let harness = Harness::start("churn");
    let daemon = &harness.daemon;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr");
    let baseline = daemon.client().status().expect("status").live_sockets;
    let server = thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..connections {
            let (mut stream, _) = listener.accept().expect("accept");
            stream.read_exact(&mut buf[..37]).expect("read");
            stream.write_all(&buf[..11]).expect("write");
            // Wait for the client's close: it resets (see below), so no TIME_WAIT is left.
            let _ = stream.read(&mut buf);
        }
    });
    let mut control = daemon.client();
    // One round trip first: the daemon has accepted this connection before its fds are counted.
    control.status().expect("status");
    let fds_before = daemon.open_fds();
    let no_linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    for n in 0..connections {
        let mut stream = TcpStream::connect(address).expect("connect");
        if n % 2 == 0 {
            control.label(&stream, "churn").expect("label");
        }
        stream.write_all(&[1; 37]).expect("write");
        let mut reply = [0u8; 11];
        stream.read_exact(&mut reply).expect("read");
        // Close with a reset: a million TIME_WAIT sockets would use up the ports.
        nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &no_linger)
            .expect("SO_LINGER");
    }
    server.join().expect("server");
    thread::sleep(std::time::Duration::from_millis(200));
    let status = daemon.client().status().expect("status");
    // The listener is gone too; closed sockets left no entries behind.
    assert!(
        status.live_sockets <= baseline,
        "{} live after churn, {baseline} before",
        status.live_sockets
    );
    let totals = daemon.get().stats;
    let labeled = connections.div_ceil(2);
    let unlabeled = connections - labeled;
    assert_eq!(totals["churn"], counts(37 * labeled, 11 * labeled));
    assert_eq!(
        totals["unlabeled"],
        counts(
            37 * unlabeled + 11 * connections,
            11 * unlabeled + 37 * connections
        )
    );
    assert_eq!(status.counters["sockets_map_full"], 0);
    let fds_after = daemon.settle_fds(fds_before);
    assert!(
        fds_after <= fds_before,
        "the daemon leaked fds: {fds_after} open, {fds_before} before"
    );
}
