//! Many sockets: live ones held open (for `get` at 1,000 / 10,000 / 100,000 sockets) and
//! loopback TCP connections opened and closed in batches (churn).
use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    os::fd::OwnedFd,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::sys;

/// Unbound UDP sockets held open. Each passes `cgroup/sock_create`, so each has a sockstats
/// entry, as a live socket of a busy host would.
#[derive(Default)]
pub struct LiveSockets {
    sockets: Vec<OwnedFd>,
}

impl LiveSockets {
    /// Opens sockets until `count` are held.
    pub fn grow_to(&mut self, count: usize) -> Result<()> {
        self.sockets
            .reserve(count.saturating_sub(self.sockets.len()));
        while self.sockets.len() < count {
            self.sockets.push(sys::udp_socket().with_context(|| {
                format!("cannot open socket {} of {count}", self.sockets.len() + 1)
            })?);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn close_all(&mut self) {
        self.sockets = Vec::new();
    }
}

/// Opens and closes `total` loopback TCP connections, `batch` at a time: connect, accept, one
/// byte each way, then a reset close (no `TIME_WAIT` left to exhaust ports). Returns the time
/// it took.
pub fn churn_tcp(total: usize, batch: usize) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind")?;
    let address = listener.local_addr()?;
    let start = Instant::now();
    let mut done = 0;
    let mut byte = [0u8; 1];
    while done < total {
        let size = batch.min(total - done);
        let mut pairs = Vec::with_capacity(size);
        for _ in 0..size {
            let mut client = TcpStream::connect(address).context("connect")?;
            let (mut server, _) = listener.accept().context("accept")?;
            client.write_all(b"x")?;
            server.read_exact(&mut byte)?;
            server.write_all(b"y")?;
            client.read_exact(&mut byte)?;
            sys::reset_on_close(&client)?;
            pairs.push((client, server));
        }
        drop(pairs);
        done += size;
    }
    Ok(start.elapsed())
}
