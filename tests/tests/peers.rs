//! `get --peers` against the real kernel: live sockets and sockets closed since the daemon
//! started, by remote address and port, exact to the byte; the rows of a label add up to its
//! totals. Traffic stays on loopback and in a namespace the test makes (198.51.100.0/24).
use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    thread,
};

use sockstats_common::protocol::{GetPeersReply, LabelPeers};
use sockstats_tests::{
    netns::{veth, TestNetns},
    traffic::tcp_send,
    Harness, TestDaemon,
};

/// A server in `netns` at `address` that takes `connections` connections, reads each to its end
/// and answers with `reply` bytes.
fn server(
    netns: &TestNetns,
    address: &str,
    connections: usize,
    reply: usize,
) -> (SocketAddr, thread::JoinHandle<()>) {
    let address: SocketAddr = address.parse().expect("address");
    let listener = netns.run(move || TcpListener::bind(address).expect("bind in namespace"));
    let address = listener.local_addr().expect("address");
    let handle = thread::spawn(move || {
        for _ in 0..connections {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut received = Vec::new();
            stream.read_to_end(&mut received).expect("read");
            stream.write_all(&vec![b'r'; reply]).expect("answer");
            stream.shutdown(Shutdown::Both).expect("shutdown");
        }
    });
    (address, handle)
}

/// One closed connection from `netns` to `address`: `send` bytes out, the answer read to its end.
fn one_request(
    netns: &TestNetns,
    address: SocketAddr,
    daemon: &TestDaemon,
    label: &str,
    send: usize,
) -> usize {
    let mut stream = netns.run(move || TcpStream::connect(address).expect("connect"));
    daemon.client().label(&stream, label).expect("label");
    stream.write_all(&vec![b's'; send]).expect("send");
    stream.shutdown(Shutdown::Write).expect("half close");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    answer.len()
}

fn rows<'a>(reply: &'a GetPeersReply, label: &str) -> &'a LabelPeers {
    reply
        .stats
        .get(label)
        .unwrap_or_else(|| panic!("no {label} in {reply:#?}"))
}

/// The rows of every label add up to `get`'s totals.
fn assert_rows_sum_to_get(daemon: &TestDaemon, reply: &GetPeersReply) {
    let totals = daemon.get().stats;
    for (label, rows) in &reply.stats {
        let mut tx = rows.other.tx_bytes;
        let mut rx = rows.other.rx_bytes;
        for peer in &rows.peers {
            tx += peer.tx_bytes;
            rx += peer.rx_bytes;
        }
        for rest in [rows.several_peers, rows.unknown_peer, rows.not_attributed] {
            tx += rest.tx_bytes;
            rx += rest.rx_bytes;
        }
        assert_eq!(
            (tx, rx),
            (totals[label].tx_bytes, totals[label].rx_bytes),
            "{label}: {rows:#?}"
        );
    }
}

