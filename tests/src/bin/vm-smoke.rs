//! The exact-count smoke suite that `cargo xtask vm-test` runs inside each QEMU guest, as a
//! static binary next to a static `sockstatsd` (`$SOCKSTATSD`).
//!
//! One daemon accounts the whole guest (`--payload-hooks $SOCKSTATS_PAYLOAD_HOOKS`, default
//! `auto`); every check moves traffic over loopback on sockets
//! with labels of their own and compares the daemon's per-label bytes with what the check
//! itself sent and received, to the byte. Output, one line each, for the host to parse:
//! `VMTEST hooks <set> <reason>`, `VMTEST check <name> ok` or `VMTEST check <name> FAIL
//! <why>`, then `VMTEST end <failures>`. Exits non-zero on any failure.
use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket},
    os::fd::AsFd,
    panic::{self, AssertUnwindSafe},
    process::ExitCode,
    thread,
    time::{Duration, Instant},
};

use sockstats_common::protocol::ByteCounts;
use sockstats_tests::{
    traffic::{tcp_pair, tcp_send, udp_pair, udp_send},
    TestCgroup, TestDaemon,
};

const KIB: usize = 1024;

fn counts(tx: u64, rx: u64) -> ByteCounts {
    ByteCounts {
        tx_bytes: tx,
        rx_bytes: rx,
    }
}

fn bytes(n: usize) -> u64 {
    u64::try_from(n).expect("fits")
}

/// `label`'s bytes must become exactly `want`; closed sockets are folded by the kernel at
/// release, which may finish a moment after `close` returns.
fn expect_label(daemon: &TestDaemon, label: &str, want: ByteCounts) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = daemon.stats(label);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: counted tx {} rx {}, moved tx {} rx {}",
            got.tx_bytes,
            got.rx_bytes,
            want.tx_bytes,
            want.rx_bytes
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn family(ipv6: bool) -> &'static str {
    if ipv6 {
        "6"
    } else {
        "4"
    }
}

/// Both ends labeled before any traffic; the server end is the accepted socket.
fn tcp_labeled_before(daemon: &TestDaemon, ipv6: bool) {
    let (client, server) = tcp_pair(ipv6);
    let (c, s) = (
        format!("tcp{}-client", family(ipv6)),
        format!("tcp{}-server", family(ipv6)),
    );
    let mut control = daemon.client();
    control.label(&client, &c).expect("label client");
    control.label(&server, &s).expect("label server");
    let (up, down) = (300 * KIB + 17, 70 * KIB + 3);
    tcp_send(&client, &server, up, 16 * KIB);
    tcp_send(&server, &client, down, 1000);
    expect_label(daemon, &c, counts(bytes(up), bytes(down)));
    expect_label(daemon, &s, counts(bytes(down), bytes(up)));
}

fn udp_labeled_before(daemon: &TestDaemon, ipv6: bool) {
    let (a, b) = udp_pair(ipv6);
    let (la, lb) = (
        format!("udp{}-a", family(ipv6)),
        format!("udp{}-b", family(ipv6)),
    );
    let mut control = daemon.client();
    control.label(&a, &la).expect("label a");
    control.label(&b, &lb).expect("label b");
    let a_to_b = udp_send(&a, &b, 300);
    let b_to_a = udp_send(&b, &a, 200);
    expect_label(daemon, &la, counts(a_to_b, b_to_a));
    expect_label(daemon, &lb, counts(b_to_a, a_to_b));
}

/// Traffic first, labels afterwards: the labels get every byte since the sockets' creation.
fn labeled_after(daemon: &TestDaemon, ipv6: bool) {
    let (client, server) = tcp_pair(ipv6);
    let (a, b) = udp_pair(ipv6);
    let (up, down) = (200 * KIB + 5, 9 * KIB + 1);
    tcp_send(&client, &server, up, 8 * KIB);
    tcp_send(&server, &client, down, 512);
    let a_to_b = udp_send(&a, &b, 100);
    let tcp_label = format!("after{}-tcp", family(ipv6));
    let udp_label = format!("after{}-udp", family(ipv6));
    let mut control = daemon.client();
    control.label(&client, &tcp_label).expect("label tcp");
    control.label(&b, &udp_label).expect("label udp");
    expect_label(daemon, &tcp_label, counts(bytes(up), bytes(down)));
    expect_label(daemon, &udp_label, counts(0, a_to_b));
}

