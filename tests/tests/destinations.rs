//! Destination classes on real interfaces: a client namespace the test makes, with veth links
//! to namespaces standing in for the internet (documentation ranges `198.51.100.0/24` and
//! `2001:db8::/32`), a private network (`10.77.0.0/24`, `fd00:77::/64`) and a named network
//! of the config (`vpc`, `10.88.0.0/16` and `2001:db8:88::/48`), and loopback for `host`.
//! Every payload byte lands on the destination of the remote address it really went to or
//! came from.
use std::{
    collections::BTreeMap,
    net::{SocketAddr, UdpSocket},
};

use sockstats_common::protocol::{DestinationStats, GetDestinationsReply};
use sockstats_tests::{
    netns::{tcp_between, TestNetns, Topology},
    traffic::tcp_send,
    Harness, TestDaemon,
};

const CONFIG: &str = "\
network vpc 10.88.0.0/16 2001:db8:88::/48
price internet tx 0.09
price vpc rx 0.5
currency €
";

/// A daemon with [`CONFIG`] (its file removed with the returned guard).
fn start(name: &str) -> (Harness, tempfile::TempDir) {
    Harness::start_with_config(name, CONFIG, &[])
}

fn udp_in(netns: &TestNetns, address: &str) -> UdpSocket {
    let address: SocketAddr = address.parse().expect("address");
    netns.run(move || UdpSocket::bind(address).expect("bind in namespace"))
}

fn bytes(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), *bytes))
        .collect()
}

fn stats<'a>(reply: &'a GetDestinationsReply, label: &str) -> &'a DestinationStats {
    reply
        .stats
        .get(label)
        .unwrap_or_else(|| panic!("no {label} in {reply:#?}"))
}

