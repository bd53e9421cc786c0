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

use super::{
    connection::{FrameError, LineFramer},
    handler,
    refusal::{Peer, Refusal},
    rule_ops,
    state::Daemon,
};
use crate::sys::fd_passing::recv_with_fds;

/// Numbers connections, for the temporary rules that belong to one.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// How long shutdown waits for connections to finish their current request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// After refusing a connection's input, how long and how much of the rest is read and dropped
/// so that closing does not reset the connection before the client has read our reply.
const DRAIN_TIME: Duration = Duration::from_secs(2);
const DRAIN_BYTES: usize = 1024 * 1024;

/// Default of [`ServerLimits::max_clients`].
pub const DEFAULT_MAX_CLIENTS: u64 = 256;
/// Default of [`ServerLimits::max_clients_per_uid`].
pub const DEFAULT_MAX_CLIENTS_PER_UID: u64 = 32;

/// Bounds on what clients can make the daemon hold.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections served at once; more are told so and closed.
    pub max_clients: usize,
    /// Connections one non-root uid may hold at once, so one user cannot take every slot.
    pub max_clients_per_uid: usize,
    /// How long a started request line may take to arrive, and a reply to be taken by the
    /// client, before the connection is closed.
    pub request_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_clients: usize::try_from(DEFAULT_MAX_CLIENTS).unwrap_or(usize::MAX),
            max_clients_per_uid: usize::try_from(DEFAULT_MAX_CLIENTS_PER_UID).unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Open connections per uid.
#[derive(Debug, Default)]
struct PerUid(std::sync::Mutex<std::collections::HashMap<u32, usize>>);

impl PerUid {
    /// Counts a connection of `uid`, unless it already holds `max` (root has no limit).
    fn enter(self: &Arc<Self>, uid: u32, max: usize) -> Option<UidSlot> {
        let mut counts = self.0.lock().expect("per-uid lock");
        let count = counts.entry(uid).or_default();
        if uid != 0 && *count >= max {
            return None;
        }
        *count += 1;
        Some(UidSlot {
            uid,
            counts: Arc::clone(self),
        })
    }
}

/// One connection's place in [`PerUid`], given back on drop.
struct UidSlot {
    uid: u32,
    counts: Arc<PerUid>,
}

impl Drop for UidSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().expect("per-uid lock");
        if let Some(count) = counts.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.uid);
            }
        }
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
    let per_uid = Arc::new(PerUid::default());
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
                let Ok(uid) = stream.peer_cred().map(|cred| cred.uid()) else {
                    continue;
                };
                let Some(slot) = per_uid.enter(uid, limits.max_clients_per_uid) else {
                    connections.spawn(refuse(stream, format!(
                        "uid {uid} already has {} connections open, its limit (sockstatsd --max-clients-per-uid); close some",
                        limits.max_clients_per_uid
                    )));
                    continue;
                };
                if let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
                    let daemon = Arc::clone(&daemon);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        let peer = Peer {
                            uid,
                            connection: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
                        };
                        if let Err(error) = serve_connection(stream, daemon, peer, limits, shutdown).await {
                            log::debug!("connection ended: {error}");
                        }
                        drop((permit, slot));
                    });
                } else {
                    connections.spawn(refuse(stream, format!(
                        "sockstatsd is serving its maximum of {} clients; try again shortly",
                        limits.max_clients
                    )));
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

/// Tells a client it cannot be served now (without reading its request) and closes.
async fn refuse(mut stream: UnixStream, reason: String) {
    let reply = encode_refusal(ErrorCode::LimitReached, &reason);
    let _ = tokio::time::timeout(DRAIN_TIME, stream.write_all(reply.as_bytes())).await;
}

async fn serve_connection(
    mut stream: UnixStream,
    daemon: Arc<Daemon>,
    peer: Peer,
    limits: ServerLimits,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut framer = LineFramer::new();
    let stopping = shutdown.clone();
    let served = serve_requests(&mut stream, &mut framer, &daemon, peer, limits, shutdown).await;
    // Passed fds still waiting in the framer are closed now, not after the drain.
    drop(framer);
    // A client that went away takes its temporary rules along. A daemon that stops keeps
    // them: the runs they belong to go on, and the next daemon drops each with its cgroup.
    if !*stopping.borrow() {
        let closing = Arc::clone(&daemon);
        let _ = tokio::task::spawn_blocking(move || {
            rule_ops::connection_closed(&closing, peer.connection);
        })
        .await;
    }
    match served? {
        Some(refusal) => refuse_and_close(stream, &refusal).await,
        None => Ok(()),
    }
}

/// Answers requests until the client leaves (`None`) or must be refused (`Some(reason)`).
async fn serve_requests(
    stream: &mut UnixStream,
    framer: &mut LineFramer,
    daemon: &Arc<Daemon>,
    peer: Peer,
    limits: ServerLimits,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<Option<Refusal>> {
    let mut buf = vec![0u8; 16 * 1024];
    // When the request line in progress must be complete.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        while let Some(next) = framer.next_line() {
            deadline = None; // a line arrived: the next one gets the whole timeout
            let (line, fds) = match next {
                Ok(line_and_fds) => line_and_fds,
                Err(error) => return Ok(Some(frame_refusal(&error))),
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
            // A client that does not take its replies cannot hold the daemon's memory.
            tokio::time::timeout(limits.request_timeout, stream.write_all(reply.as_bytes()))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "client does not read its replies")
                })??;
        }
        // A started request must arrive within the timeout; an idle connection may wait.
        if !framer.has_partial_line() {
            deadline = None;
        } else if deadline.is_none() {
            deadline = Some(tokio::time::Instant::now() + limits.request_timeout);
        }
        tokio::select! {
            ready = stream.readable() => ready?,
            _ = shutdown.changed() => return Ok(None),
            () = sleep_until_some(deadline) => {
                return Ok(Some(Refusal::new(ErrorCode::BadRequest, format!(
                    "request line not completed within {} s; closing the connection",
                    limits.request_timeout.as_secs()
                ))));
            }
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
            return Ok(Some(Refusal::new(
                ErrorCode::LimitReached,
                "too many fds in one message; the extra ones were discarded; closing the connection",
            )));
        }
        if let Err(error) = framer.push(&buf[..received.len], received.fds) {
            return Ok(Some(frame_refusal(&error)));
        }
    }
}

/// Sends a last error reply and closes the connection gracefully: the write side is shut
/// first, then unread input is drained (bounded), since closing a Unix socket with unread
/// input resets it and the client could lose the reply.
fn frame_refusal(error: &FrameError) -> Refusal {
    let code = match error {
        FrameError::LineTooLong => ErrorCode::BadRequest,
        FrameError::TooManyFds => ErrorCode::LimitReached,
    };
    Refusal::new(code, error.to_string())
}

async fn refuse_and_close(mut stream: UnixStream, refusal: &Refusal) -> io::Result<()> {
    tokio::time::timeout(DRAIN_TIME, stream.write_all(refusal.encode().as_bytes()))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client does not read"))??;
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

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