/// An accepted socket that sends before it ever received anything.
fn accepted_sends_first(daemon: &TestDaemon, ipv6: bool) {
    let (client, server) = tcp_pair(ipv6);
    let label = format!("accepted{}", family(ipv6));
    daemon
        .client()
        .label(&server, &label)
        .expect("label accepted");
    let (first, then) = (50 * KIB + 9, 20 * KIB + 1);
    tcp_send(&server, &client, first, 4 * KIB);
    tcp_send(&client, &server, then, 4 * KIB);
    expect_label(daemon, &label, counts(bytes(first), bytes(then)));
}

/// Sockets closed after their traffic: their bytes stay under their labels.
fn closed(daemon: &TestDaemon, ipv6: bool) {
    let (client, server) = tcp_pair(ipv6);
    let (a, b) = udp_pair(ipv6);
    let tcp_label = format!("closed{}-tcp", family(ipv6));
    let udp_label = format!("closed{}-udp", family(ipv6));
    let mut control = daemon.client();
    control.label(&client, &tcp_label).expect("label tcp");
    control.label(&a, &udp_label).expect("label udp");
    let (up, down) = (100 * KIB + 11, 30 * KIB + 13);
    tcp_send(&client, &server, up, 8 * KIB);
    tcp_send(&server, &client, down, 2 * KIB);
    let a_to_b = udp_send(&a, &b, 150);
    let b_to_a = udp_send(&b, &a, 50);
    drop((client, server, a, b));
    expect_label(daemon, &tcp_label, counts(bytes(up), bytes(down)));
    expect_label(daemon, &udp_label, counts(a_to_b, b_to_a));
}

/// An IPv6 socket talking to an IPv4 one through a v4-mapped address: `udpv6_sendmsg` hands
/// such datagrams to `udp_sendmsg`, and each must still be counted once.
fn udp_v4_mapped(daemon: &TestDaemon) {
    let v4 = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind v4");
    let v6 = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).expect("bind v6");
    let mapped = SocketAddr::from((
        Ipv4Addr::LOCALHOST.to_ipv6_mapped(),
        v4.local_addr().expect("addr").port(),
    ));
    v6.connect(mapped).expect("connect v4-mapped");
    let v6_port = v6.local_addr().expect("addr").port();
    v4.connect((Ipv4Addr::LOCALHOST, v6_port))
        .expect("connect v4");
    let mut control = daemon.client();
    control.label(&v6, "mapped-v6").expect("label v6");
    control.label(&v4, "mapped-v4").expect("label v4");
    let v6_to_v4 = udp_send(&v6, &v4, 120);
    let v4_to_v6 = udp_send(&v4, &v6, 80);
    expect_label(daemon, "mapped-v6", counts(v6_to_v4, v4_to_v6));
    expect_label(daemon, "mapped-v4", counts(v4_to_v6, v6_to_v4));
}

/// Sends `len` bytes of a fresh file to the socket `to` with `sendfile(2)`.
fn sendfile_to(to: &impl AsFd, len: usize) {
    let mut file = tempfile::tempfile().expect("temp file");
    let data: Vec<u8> = (0..len)
        .map(|i| u8::try_from(i % 253).expect("below 253"))
        .collect();
    file.write_all(&data).expect("write temp file");
    let mut offset: libc::off_t = 0;
    let mut left = len;
    while left > 0 {
        let sent = sockstats_tests::sys::sendfile(to.as_fd(), file.as_fd(), &mut offset, left)
            .expect("sendfile failed");
        assert!(sent > 0, "sendfile sent nothing");
        left -= sent;
    }
}

/// sendfile(2) to a TCP and to a UDP socket (through `sendpage` before 6.5, `sendmsg` after).
fn sendfile(daemon: &TestDaemon) {
    let (client, mut server) = tcp_pair(false);
    let (a, b) = udp_pair(false);
    let mut control = daemon.client();
    control.label(&client, "sendfile-tcp").expect("label tcp");
    control.label(&a, "sendfile-udp").expect("label udp");
    let tcp_bytes = 200 * KIB + 21;
    let reader = thread::spawn(move || {
        let mut buf = vec![0u8; tcp_bytes];
        server.read_exact(&mut buf).expect("read");
    });
    sendfile_to(&client, tcp_bytes);
    reader.join().expect("reader");
    let udp_bytes = 1000;
    sendfile_to(&a, udp_bytes);
    let mut buf = [0u8; 2048];
    assert_eq!(b.recv(&mut buf).expect("recv"), udp_bytes);
    expect_label(daemon, "sendfile-tcp", counts(bytes(tcp_bytes), 0));
    expect_label(daemon, "sendfile-udp", counts(bytes(udp_bytes), 0));
}

