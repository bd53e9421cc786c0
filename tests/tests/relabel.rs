//! Relabeling stays exact under load: a socket relabeled back and forth a thousand times while
//! it sends without pause ends with every byte it moved under its last label, none under the
//! other, and the label totals equal to the bytes the test itself sent and received.
//!
//! Only the sending socket is labeled; its peer's bytes stay `unlabeled`, so each direction of
//! the traffic has exactly one place it may show up.
use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, TcpStream, UdpSocket},
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use sockstats_common::protocol::{ByteCounts, GetReply};
use sockstats_tests::{
    traffic::{tcp_pair, udp_pair},
    Harness, TestDaemon,
};

/// How many times the sender's socket is labeled, alternating between [`LABELS`].
const RELABELS: usize = 1000;
const LABELS: [&str; 2] = ["relabel-a", "relabel-b"];
/// The label of the last relabel, and the other one.
const LAST: &str = LABELS[(RELABELS - 1) % 2];
const OTHER: &str = LABELS[RELABELS % 2];
/// Relabels whose round trip must see the sender's count grow: proof that they overlapped
/// traffic, so the test cannot pass with the relabels and the bytes taking turns. (Each relabel
/// also waits for new sends since the one before, so none of them finds the socket idle.)
const MIN_OVERLAPPING: usize = 300;
/// Every this many relabels, a `get` checks that the sender's bytes are all under the label
/// just set.
const CHECK_EVERY: usize = 100;
/// The largest single write: a `get` may count one write the sender has not added yet.
const MAX_WRITE: usize = 16 * 1024;
/// UDP datagrams sent before the sender waits for the receiver to drain them: few enough that
/// loopback's receive buffer never drops one.
const UDP_BATCH: usize = 32;
/// The longest a read or write may block before the test fails instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The sender's and the receiver's progress, counted from what `send`/`recv` returned.
#[derive(Default)]
struct Traffic {
    stop: AtomicBool,
    sent: AtomicU64,
    received: AtomicU64,
}

impl Traffic {
    fn add_sent(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Ordering::SeqCst);
    }

    fn add_received(&self, bytes: usize) {
        self.received.fetch_add(bytes as u64, Ordering::SeqCst);
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Tells the sender to stop when dropped, also when the relabel loop panics: a sender that
/// never stops would keep `thread::scope`, and the test, from ever returning.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Writes 1 byte to 16 KiB at a time until told to stop, then closes its side of the stream.
fn tcp_sender(mut stream: TcpStream, traffic: &Traffic) {
    stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let block: Vec<u8> = (0..MAX_WRITE)
        .map(|i| u8::try_from(i % 251).expect("below 251"))
        .collect();
    let mut writes = 0;
    while !traffic.stopping() {
        let size = 1 + writes * 7919 % MAX_WRITE;
        let written = stream
            .write(&block[..size])
            .unwrap_or_else(|e| panic!("write after {} bytes: {e}", traffic.sent()));
        traffic.add_sent(written);
        writes += 1;
    }
    stream.shutdown(Shutdown::Write).expect("shutdown");
}

/// Reads until the sender closes its side.
fn tcp_receiver(mut stream: TcpStream, traffic: &Traffic) {
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let read = stream
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read after {} bytes: {e}", traffic.received()));
        if read == 0 {
            return;
        }
        traffic.add_received(read);
    }
}

/// Sends batches of datagrams of 1 to 1400 bytes until told to stop, announcing each batch to
/// the receiver and waiting until it has read them. Returning closes `batches`, which ends the
/// receiver.
#[expect(
    clippy::needless_pass_by_value,
    reason = "the channel ends are dropped on return, also on a panic: that ends the peer's wait"
)]
fn udp_sender(
    socket: &UdpSocket,
    traffic: &Traffic,
    batches: mpsc::Sender<usize>,
    drained: mpsc::Receiver<()>,
) {
    let payload = [0x5a_u8; 1400];
    let mut datagrams = 0;
    while !traffic.stopping() {
        for _ in 0..UDP_BATCH {
            let size = 1 + datagrams * 37 % payload.len();
            let sent = socket.send(&payload[..size]).expect("send");
            assert_eq!(sent, size, "short datagram");
            traffic.add_sent(sent);
            datagrams += 1;
        }
        batches.send(UDP_BATCH).expect("the receiver quit");
        drained
            .recv_timeout(IO_TIMEOUT)
            .expect("the receiver did not drain a batch");
    }
}

