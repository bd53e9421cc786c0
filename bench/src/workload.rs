//! Loopback workloads: one TCP stream at a fixed write size, 64-byte UDP datagrams, and short
//! TCP connections one after another. Each makes its sockets afresh (so sockstats sees them
//! created) and measures, after a warm-up, what was done per second.
use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::sockets;

/// How long each measurement warms up and then counts.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
}

/// Counts what arrives between the end of the warm-up and the end of the measurement; returns
/// units per second.
pub fn measure(counter: &AtomicU64, timing: Timing) -> f64 {
    thread::sleep(timing.warmup);
    let (start_count, start) = (counter.load(Ordering::Relaxed), Instant::now());
    thread::sleep(timing.measure);
    let (end_count, elapsed) = (counter.load(Ordering::Relaxed), start.elapsed());
    #[expect(clippy::cast_precision_loss, reason = "a rate")]
    let rate = (end_count - start_count) as f64 / elapsed.as_secs_f64();
    rate
}

/// Bytes per second through one loopback TCP connection written `write_size` bytes at a time.
pub fn tcp_throughput(write_size: usize, timing: Timing) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind")?;
    let mut writer = TcpStream::connect(listener.local_addr()?).context("connect")?;
    let (mut reader, _) = listener.accept().context("accept")?;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    let writer_stop = Arc::clone(&stop);
    let writer_thread = thread::spawn(move || {
        let buffer = vec![0x5au8; write_size];
        while !writer_stop.load(Ordering::Relaxed) {
            if writer.write_all(&buffer).is_err() {
                break;
            }
        }
        let _ = writer.shutdown(Shutdown::Write);
    });
    let reader_count = Arc::clone(&received);
    let reader_thread = thread::spawn(move || {
        let mut buffer = vec![0u8; 256 * 1024];
        while let Ok(n @ 1..) = reader.read(&mut buffer) {
            reader_count.fetch_add(n as u64, Ordering::Relaxed);
        }
    });
    let rate = measure(&received, timing);
    stop.store(true, Ordering::Relaxed);
    writer_thread.join().expect("writer thread");
    reader_thread.join().expect("reader thread");
    Ok(rate)
}

/// Datagrams per second received over a connected loopback UDP pair, `size` bytes each.
pub fn udp_rate(size: usize, timing: Timing) -> Result<f64> {
    let receiver = UdpSocket::bind("127.0.0.1:0").context("bind")?;
    let sender = UdpSocket::bind("127.0.0.1:0").context("bind")?;
    sender.connect(receiver.local_addr()?)?;
    receiver.connect(sender.local_addr()?)?;
    udp_flood(sender, None, receiver, size, timing)
}

/// Sends `size`-byte datagrams from `sender` to `targets` in turn (`None`: to the connected
/// peer) while `receiver` counts what arrives; returns datagrams received per second.
pub fn udp_flood(
    sender: UdpSocket,
    targets: Option<Vec<SocketAddr>>,
    receiver: UdpSocket,
    size: usize,
    timing: Timing,
) -> Result<f64> {
    // The receiver wakes up at least this often to see the stop flag.
    receiver.set_read_timeout(Some(Duration::from_millis(50)))?;
    let arrivals = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sender_stop = Arc::clone(&stop);
    let sender_thread = thread::spawn(move || {
        let datagram = vec![0xa5u8; size];
        let mut turn = 0;
        while !sender_stop.load(Ordering::Relaxed) {
            // A full receive queue drops datagrams; only receptions count.
            let _ = match &targets {
                None => sender.send(&datagram),
                Some(targets) => {
                    turn = (turn + 1) % targets.len();
                    sender.send_to(&datagram, targets[turn])
                }
            };
        }
    });
    let receiver_stop = Arc::clone(&stop);
    let receiver_count = Arc::clone(&arrivals);
    let receiver_thread = thread::spawn(move || {
        let mut buffer = [0u8; 2048];
        while !receiver_stop.load(Ordering::Relaxed) {
            if receiver.recv_from(&mut buffer).is_ok() {
                receiver_count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let rate = measure(&arrivals, timing);
    stop.store(true, Ordering::Relaxed);
    sender_thread.join().expect("sender thread");
    receiver_thread.join().expect("receiver thread");
    Ok(rate)
}

/// Loopback TCP connections opened, used (one byte each way) and closed per second, one at a
/// time: the per-connection programs (`sock_create`, `sock_release`, the close backstop) at work.
pub fn tcp_connections(timing: Timing) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind")?;
    let address = listener.local_addr()?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
        thread::spawn(move || -> Result<()> {
            while !stop.load(Ordering::Relaxed) {
                drop(sockets::connect_once(&listener, address)?);
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let rate = measure(&done, timing);
    stop.store(true, Ordering::Relaxed);
    worker.join().expect("connection thread")?;
    Ok(rate)
}

/// The connections of [`tcp_connections`], made one after another on this thread for
/// `duration`; returns how many were made (for a cost per connection, not a rate).
pub fn tcp_connections_for(duration: Duration) -> Result<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind")?;
    let address = listener.local_addr()?;
    let start = Instant::now();
    let mut made = 0;
    while start.elapsed() < duration {
        drop(sockets::connect_once(&listener, address)?);
        made += 1;
    }
    Ok(made)
}