/// A live connection labeled `web` from `client_ns` to a server in `server_ns` that moved 5,005
/// bytes out and 3,003 back: (client, accepted, server address).
fn live_connection(
    client_ns: &TestNetns,
    server_ns: &TestNetns,
    daemon: &TestDaemon,
) -> (TcpStream, TcpStream, SocketAddr) {
    let address: SocketAddr = "198.51.100.2:0".parse().unwrap();
    let listener = server_ns.run(move || TcpListener::bind(address).expect("bind"));
    let address = listener.local_addr().expect("address");
    let client = client_ns.run(move || TcpStream::connect(address).expect("connect"));
    let (accepted, _) = listener.accept().expect("accept");
    daemon.client().label(&client, "web").expect("label");
    tcp_send(&client, &accepted, 5_005, 1000);
    tcp_send(&accepted, &client, 3_003, 1000);
    (client, accepted, address)
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn live_and_closed_sockets_are_counted_per_peer_exactly() {
    let mut harness = Harness::start("peers-tcp");
    let client_ns = TestNetns::new("c");
    let server_ns = TestNetns::new("s");
    veth(
        &client_ns,
        "pc",
        "198.51.100.1/24",
        &server_ns,
        "ps",
        "198.51.100.2/24",
    );

    // Two closed connections to one server, a live one to another.
    let (closed_server, closed_handle) = server(&server_ns, "198.51.100.2:0", 2, 700);
    let mut answered = 0;
    for send in [10_000, 20_001] {
        answered += one_request(&client_ns, closed_server, &harness.daemon, "web", send);
    }
    closed_handle.join().expect("server");
    assert_eq!(answered, 1400);
    let (client, accepted, live_address) = live_connection(&client_ns, &server_ns, &harness.daemon);

    let reply = harness
        .daemon
        .client()
        .get_peers(Some("web"), 10)
        .expect("get_peers");
    let web = rows(&reply, "web");
    let listed: Vec<(String, u64, u64, u64, u64)> = web
        .peers
        .iter()
        .map(|p| {
            (
                p.peer.clone(),
                p.tx_bytes,
                p.rx_bytes,
                p.live_sockets,
                p.closed_sockets,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (closed_server.to_string(), 30_001, 1400, 0, 2),
            (live_address.to_string(), 5_005, 3_003, 1, 0),
        ]
    );
    assert_eq!(
        (
            web.other.peers,
            web.several_peers.tx_bytes,
            web.unknown_peer.tx_bytes
        ),
        (0, 0, 0)
    );
    assert_eq!(
        (web.not_attributed.tx_bytes, web.not_attributed.rx_bytes),
        (0, 0)
    );
    assert_rows_sum_to_get(&harness.daemon, &reply);

    // The top peer only: the other one is the `other` row, to the byte.
    let top = harness
        .daemon
        .client()
        .get_peers(Some("web"), 1)
        .expect("get_peers --top 1");
    let web = rows(&top, "web");
    assert_eq!(web.peers.len(), 1);
    assert_eq!(
        (web.other.tx_bytes, web.other.rx_bytes, web.other.peers),
        (5_005, 3_003, 1)
    );

    // The CLI shows the same.
    let cli = harness
        .daemon
        .cli(&["get", "--peers", "--label", "web", "--bytes"]);
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(cli.status.success(), "{text}");
    assert!(
        text.contains(&closed_server.to_string()) && text.contains("30001"),
        "{text}"
    );

    // A restarted daemon knows the live socket's peer still; the closed ones are history now,
    // in `not attributed`.
    harness.daemon.stop();
    harness.daemon.restart();
    let reply = harness
        .daemon
        .client()
        .get_peers(Some("web"), 10)
        .expect("get_peers");
    let web = rows(&reply, "web");
    assert_eq!(web.peers.len(), 1, "{web:#?}");
    assert_eq!(web.peers[0].peer, live_address.to_string());
    assert_eq!(
        (web.not_attributed.tx_bytes, web.not_attributed.rx_bytes),
        (30_001, 1400)
    );
    assert_rows_sum_to_get(&harness.daemon, &reply);
    drop((client, accepted));
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn an_unconnected_socket_has_several_peers_and_v6_peers_are_bracketed() {
    let harness = Harness::start("peers-udp");
    let daemon = &harness.daemon;
    let mut control = daemon.client();
    let first = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let second = UdpSocket::bind("127.0.0.2:0").expect("bind");
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    control.label(&socket, "resolver").expect("label");
    let mut buf = [0u8; 2048];
    for (server, size) in [(&first, 100), (&second, 200), (&first, 300)] {
        socket
            .send_to(&vec![1u8; size], server.local_addr().unwrap())
            .expect("send");
        assert_eq!(server.recv_from(&mut buf).expect("receive").0, size);
    }
    let (v6_client, v6_server) = sockstats_tests::traffic::tcp_pair(true);
    control.label(&v6_client, "six").expect("label");
    tcp_send(&v6_client, &v6_server, 4_444, 1000);

    let reply = control.get_peers(None, 10).expect("get_peers");
    let resolver = rows(&reply, "resolver");
    assert!(resolver.peers.is_empty(), "{resolver:#?}");
    assert_eq!(
        (
            resolver.several_peers.tx_bytes,
            resolver.several_peers.rx_bytes
        ),
        (600, 0)
    );
    let six = rows(&reply, "six");
    assert_eq!(six.peers.len(), 1, "{six:#?}");
    assert_eq!(
        six.peers[0].peer,
        v6_server.local_addr().unwrap().to_string()
    );
    assert!(six.peers[0].peer.starts_with("[::1]:"), "{six:#?}");
    assert_eq!(six.peers[0].tx_bytes, 4_444);
    assert_rows_sum_to_get(daemon, &reply);

    let refused = control
        .get_peers(Some("no-such-label"), 10)
        .unwrap_err()
        .to_string();
    assert!(refused.contains("sockstats labels"), "{refused}");
}