/// Reads each announced batch; ends when the sender is done (its channel closes).
#[expect(
    clippy::needless_pass_by_value,
    reason = "the channel ends are dropped on return, also on a panic: that ends the peer's wait"
)]
fn udp_receiver(
    socket: &UdpSocket,
    traffic: &Traffic,
    batches: mpsc::Receiver<usize>,
    drained: mpsc::Sender<()>,
) {
    socket.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let mut buf = [0u8; 2048];
    while let Ok(count) = batches.recv() {
        for _ in 0..count {
            let read = socket
                .recv(&mut buf)
                .expect("recv (a datagram lost on loopback?)");
            traffic.add_received(read);
        }
        // The sender may have stopped waiting; it then sends no more batches either.
        let _ = drained.send(());
    }
}

/// Waits until the sender has sent more than `bytes`, so that every relabel has traffic
/// between it and the one before (under CPU contention the sender may not get to run during
/// a round trip of a fraction of a millisecond).
fn wait_for_sends_beyond(traffic: &Traffic, bytes: u64) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while traffic.sent() <= bytes {
        assert!(
            Instant::now() < deadline,
            "the sender sent nothing after {bytes} bytes for {IO_TIMEOUT:?}"
        );
        thread::yield_now();
    }
}

/// The bytes of `label` in `reply` (zeros when it is not listed).
fn of(reply: &GetReply, label: &str) -> ByteCounts {
    reply.stats.get(label).copied().unwrap_or_default()
}

/// Right after `socket` was put under `label`, while it sends: every byte it sent is under
/// `label`, none under the other one, and the count lies between the sender's count before
/// the `get` and after it (plus the one write the sender may not have added yet).
fn assert_sender_under(daemon: &TestDaemon, label: &str, traffic: &Traffic) {
    let other = LABELS.iter().find(|l| **l != label).expect("two labels");
    let before = traffic.sent();
    let reply = daemon.get();
    let after = traffic.sent();
    let tx = of(&reply, label).tx_bytes;
    assert!(
        (before..=after + MAX_WRITE as u64).contains(&tx),
        "{label} has {tx} tx bytes, the sender had sent {before} to {after}: {reply:?}"
    );
    assert_eq!(of(&reply, other).tx_bytes, 0, "{reply:?}");
}

/// Labels `socket` [`RELABELS`] times, alternating between [`LABELS`], each time after the
/// sender moved more bytes, checking every [`CHECK_EVERY`] that the bytes followed. Returns how
/// many relabels saw the sender's count grow while their request was under way.
fn relabel_back_and_forth(
    daemon: &TestDaemon,
    socket: BorrowedFd<'_>,
    protocol: &str,
    traffic: &Traffic,
) -> usize {
    let mut control = daemon.client();
    let mut overlapping = 0;
    let mut after = 0;
    for n in 0..RELABELS {
        let label = LABELS[n % 2];
        wait_for_sends_beyond(traffic, after);
        let before = traffic.sent();
        let reply = control
            .label(socket, label)
            .unwrap_or_else(|e| panic!("relabel {n} to {label}: {e}"));
        after = traffic.sent();
        if after > before {
            overlapping += 1;
        }
        assert_eq!(reply.sockets.len(), 1, "{reply:?}");
        assert_eq!(reply.sockets[0].protocol, protocol, "{reply:?}");
        if n % CHECK_EVERY == CHECK_EVERY - 1 {
            assert_sender_under(daemon, label, traffic);
        }
    }
    overlapping
}

/// Runs `send` and `receive` on their own threads, relabels `socket` while they do, stops the
/// sender and waits for the receiver to drain. Returns how many relabels overlapped traffic.
fn relabel_during<S, R>(
    daemon: &TestDaemon,
    socket: BorrowedFd<'_>,
    protocol: &str,
    traffic: &Traffic,
    send: S,
    receive: R,
) -> usize
where
    S: FnOnce() + Send,
    R: FnOnce() + Send,
{
    thread::scope(|scope| {
        let stop = StopOnDrop(&traffic.stop);
        let receiver = scope.spawn(receive);
        let sender = scope.spawn(send);
        let overlapping = relabel_back_and_forth(daemon, socket, protocol, traffic);
        drop(stop);
        sender.join().expect("sender thread");
        receiver.join().expect("receiver thread");
        overlapping
    })
}

/// After the traffic: the sender's bytes all under [`LAST`], none under [`OTHER`], the
/// receiver's under `unlabeled`, and all labels plus overflow summing to what moved.
fn assert_exact(reply: &GetReply, sent: u64, received: u64, when: &str) {
    let zero = ByteCounts::default();
    assert_eq!(reply.overflow, zero, "{when}: overflow: {reply:?}");
    assert_eq!(
        of(reply, LAST),
        ByteCounts {
            tx_bytes: sent,
            rx_bytes: 0
        },
        "{when}: the last label: {reply:?}"
    );
    assert_eq!(of(reply, OTHER), zero, "{when}: the other label: {reply:?}");
    assert_eq!(
        of(reply, "unlabeled"),
        ByteCounts {
            tx_bytes: 0,
            rx_bytes: received
        },
        "{when}: the receiver: {reply:?}"
    );
    let total = reply
        .stats
        .values()
        .fold(reply.overflow, |sum, counts| ByteCounts {
            tx_bytes: sum.tx_bytes + counts.tx_bytes,
            rx_bytes: sum.rx_bytes + counts.rx_bytes,
        });
    assert_eq!(
        total,
        ByteCounts {
            tx_bytes: sent,
            rx_bytes: received
        },
        "{when}: all labels and overflow: {reply:?}"
    );
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Tcp,
    Udp,
}

