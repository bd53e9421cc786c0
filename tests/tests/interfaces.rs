//! Per-interface attribution on real interfaces: veth pairs between network namespaces the
//! tests create, and loopback. Every payload byte lands on the interface its socket really used.
use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

use sockstats_common::protocol::{GetInterfacesReply, InterfaceStats};
use sockstats_tests::{
    netns::{veth, TestNetns},
    traffic::{tcp_pair, tcp_send},
    Harness, TestCgroup, TestDaemon,
};

const MIB: usize = 1024 * 1024;

fn listen_in(netns: &TestNetns, address: &str) -> TcpListener {
    let address: SocketAddr = address.parse().expect("address");
    netns.run(move || TcpListener::bind(address).expect("bind in namespace"))
}

fn connect_in(netns: &TestNetns, address: SocketAddr) -> TcpStream {
    netns.run(move || TcpStream::connect(address).expect("connect in namespace"))
}

/// (client, accepted server) across the namespaces.
fn pair(
    client_ns: &TestNetns,
    server_ns: &TestNetns,
    server_address: &str,
) -> (TcpStream, TcpStream) {
    let listener = listen_in(server_ns, server_address);
    let client = connect_in(client_ns, listener.local_addr().expect("addr"));
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

fn by_interface(entries: &[(&str, usize)]) -> BTreeMap<String, u64> {
    entries
        .iter()
        .map(|(name, bytes)| ((*name).to_owned(), *bytes as u64))
        .collect()
}

fn stats<'a>(reply: &'a GetInterfacesReply, label: &str) -> &'a InterfaceStats {
    reply
        .stats
        .get(label)
        .unwrap_or_else(|| panic!("no {label} in {reply:#?}"))
}

/// The sums over interfaces equal `get`'s per-label totals.
fn assert_sums_match_get(daemon: &TestDaemon, reply: &GetInterfacesReply) {
    let totals = daemon.get().stats;
    for (label, stats) in &reply.stats {
        let tx: u64 = stats.tx_bytes_by_interface.values().sum();
        let rx: u64 = stats.rx_bytes_by_interface.values().sum();
        assert_eq!(
            (tx, rx),
            (totals[label].tx_bytes, totals[label].rx_bytes),
            "{label}"
        );
    }
}