/// Sockets made before the daemon started (no `sock_create` saw them; before 5.12 nothing asked
/// their cookie yet): they get an entry on first traffic and count from then on.
fn older_than_the_daemon(daemon: &TestDaemon, sockets: &OldSockets) {
    let (client, server) = &sockets.tcp;
    let (a, b) = &sockets.udp;
    let mut control = daemon.client();
    control.label(client, "old-tcp").expect("label tcp");
    control.label(a, "old-udp").expect("label udp");
    let (up, down) = (60 * KIB + 7, 5 * KIB + 3);
    tcp_send(client, server, up, 4 * KIB);
    tcp_send(server, client, down, 1000);
    let a_to_b = udp_send(a, b, 90);
    let b_to_a = udp_send(b, a, 40);
    expect_label(daemon, "old-tcp", counts(bytes(up), bytes(down)));
    expect_label(daemon, "old-udp", counts(a_to_b, b_to_a));
}

/// Sockets opened before the daemon starts.
struct OldSockets {
    tcp: (TcpStream, TcpStream),
    udp: (UdpSocket, UdpSocket),
}

/// Nothing went to the overflow bucket or missed its cookie.
fn nothing_overflowed(daemon: &TestDaemon) {
    let status = daemon.client().status().expect("status");
    for name in ["overflow_tx_bytes", "overflow_rx_bytes", "no_cookie"] {
        let value = status.counters.get(name).copied();
        assert_eq!(value, Some(0), "counter {name} is {value:?}");
    }
}

type Check = (&'static str, Box<dyn Fn(&TestDaemon)>);

fn checks(old: OldSockets) -> Vec<Check> {
    let mut checks: Vec<Check> = Vec::new();
    checks.push((
        "older-than-daemon",
        Box::new(move |d| older_than_the_daemon(d, &old)),
    ));
    for ipv6 in [false, true] {
        let v = if ipv6 { "ipv6" } else { "ipv4" };
        let name = |what: &str| -> &'static str { Box::leak(format!("{what}/{v}").into()) };
        checks.push((name("tcp"), Box::new(move |d| tcp_labeled_before(d, ipv6))));
        checks.push((name("udp"), Box::new(move |d| udp_labeled_before(d, ipv6))));
        checks.push((
            name("labeled-after"),
            Box::new(move |d| labeled_after(d, ipv6)),
        ));
        checks.push((
            name("accepted"),
            Box::new(move |d| accepted_sends_first(d, ipv6)),
        ));
        checks.push((name("closed"), Box::new(move |d| closed(d, ipv6))));
    }
    checks.push(("udp/v4-mapped", Box::new(udp_v4_mapped)));
    checks.push(("sendfile/ipv4", Box::new(sendfile)));
    checks.push(("no-overflow", Box::new(nothing_overflowed)));
    checks
}

fn main() -> ExitCode {
    let old = OldSockets {
        tcp: tcp_pair(false),
        udp: udp_pair(true),
    };
    let cgroup = TestCgroup::enter("vm");
    // vm-test passes `SOCKSTATS_PAYLOAD_HOOKS=fexit` on the kernel command line (the kernel
    // hands it to /init as an environment variable) to test the fallback on new kernels.
    let hooks = std::env::var("SOCKSTATS_PAYLOAD_HOOKS").unwrap_or_else(|_| "auto".to_owned());
    let daemon =
        TestDaemon::start_whole_host_with_args("vm", &cgroup, &["--payload-hooks", &hooks]);
    let status = daemon.client().status().expect("status");
    println!(
        "VMTEST hooks {} {}",
        status.payload_hooks.set, status.payload_hooks.reason
    );
    for limit in &status.kernel_limits {
        println!("VMTEST limit {limit}");
    }
    let mut failures = 0;
    for (name, check) in checks(old) {
        match panic::catch_unwind(AssertUnwindSafe(|| check(&daemon))) {
            Ok(()) => println!("VMTEST check {name} ok"),
            Err(payload) => {
                failures += 1;
                let why = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                println!("VMTEST check {name} FAIL {}", why.replace('\n', " "));
            }
        }
    }
    println!("VMTEST end {failures}");
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("--- sockstatsd log ---\n{}", daemon.log());
        ExitCode::FAILURE
    }
}