fn relabeling_under_load_is_exact(name: &str, transport: Transport, ipv6: bool) {
    let started = Instant::now();
    let harness = Harness::start(name);
    let daemon = &harness.daemon;
    let traffic = Traffic::default();
    let relabeling = Instant::now();
    // Each arm returns the sockets so that they stay open for the first `get`.
    let (overlapping, sockets): (usize, [OwnedFd; 2]) = match transport {
        Transport::Tcp => {
            let (client, server) = tcp_pair(ipv6);
            let writer = client.try_clone().expect("clone");
            let reader = server.try_clone().expect("clone");
            let overlapping = relabel_during(
                daemon,
                client.as_fd(),
                "tcp",
                &traffic,
                || tcp_sender(writer, &traffic),
                || tcp_receiver(reader, &traffic),
            );
            (overlapping, [client.into(), server.into()])
        }
        Transport::Udp => {
            let (a, b) = udp_pair(ipv6);
            let (announce, batches) = mpsc::channel();
            let (drain_done, drained) = mpsc::channel();
            let overlapping = relabel_during(
                daemon,
                a.as_fd(),
                "udp",
                &traffic,
                || udp_sender(&a, &traffic, announce, drained),
                || udp_receiver(&b, &traffic, batches, drain_done),
            );
            (overlapping, [a.into(), b.into()])
        }
    };
    let relabel_time = relabeling.elapsed();
    let sent = traffic.sent();
    let received = traffic.received();
    eprintln!(
        "{name}: {RELABELS} relabels in {relabel_time:?}, {overlapping} overlapping traffic; \
         {sent} bytes sent, {received} received"
    );
    assert_eq!(sent, received, "the receiver did not get every byte");
    assert!(
        overlapping >= MIN_OVERLAPPING,
        "only {overlapping} of {RELABELS} relabels overlapped traffic ({sent} bytes sent)"
    );

    assert_exact(&daemon.get(), sent, received, "live sockets");
    // Closing folds each socket into its label's totals: the same numbers, now from there.
    drop(sockets);
    assert_exact(&daemon.get(), sent, received, "closed sockets");
    eprintln!("{name}: {:?} in all", started.elapsed());
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn tcp_over_ipv4_relabeled_under_load_is_exact() {
    relabeling_under_load_is_exact("relabel-tcp4", Transport::Tcp, false);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn tcp_over_ipv6_relabeled_under_load_is_exact() {
    relabeling_under_load_is_exact("relabel-tcp6", Transport::Tcp, true);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn udp_over_ipv4_relabeled_under_load_is_exact() {
    relabeling_under_load_is_exact("relabel-udp4", Transport::Udp, false);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn udp_over_ipv6_relabeled_under_load_is_exact() {
    relabeling_under_load_is_exact("relabel-udp6", Transport::Udp, true);
}

/// Only the daemon may relabel: a `SOL_SOCKSTATS` request without its secret goes on to the
/// kernel, which knows no such option level, and the socket keeps its label and its bytes.
#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_relabel_without_the_daemons_secret_is_refused_and_changes_nothing() {
    use std::os::fd::AsFd as _;
    let harness = Harness::start("relabel-secret");
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(false);
    daemon.client().label(&client, "kept").expect("label");
    sockstats_tests::traffic::tcp_send(&client, &server, 5000, 1000);
    for token in [0, 1, 0x5eed_5eed_5eed_5eed] {
        let request = sockstats_common::RelabelRequest {
            label: 0,
            pad: 0,
            cookie: 0,
            token,
        };
        let result = sockstats_tests::sys::setsockopt_bytes(
            client.as_fd(),
            sockstats_common::SOL_SOCKSTATS,
            sockstats_common::SO_SOCKSTATS_LABEL,
            &request.to_bytes(),
        );
        let error = result.expect_err(&format!(
            "a foreign relabel with token {token:#x} was taken"
        ));
        assert_eq!(error.raw_os_error(), Some(libc::ENOPROTOOPT), "{error}");
    }
    assert_eq!(
        daemon.stats("kept"),
        ByteCounts {
            tx_bytes: 5000,
            rx_bytes: 0
        }
    );
}