/// Wire counts over one veth link: what the client's end sent is what the server's end received.
fn assert_wire_of_one_link(reply: &GetInterfacesReply, c1: &str, s1: &str) {
    // Wire: what c1 sent is what s1 received (veth passes packets unchanged), except the SYN
    // and the handshake's last ACK, which the listener gets, not the accepted socket; and it is
    // the payload plus headers.
    let sent = reply.wire["via-1"][c1];
    let received = reply.wire["srv-1"][s1];
    assert_eq!(
        sent.tx_packets - received.rx_packets,
        2,
        "{sent:?} {received:?}"
    );
    assert!(
        sent.tx_bytes - received.rx_bytes <= 2 * 120,
        "{sent:?} {received:?}"
    );
    assert!(
        sent.tx_bytes > (3 * MIB + 1) as u64 && sent.tx_packets > 0,
        "{sent:?}"
    );
    assert!(sent.tx_bytes < (3 * MIB + 1) as u64 * 11 / 10, "{sent:?}");
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn each_interface_gets_exactly_its_sockets_bytes() {
    let harness = Harness::start("ifaces");
    let daemon = &harness.daemon;
    let client_ns = TestNetns::new("c");
    let first_ns = TestNetns::new("s1");
    let second_ns = TestNetns::new("s2");
    veth(
        &client_ns,
        "c1",
        "198.18.1.1/24",
        &first_ns,
        "s1",
        "198.18.1.2/24",
    );
    veth(
        &client_ns,
        "c2",
        "198.18.2.1/24",
        &second_ns,
        "s2",
        "198.18.2.2/24",
    );

    let (client1, server1) = pair(&client_ns, &first_ns, "198.18.1.2:0");
    let (client2, server2) = pair(&client_ns, &second_ns, "198.18.2.2:0");
    let (local_client, local_server) = tcp_pair(false);
    let mut control = daemon.client();
    control.label(&client1, "via-1").expect("label");
    control.label(&server1, "srv-1").expect("label");
    control.label(&client2, "via-2").expect("label");
    control.label(&server2, "srv-2").expect("label");
    control.label(&local_client, "local").expect("label");

    tcp_send(&client1, &server1, 3 * MIB + 1, 64 * 1024);
    tcp_send(&server1, &client1, 200_000, 1000);
    tcp_send(&client2, &server2, MIB + 2, 3000);
    tcp_send(&server2, &client2, 70_000, 70_000);
    tcp_send(&local_client, &local_server, 123_456, 4096);

    let reply = control.get_interfaces().expect("get_interfaces");
    let c1 = format!("c1/{}", client_ns.name);
    let c2 = format!("c2/{}", client_ns.name);
    let s1 = format!("s1/{}", first_ns.name);
    let s2 = format!("s2/{}", second_ns.name);
    assert_eq!(
        stats(&reply, "via-1").tx_bytes_by_interface,
        by_interface(&[(&c1, 3 * MIB + 1)])
    );
    assert_eq!(
        stats(&reply, "via-1").rx_bytes_by_interface,
        by_interface(&[(&c1, 200_000)])
    );
    assert_eq!(
        stats(&reply, "srv-1").tx_bytes_by_interface,
        by_interface(&[(&s1, 200_000)])
    );
    assert_eq!(
        stats(&reply, "srv-1").rx_bytes_by_interface,
        by_interface(&[(&s1, 3 * MIB + 1)])
    );
    assert_eq!(
        stats(&reply, "via-2").tx_bytes_by_interface,
        by_interface(&[(&c2, MIB + 2)])
    );
    assert_eq!(
        stats(&reply, "via-2").rx_bytes_by_interface,
        by_interface(&[(&c2, 70_000)])
    );
    assert_eq!(
        stats(&reply, "srv-2").rx_bytes_by_interface,
        by_interface(&[(&s2, MIB + 2)])
    );
    assert_eq!(
        stats(&reply, "local").tx_bytes_by_interface,
        by_interface(&[("lo", 123_456)])
    );
    assert_eq!(
        stats(&reply, "local").rx_bytes_by_interface,
        by_interface(&[("lo", 0)])
    );
    assert_eq!(
        stats(&reply, "srv-2").tx_bytes_by_interface,
        by_interface(&[(&s2, 70_000)])
    );
    for name in [&c1, &c2, &s1, &s2, &"lo".to_owned()] {
        assert!(
            reply.interfaces.contains(name),
            "{name} not in {:?}",
            reply.interfaces
        );
    }

    assert_wire_of_one_link(&reply, &c1, &s1);

    assert_sums_match_get(daemon, &reply);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_route_change_splits_a_socket_between_interfaces() {
    let harness = Harness::start("route-move");
    let daemon = &harness.daemon;
    let client_ns = TestNetns::new("c");
    let server_ns = TestNetns::new("r");
    veth(
        &client_ns,
        "c1",
        "198.18.1.1/24",
        &server_ns,
        "r1",
        "198.18.1.2/24",
    );
    veth(
        &client_ns,
        "c2",
        "198.18.2.1/24",
        &server_ns,
        "r2",
        "198.18.2.2/24",
    );
    server_ns.ip(&["addr", "add", "198.18.9.9/32", "dev", "lo"]);
    client_ns.ip(&[
        "route",
        "add",
        "198.18.9.9/32",
        "via",
        "198.18.1.2",
        "dev",
        "c1",
    ]);

    let (client, server) = pair(&client_ns, &server_ns, "198.18.9.9:0");
    daemon.client().label(&client, "mover").expect("label");
    tcp_send(&client, &server, 2 * MIB, 16 * 1024);
    client_ns.ip(&[
        "route",
        "replace",
        "198.18.9.9/32",
        "via",
        "198.18.2.2",
        "dev",
        "c2",
    ]);
    tcp_send(&client, &server, MIB + 11, 16 * 1024);

    let reply = daemon.client().get_interfaces().expect("get_interfaces");
    let tx = &stats(&reply, "mover").tx_bytes_by_interface;
    let on_first = tx
        .get(&format!("c1/{}", client_ns.name))
        .copied()
        .unwrap_or(0);
    let on_second = tx
        .get(&format!("c2/{}", client_ns.name))
        .copied()
        .unwrap_or(0);
    eprintln!("before the route change {on_first}, after {on_second}: {tx:?}");
    // Every byte written before the change left over c1, every byte after over c2.
    assert_eq!(
        (on_first, on_second),
        ((2 * MIB) as u64, (MIB + 11) as u64),
        "{tx:?}"
    );
    assert_eq!(tx.len(), 2, "{tx:?}");
    // The server's ACKs kept coming in over c1 (its route back did not change).
    let wire = &reply.wire["mover"];
    let c1_wire = wire[&format!("c1/{}", client_ns.name)];
    let c2_wire = wire[&format!("c2/{}", client_ns.name)];
    assert!(
        c1_wire.rx_packets > 0 && c2_wire.rx_packets == 0,
        "{wire:?}"
    );
    assert!(c2_wire.tx_packets > 0, "{wire:?}");
    assert_sums_match_get(daemon, &reply);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn renamed_and_deleted_interfaces_keep_their_history() {
    let mut harness = Harness::start("rename");
    let client_ns = TestNetns::new("c");
    let server_ns = TestNetns::new("s");
    veth(
        &client_ns,
        "c1",
        "198.18.1.1/24",
        &server_ns,
        "s1",
        "198.18.1.2/24",
    );
    {
        let (client, server) = pair(&client_ns, &server_ns, "198.18.1.2:0");
        harness
            .daemon
            .client()
            .label(&client, "history")
            .expect("label");
        tcp_send(&client, &server, 500_000, 5000);
    }
    let before = harness
        .daemon
        .client()
        .get_interfaces()
        .expect("get_interfaces");
    let old_name = format!("c1/{}", client_ns.name);
    assert_eq!(
        stats(&before, "history").tx_bytes_by_interface,
        by_interface(&[(&old_name, 500_000)])
    );

    client_ns.ip(&["link", "set", "c1", "down"]);
    client_ns.ip(&["link", "set", "c1", "name", "renamed0"]);
    client_ns.ip(&["link", "set", "renamed0", "up"]);
    let new_name = format!("renamed0/{}", client_ns.name);
    let renamed = harness
        .daemon
        .client()
        .get_interfaces()
        .expect("get_interfaces");
    assert_eq!(
        stats(&renamed, "history").tx_bytes_by_interface,
        by_interface(&[(&new_name, 500_000)])
    );

    // Removed while the daemon is down: a restarted daemon still knows its last name.
    harness.daemon.stop();
    client_ns.ip(&["link", "del", "renamed0"]);
    harness.daemon.restart();
    let daemon = &harness.daemon;
    let deleted = daemon.client().get_interfaces().expect("get_interfaces");
    assert_eq!(
        stats(&deleted, "history").tx_bytes_by_interface,
        by_interface(&[(&new_name, 500_000)])
    );
    assert!(
        deleted.interfaces.contains(&new_name),
        "{:?}",
        deleted.interfaces
    );
    assert_eq!(daemon.stats("history").tx_bytes, 500_000);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_default_route_change_is_seen_within_a_second() {
    let netns = TestNetns::new("t");
    // Two veth pairs inside the namespace stand in for two uplinks (no dummy module here).
    for (name, peer, address) in [
        ("d0", "d0p", "198.18.5.1/24"),
        ("d1", "d1p", "198.18.6.1/24"),
    ] {
        netns.ip(&["link", "add", name, "type", "veth", "peer", "name", peer]);
        netns.ip(&["addr", "add", address, "dev", name]);
        netns.ip(&["link", "set", name, "up"]);
        netns.ip(&["link", "set", peer, "up"]);
    }
    netns.ip(&["route", "add", "default", "via", "198.18.5.2", "dev", "d0"]);
    let cgroup = TestCgroup::enter("default-route");
    let daemon = TestDaemon::start_in_netns("default-route", &cgroup, &netns.name);
    assert_eq!(daemon.get().current_interface.as_deref(), Some("d0"));

    netns.ip(&[
        "route",
        "replace",
        "default",
        "via",
        "198.18.6.2",
        "dev",
        "d1",
    ]);
    let changed = Instant::now();
    loop {
        let current = daemon.get().current_interface;
        if current.as_deref() == Some("d1") {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "still {current:?} after a second"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let reply = daemon.client().get_interfaces().expect("get_interfaces");
    assert_eq!(reply.current_interface.as_deref(), Some("d1"));
    assert!(
        reply.interfaces.contains(&"d0".to_owned()),
        "{:?}",
        reply.interfaces
    );

    // Without an IPv4 default route, IPv6's counts.
    netns.ip(&["route", "del", "default"]);
    assert_eq!(daemon.get().current_interface, None);
    netns.ip(&["-6", "addr", "add", "fd00:5::1/64", "dev", "d0", "nodad"]);
    netns.ip(&[
        "-6",
        "route",
        "add",
        "default",
        "via",
        "fd00:5::2",
        "dev",
        "d0",
    ]);
    assert_eq!(daemon.get().current_interface.as_deref(), Some("d0"));
    drop(daemon);
}
