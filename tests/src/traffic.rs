//! Loopback traffic whose exact byte counts the test knows: it counts what `send`/`recv`
//! returned, the same quantity sockstats accounts.
use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
};

fn loopback(ipv6: bool) -> SocketAddr {
    if ipv6 {
        SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
    } else {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }
}

/// A connected TCP pair over 127.0.0.1 or `::1`: (client, accepted server side).
#[must_use]
pub fn tcp_pair(ipv6: bool) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(loopback(ipv6)).expect("bind listener");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

/// Moves exactly `bytes` from `from` to `to` (writer on another thread, in `chunk`-sized
/// writes), and checks the data arrived intact.
pub fn tcp_send(from: &TcpStream, to: &TcpStream, bytes: usize, chunk: usize) {
    let mut writer = from.try_clone().expect("clone");
    let sender = thread::spawn(move || {
        let block: Vec<u8> = (0..chunk)
            .map(|i| u8::try_from(i % 251).expect("below 251"))
            .collect();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk);
            writer.write_all(&block[..n]).expect("write");
            left -= n;
        }
    });
    let mut reader = to.try_clone().expect("clone");
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < bytes {
        let want = buf.len().min(bytes - got);
        let n = reader.read(&mut buf[..want]).expect("read");
        assert!(n > 0, "peer closed after {got} of {bytes} bytes");
        got += n;
    }
    sender.join().expect("sender thread");
}

/// A connected UDP pair over 127.0.0.1 or `::1`.
#[must_use]
pub fn udp_pair(ipv6: bool) -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind(loopback(ipv6)).expect("bind");
    let b = UdpSocket::bind(loopback(ipv6)).expect("bind");
    a.connect(b.local_addr().expect("addr")).expect("connect");
    b.connect(a.local_addr().expect("addr")).expect("connect");
    (a, b)
}

/// Sends `count` datagrams of varying sizes (1..=1400 bytes) from `from` to `to` in small
/// lock-step batches so the receive buffer never overflows, and receives them all.
/// Returns the payload bytes sent (= received).
#[must_use = "the bytes moved are what the test compares against"]
pub fn udp_send(from: &UdpSocket, to: &UdpSocket, count: usize) -> u64 {
    const BATCH: usize = 32;
    let payload = vec![0x5a_u8; 1400];
    let mut buf = [0u8; 2048];
    let mut total = 0u64;
    let mut sent = 0;
    while sent < count {
        let batch = BATCH.min(count - sent);
        let mut batch_bytes = 0;
        for i in 0..batch {
            let size = 1 + (sent + i) * 37 % 1400;
            assert_eq!(from.send(&payload[..size]).expect("send"), size);
            batch_bytes += size;
        }
        let mut received = 0;
        for _ in 0..batch {
            received += to.recv(&mut buf).expect("recv");
        }
        assert_eq!(received, batch_bytes, "datagrams lost on loopback");
        total += batch_bytes as u64;
        sent += batch;
    }
    total
}

/// A loopback server for one connection: reads until the client closes its side, then sends
/// `reply` bytes and closes. Returns its address and a handle giving the bytes it read.
///
/// # Panics
/// When the server cannot bind, accept, read or write.
#[must_use]
pub fn serve_once(address: &str, reply: usize) -> (String, thread::JoinHandle<usize>) {
    let listener = TcpListener::bind(address).expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut received = Vec::new();
        stream.read_to_end(&mut received).expect("read");
        stream.write_all(&vec![b'r'; reply]).expect("reply");
        stream.shutdown(Shutdown::Both).expect("shutdown");
        received.len()
    });
    (address, handle)
}

/// Streams bytes from `from` to `to` as fast as they go until [`Stream::finish`], which says
/// how many were sent and received (a daemon can be killed and restarted meanwhile).
pub struct Stream {
    stop: Arc<AtomicBool>,
    writer: thread::JoinHandle<u64>,
    reader: thread::JoinHandle<u64>,
}

impl Stream {
    #[must_use]
    pub fn start(from: &TcpStream, to: &TcpStream) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut out = from.try_clone().expect("clone");
        let mut inbound = to.try_clone().expect("clone");
        let stopping = Arc::clone(&stop);
        let writer = thread::spawn(move || {
            let block = vec![7u8; 60_001];
            let mut sent = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                out.write_all(&block).expect("write");
                sent += block.len() as u64;
            }
            out.shutdown(Shutdown::Write).expect("shutdown");
            sent
        });
        let reader = thread::spawn(move || {
            let mut buffer = vec![0u8; 1 << 16];
            let mut received = 0u64;
            loop {
                match inbound.read(&mut buffer).expect("read") {
                    0 => return received,
                    n => received += n as u64,
                }
            }
        });
        Self {
            stop,
            writer,
            reader,
        }
    }

    /// Stops the writer, waits for the reader to see the end; (sent, received).
    #[must_use]
    pub fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.writer.join().expect("writer");
        (sent, self.reader.join().expect("reader"))
    }
}
