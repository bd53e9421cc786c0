//! The Unix-socket server: accepts clients (at most `max_clients` at once), frames their
//! requests and answers them, until shutdown.
use std::{
    io,
    os::fd::AsFd,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use sockstats_common::protocol::{decode_request, encode_error, encode_refusal, ErrorCode};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _, Interest},
    net::{UnixListener, UnixStream},
    sync::{watch, Semaphore},
    task::JoinSet,
};

use super::{connection::LineFramer, handler, refusal::Peer, rule_ops, state::Daemon};
use crate::sys::fd_passing::recv_with_fds;

/// Numbers connections, for the temporary rules that belong to one.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// How long shutdown waits for connections to finish their current request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// After refusing a connection's input, how long and how much of the rest is read and dropped
/// so that closing does not reset the connection before the client has read our reply.
const DRAIN_TIME: Duration = Duration::from_secs(2);
const DRAIN_BYTES: usize = 1024 * 1024;

/// Bounds on what clients can make the daemon hold.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections served at once; more are told so and closed.
    pub max_clients: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self { max_clients: 256 }
    }
}

/// Serves `listener` until `shutdown` turns true, then waits for open connections briefly.
pub async fn serve(
    listener: UnixListener,
    daemon: Arc<Daemon>,
    limits: ServerLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_clients));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        log::warn!("accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
                    let daemon = Arc::clone(&daemon);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        if let Err(error) = serve_connection(stream, daemon, shutdown).await {
                            log::debug!("connection ended: {error}");
                        }
                        drop(permit);
                    });
                } else {
                    connections.spawn(refuse(stream, limits.max_clients));
                }
            }
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

async fn refuse(mut stream: UnixStream, max_clients: usize) {
    let reply = encode_refusal(
        ErrorCode::LimitReached,
        &format!("sockstatsd is serving its maximum of {max_clients} clients; try again shortly"),
    );
    let _ = stream.write_all(reply.as_bytes()).await;
}

async fn serve_connection(
    mut stream: UnixStream,
    daemon: Arc<Daemon>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let peer = Peer {
        uid: stream.peer_cred()?.uid(),
        connection: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
    };
    let mut framer = LineFramer::new();
    let served = serve_requests(&mut stream, &mut framer, &daemon, peer, shutdown).await;
    // Passed fds still waiting in the framer are closed now, not after the drain.
    drop(framer);
    let closing = Arc::clone(&daemon);
    let _ = tokio::task::spawn_blocking(move || {
        rule_ops::connection_closed(&closing, peer.connection);
    })
    .await;
    match served? {
        Some(error) => refuse_and_close(stream, &error).await,
        None => Ok(()),
    }
}

/// Answers requests until the client leaves (`None`) or must be refused (`Some(reason)`).
async fn serve_requests(
    stream: &mut UnixStream,
    framer: &mut LineFramer,
    daemon: &Arc<Daemon>,
    peer: Peer,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<Option<String>> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        while let Some(next) = framer.next_line() {
            let (line, fds) = match next {
                Ok(line_and_fds) => line_and_fds,
                Err(error) => return Ok(Some(error.to_string())),
            };
            let reply = match decode_request(&line) {
                Ok(request) => {
                    let daemon = Arc::clone(daemon);
                    tokio::task::spawn_blocking(move || {
                        handler::handle(&daemon, peer, request, fds)
                    })
                    .await
                    .unwrap_or_else(|error| encode_error(&format!("internal error: {error}")))
                }
                Err(error) => encode_refusal(ErrorCode::BadRequest, &error.to_string()),
            };
            stream.write_all(reply.as_bytes()).await?;
        }
        tokio::select! {
            ready = stream.readable() => ready?,
            _ = shutdown.changed() => return Ok(None),
        }
        let received = match stream.try_io(Interest::READABLE, || {
            recv_with_fds(stream.as_fd(), &mut buf)
        }) {
            Ok(received) => received,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => return Err(error),
        };
        if received.len == 0 && received.fds.is_empty() {
            return Ok(None); // the client closed the connection
        }
        if received.fds_truncated {
            return Ok(Some(
                "too many fds in one message; the extra ones were discarded; closing the connection"
                    .to_owned(),
            ));
        }
        if let Err(error) = framer.push(&buf[..received.len], received.fds) {
            return Ok(Some(error.to_string()));
        }
    }
}

/// Sends a last error reply and closes the connection gracefully: the write side is shut
/// first, then unread input is drained (bounded), since closing a Unix socket with unread
/// input resets it and the client could lose the reply.
async fn refuse_and_close(mut stream: UnixStream, error: &str) -> io::Result<()> {
    stream.write_all(encode_error(error).as_bytes()).await?;
    stream.shutdown().await?;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut sink = vec![0u8; 64 * 1024];
        let mut drained = 0;
        while drained < DRAIN_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
    Ok(())
}
