//! One client connection: reads request lines (with their fds), runs each op on the blocking
//! pool and writes its reply, in order, until the client leaves, must be refused, is evicted
//! to make room for root, or the daemon stops.
use std::{io, os::fd::AsFd, sync::Arc};

use sockstats_common::protocol::decode_request;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _, Interest},
    net::UnixStream,
};

use super::{clients::ClientSlot, closing::Closing, framing::LineFramer, ServerLimits, DRAIN_TIME};
use crate::{
    daemon::{shutdown::Shutdown, state::Daemon},
    ops::{self, Peer, Refusal},
    rules::sync as rule_sync,
    sys::fd_passing::recv_with_fds,
};

const DRAIN_BYTES: usize = 1024 * 1024;

/// How a connection's requests ended.
enum Ended {
    /// The client closed, or the daemon stops.
    Quietly,
    /// Closed to make room for root: no line is sent (it would read as a reply).
    Evicted,
    /// A last error line, then close.
    Refused(Closing),
}

pub async fn serve_connection(
    mut stream: UnixStream,
    daemon: Arc<Daemon>,
    uid: u32,
    slot: ClientSlot,
    limits: ServerLimits,
    shutdown: Shutdown,
) -> io::Result<()> {
    let peer = Peer {
        uid,
        connection: slot.connection(),
    };
    let mut framer = LineFramer::new();
    let stopping = shutdown.clone();
    let served = serve_requests(
        &mut stream,
        &mut framer,
        &daemon,
        peer,
        &slot,
        limits,
        shutdown,
    )
    .await;
    // Passed fds still waiting in the framer are closed now, not after the drain.
    drop(framer);
    // A client that went away takes its temporary rules along. A daemon that stops keeps
    // them: the runs they belong to go on, and the next daemon drops each with its cgroup.
    if !stopping.is_triggered() {
        let closing = Arc::clone(&daemon);
        let _ = tokio::task::spawn_blocking(move || {
            rule_sync::connection_closed(&closing, peer.connection);
        })
        .await;
    }
    match served? {
        Ended::Refused(closing) => refuse_and_close(stream, &closing).await,
        Ended::Evicted => {
            log::info!(
                "closed connection {} of uid {uid} to make room for root",
                peer.connection
            );
            Ok(())
        }
        Ended::Quietly => Ok(()),
    }
}

/// Runs one request line's op on the blocking pool and returns its reply line (made there
/// too: a `history` line can be 50 MiB).
async fn answer(
    daemon: &Arc<Daemon>,
    peer: Peer,
    line: &[u8],
    fds: Vec<std::os::fd::OwnedFd>,
) -> String {
    match decode_request(line) {
        Ok(request) => {
            let daemon = Arc::clone(daemon);
            tokio::task::spawn_blocking(move || {
                ops::reply_line(ops::handle(&daemon, peer, request, fds))
            })
            .await
            .unwrap_or_else(|error| {
                ops::reply_line(Err(Refusal::Panicked {
                    reason: error.to_string(),
                }))
            })
        }
        Err(error) => ops::reply_line(Err(Refusal::from(error))),
    }
}

/// Answers requests until the client leaves, must be refused, or is evicted.
async fn serve_requests(
    stream: &mut UnixStream,
    framer: &mut LineFramer,
    daemon: &Arc<Daemon>,
    peer: Peer,
    slot: &ClientSlot,
    limits: ServerLimits,
    mut shutdown: Shutdown,
) -> io::Result<Ended> {
    let mut buf = vec![0u8; 16 * 1024];
    // When the request line in progress must be complete.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        while let Some(next) = framer.next_line() {
            slot.set_idle(false);
            deadline = None; // a line arrived: the next one gets the whole timeout
            let (line, fds) = match next {
                Ok(line_and_fds) => line_and_fds,
                Err(error) => return Ok(Ended::Refused(error.into())),
            };
            let reply = answer(daemon, peer, &line, fds).await;
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
        slot.set_idle(!framer.has_partial_line());
        tokio::select! {
            ready = stream.readable() => ready?,
            () = shutdown.wait() => return Ok(Ended::Quietly),
            () = slot.evicted() => return Ok(Ended::Evicted),
            () = sleep_until_some(deadline) => {
                return Ok(Ended::Refused(Closing::RequestTimeout {
                    seconds: limits.request_timeout.as_secs(),
                }));
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
            return Ok(Ended::Quietly); // the client closed the connection
        }
        if received.fds_truncated {
            return Ok(Ended::Refused(Closing::FdsTruncated));
        }
        if let Err(error) = framer.push(&buf[..received.len], received.fds) {
            return Ok(Ended::Refused(error.into()));
        }
    }
}

/// Sends a last error reply and closes the connection gracefully: the write side is shut
/// first, then unread input is drained (bounded), since closing a Unix socket with unread
/// input resets it and the client could lose the reply.
async fn refuse_and_close(mut stream: UnixStream, closing: &Closing) -> io::Result<()> {
    tokio::time::timeout(DRAIN_TIME, stream.write_all(closing.line().as_bytes()))
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