/// Every label's destinations sum to `get`'s totals.
fn assert_sums_match_get(daemon: &TestDaemon, reply: &GetDestinationsReply) {
    let totals = daemon.get().stats;
    for (label, stats) in &reply.stats {
        let tx: u64 = stats.tx_bytes_by_destination.values().sum();
        let rx: u64 = stats.rx_bytes_by_destination.values().sum();
        assert_eq!(
            (tx, rx),
            (totals[label].tx_bytes, totals[label].rx_bytes),
            "{label}"
        );
    }
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn tcp_bytes_go_to_the_class_or_network_of_their_peer_v4_and_v6() {
    let (harness, _config) = start("dest-tcp");
    let daemon = &harness.daemon;
    let net = Topology::new();
    let mut control = daemon.client();
    let peers = [
        ("inet4", &net.internet, "198.51.100.2:0"),
        ("priv4", &net.private, "10.77.0.2:0"),
        ("vpc4", &net.named, "10.88.0.2:0"),
        ("host4", &net.client, "127.0.0.1:0"),
        ("inet6", &net.internet, "[2001:db8:5::2]:0"),
        ("priv6", &net.private, "[fd00:77::2]:0"),
        ("vpc6", &net.named, "[2001:db8:88::2]:0"),
        ("host6", &net.client, "[::1]:0"),
    ];
    let mut sent = Vec::new();
    for (index, (label, server_ns, server)) in peers.iter().enumerate() {
        let (client, server) = tcp_between(&net.client, server_ns, server);
        control.label(&client, label).expect("label");
        let out = 100_000 + index * 1000 + 1;
        let back = 20_000 + index * 10 + 3;
        tcp_send(&client, &server, out, 8192);
        tcp_send(&server, &client, back, 1000);
        sent.push((client, server, out as u64, back as u64));
    }
    let reply = control
        .get_destinations(false, false)
        .expect("get_destinations");
    for ((label, _, _), (_, _, out, back)) in peers.iter().zip(&sent) {
        let class = match &label[..label.len() - 1] {
            "inet" => "internet",
            "priv" => "private",
            other => other,
        };
        let stats = stats(&reply, label);
        assert_eq!(
            stats.tx_bytes_by_destination,
            bytes(&[(class, *out)]),
            "{label}"
        );
        assert_eq!(
            stats.rx_bytes_by_destination,
            bytes(&[(class, *back)]),
            "{label}"
        );
    }
    for class in ["host", "private", "internet", "vpc"] {
        assert!(reply.destinations.iter().any(|d| d == class), "{reply:?}");
    }
    assert_sums_match_get(daemon, &reply);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn an_unconnected_udp_socket_is_split_exactly_by_datagram() {
    let (harness, _config) = start("dest-udp");
    let daemon = &harness.daemon;
    let net = Topology::new();
    let mut control = daemon.client();
    let servers = [
        ("internet", udp_in(&net.internet, "198.51.100.2:0")),
        ("private", udp_in(&net.private, "10.77.0.2:0")),
        ("vpc", udp_in(&net.named, "10.88.0.2:0")),
        ("host", udp_in(&net.client, "127.0.0.1:0")),
    ];
    let socket = net
        .client
        .run(|| UdpSocket::bind("0.0.0.0:0").expect("bind in namespace"));
    control.label(&socket, "resolver").expect("label");
    let mut expected_tx: BTreeMap<String, u64> = BTreeMap::new();
    let mut expected_rx: BTreeMap<String, u64> = BTreeMap::new();
    let mut buf = [0u8; 2048];
    // Round-robin over the destinations, one datagram and its answer at a time, so each
    // answer is read before the next arrives.
    for round in 0..40_usize {
        for (index, (class, server)) in servers.iter().enumerate() {
            let size = 1 + (round * 131 + index * 17) % 1400;
            let target = server.local_addr().expect("address");
            assert_eq!(
                socket.send_to(&vec![7u8; size], target).expect("send"),
                size
            );
            let (got, from) = server.recv_from(&mut buf).expect("server receive");
            assert_eq!(got, size);
            let answer = size / 2 + 1;
            server.send_to(&vec![9u8; answer], from).expect("answer");
            let (got, _) = socket.recv_from(&mut buf).expect("receive the answer");
            assert_eq!(got, answer);
            *expected_tx.entry((*class).to_owned()).or_default() += size as u64;
            *expected_rx.entry((*class).to_owned()).or_default() += answer as u64;
        }
    }
    let reply = control
        .get_destinations(true, false)
        .expect("get_destinations");
    let resolver = stats(&reply, "resolver");
    assert_eq!(resolver.tx_bytes_by_destination, expected_tx, "{reply:#?}");
    assert_eq!(resolver.rx_bytes_by_destination, expected_rx, "{reply:#?}");
    // With interfaces: host is loopback, the others their veth.
    let host_on = |interface: &str| {
        resolver
            .by_interface
            .get(interface)
            .and_then(|split| split.tx_bytes_by_destination.get("host"))
            .copied()
    };
    assert_eq!(
        host_on(&format!("lo/{}", net.client.name)),
        Some(expected_tx["host"]),
        "{reply:#?}"
    );
    assert_eq!(
        resolver.by_interface[&format!("ci/{}", net.client.name)].tx_bytes_by_destination,
        bytes(&[("internet", expected_tx["internet"])])
    );
    assert_sums_match_get(daemon, &reply);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_v4_mapped_peer_is_its_ipv4_address() {
    let (harness, _config) = start("dest-mapped");
    let daemon = &harness.daemon;
    let net = Topology::new();
    let mut control = daemon.client();
    let internet = udp_in(&net.internet, "198.51.100.2:0");
    let private = udp_in(&net.private, "10.77.0.2:0");
    let socket = net
        .client
        .run(|| UdpSocket::bind("[::]:0").expect("bind a dual-stack socket"));
    control.label(&socket, "mapped").expect("label");
    let mut buf = [0u8; 2048];
    for (server, size) in [(&internet, 700_usize), (&private, 300)] {
        let SocketAddr::V4(v4) = server.local_addr().expect("address") else {
            unreachable!("bound to IPv4");
        };
        let mapped = SocketAddr::from((v4.ip().to_ipv6_mapped(), v4.port()));
        assert_eq!(
            socket.send_to(&vec![1u8; size], mapped).expect("send"),
            size
        );
        assert_eq!(server.recv_from(&mut buf).expect("receive").0, size);
    }
    let reply = control
        .get_destinations(false, false)
        .expect("get_destinations");
    assert_eq!(
        stats(&reply, "mapped").tx_bytes_by_destination,
        bytes(&[("internet", 700), ("private", 300)])
    );
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_relabel_mid_stream_moves_every_destination_exactly() {
    let (harness, _config) = start("dest-relabel");
    let daemon = &harness.daemon;
    let net = Topology::new();
    let mut control = daemon.client();
    let (client, server) = tcp_between(&net.client, &net.named, "10.88.0.2:0");
    control.label(&client, "before").expect("label");
    tcp_send(&client, &server, 300_001, 4096);
    tcp_send(&server, &client, 5_003, 1000);
    control.label(&client, "after").expect("relabel");
    tcp_send(&client, &server, 70_007, 4096);
    let reply = control
        .get_destinations(false, false)
        .expect("get_destinations");
    assert_eq!(
        stats(&reply, "after").tx_bytes_by_destination,
        bytes(&[("vpc", 370_008)])
    );
    assert_eq!(
        stats(&reply, "after").rx_bytes_by_destination,
        bytes(&[("vpc", 5_003)])
    );
    assert!(
        stats(&reply, "before").tx_bytes_by_destination.is_empty(),
        "{reply:#?}"
    );
    assert_sums_match_get(daemon, &reply);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn owners_and_costs_follow_the_destinations() {
    let (harness, _config) = start("dest-cost");
    let daemon = &harness.daemon;
    let net = Topology::new();
    let mut control = daemon.client();
    let (to_internet, internet_side) = tcp_between(&net.client, &net.internet, "198.51.100.2:0");
    let (to_vpc, vpc_side) = tcp_between(&net.client, &net.named, "10.88.0.2:0");
    control.label(&to_internet, "egress").expect("label");
    control.label(&to_vpc, "egress").expect("label");
    tcp_send(&to_internet, &internet_side, 1 << 20, 65_536);
    tcp_send(&vpc_side, &to_vpc, 1 << 19, 65_536);

    // The cost: 1 MiB sent to the internet at 0.09/GiB, 512 KiB received from vpc at 0.5/GiB.
    let reply = control
        .get_destinations(false, true)
        .expect("get_destinations --cost");
    let cost = reply.cost.as_ref().expect("a cost estimate");
    assert_eq!(cost.currency, "€");
    let expected = 0.09 / 1024.0 + 0.5 / 2048.0;
    let label_cost = stats(&reply, "egress").cost.expect("the label's cost");
    assert!(
        (label_cost - expected).abs() < 1e-12,
        "{label_cost} vs {expected}"
    );
    assert!(cost.total >= label_cost, "{cost:?}");
    let table = daemon.cli(&["get", "--destinations", "--cost"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "{text}");
    assert!(text.contains("estimated cost in all: €"), "{text}");

    // The uid grouping splits the same bytes by destination.
    let by_uid = control
        .get_by_destinations(sockstats_common::protocol::Grouping::Uid)
        .expect("get_by uid with destinations");
    let root = &by_uid.stats["root"];
    assert!(
        root.tx_bytes_by_destination["internet"] >= 1 << 20,
        "{by_uid:#?}"
    );
    assert!(
        root.rx_bytes_by_destination["vpc"] >= 1 << 19,
        "{by_uid:#?}"
    );
}
