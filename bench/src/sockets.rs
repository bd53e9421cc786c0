//! Many sockets: live ones held open (for `get` at 1,000 / 10,000 / 100,000 sockets) and
//! loopback TCP connections opened and closed in batches (churn).
use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::OwnedFd,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context as _, Result};

use crate::sys;

/// Sockets one holder process keeps open: well under the usual 20,000 open-file hard limit,
/// which needs `CAP_SYS_RESOURCE` to raise (containers often lack it).
const PER_HOLDER: usize = 10_000;

/// Unbound UDP sockets held open by child processes of the bench (in its cgroup). Each passes
/// `cgroup/sock_create`, so each has a sockstats entry, as a live socket of a busy host would.
#[derive(Default)]
pub struct LiveSockets {
    holders: Vec<Child>,
    count: usize,
}

impl LiveSockets {
    /// Opens sockets until `count` are held.
    pub fn grow_to(&mut self, count: usize) -> Result<()> {
        let exe = std::env::current_exe().context("where is this binary?")?;
        while self.count < count {
            let chunk = PER_HOLDER.min(count - self.count);
            let mut child = Command::new(&exe)
                .arg("--hold-sockets")
                .arg(chunk.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .context("cannot start a socket holder")?;
            let mut line = String::new();
            BufReader::new(child.stdout.take().context("holder stdout")?)
                .read_line(&mut line)
                .context("read from a socket holder")?;
            self.holders.push(child);
            if line.trim() != "ready" {
                bail!("a socket holder failed to open {chunk} sockets");
            }
            self.count += chunk;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Closes every socket (the holders exit when their stdin closes).
    pub fn close_all(&mut self) {
        for mut holder in self.holders.drain(..) {
            drop(holder.stdin.take());
            let _ = holder.wait();
        }
        self.count = 0;
    }
}

impl Drop for LiveSockets {
    fn drop(&mut self) {
        self.close_all();
    }
}

/// The holder process (`--hold-sockets N`): opens `count` sockets, says "ready", and keeps
/// them until its stdin closes.
pub fn hold(count: usize) -> Result<()> {
    let mut sockets: Vec<OwnedFd> = Vec::with_capacity(count);
    for _ in 0..count {
        sockets.push(
            sys::udp_socket()
                .with_context(|| format!("cannot open socket {} of {count}", sockets.len() + 1))?,
        );
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready")?;
    stdout.flush()?;
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(sockets);
    Ok(())
}

/// One loopback TCP connection to `listener`: connect, accept, one byte each way, and set to
/// reset on close (no `TIME_WAIT` left to exhaust ports). Returns (client, server).
pub fn connect_once(listener: &TcpListener, address: SocketAddr) -> Result<(TcpStream, TcpStream)> {
    let mut byte = [0u8; 1];
    let mut client = TcpStream::connect(address).context("connect")?;
    let (mut server, _) = listener.accept().context("accept")?;
    client.write_all(b"x")?;
    server.read_exact(&mut byte)?;
    server.write_all(b"y")?;
    client.read_exact(&mut byte)?;
    sys::reset_on_close(&client)?;
    Ok((client, server))
}

/// Opens and closes `total` loopback TCP connections, `batch` at a time (see
/// [`connect_once`]). Returns the time it took.
pub fn churn_tcp(total: usize, batch: usize) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind")?;
    let address = listener.local_addr()?;
    let start = Instant::now();
    let mut done = 0;
    while done < total {
        let size = batch.min(total - done);
        let pairs = (0..size)
            .map(|_| connect_once(&listener, address))
            .collect::<Result<Vec<_>>>()?;
        drop(pairs);
        done += size;
    }
    Ok(start.elapsed())
}
