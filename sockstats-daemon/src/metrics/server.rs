//! The opt-in HTTP listener for Prometheus (`--metrics ADDR`): `GET /metrics` only.
use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::JoinSet,
};

use crate::daemon::{shutdown::Shutdown, state::Daemon, tasks::backoff::Backoff};
use crate::{
    metrics::{self, Health},
    ops::{naming, status::counters_by_name},
};

/// Longest request head read, and how long a client may take to send it or read the reply.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once; more wait (each reads every kernel map).
const CONCURRENT_SCRAPES: usize = 4;

/// How long shutdown waits for scrapes in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serves `listener` until `shutdown`, then lets the scrapes in progress finish (briefly).
pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>, mut shutdown: Shutdown) {
    let scrapes = Arc::new(Semaphore::new(CONCURRENT_SCRAPES));
    let mut answering = JoinSet::new();
    // accept(2) fails persistently when the daemon is out of fds: retry ever later.
    let mut accept_backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    accept_backoff.succeeded();
                    let permit = tokio::select! {
                        permit = Arc::clone(&scrapes).acquire_owned() => permit,
                        () = shutdown.wait() => break,
                    };
                    let Ok(permit) = permit else { break };
                    let daemon = Arc::clone(&daemon);
                    answering.spawn(async move {
                        answer(stream, daemon).await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    let delay = accept_backoff.failed();
                    log::warn!("metrics: accept failed: {error}; accepting again in {delay:?}");
                    if !shutdown.sleep(delay).await {
                        break;
                    }
                }
            },
            () = shutdown.wait() => break,
            Some(_) = answering.join_next(), if !answering.is_empty() => {}
        }
    }
    let finished = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while answering.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        answering.abort_all();
    }
}

async fn answer(mut stream: TcpStream, daemon: Arc<Daemon>) {
    let mut head = Vec::new();
    let read_head = async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST_HEAD {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    let complete = matches!(
        tokio::time::timeout(REQUEST_TIMEOUT, read_head).await,
        Ok(true)
    );
    if !complete || !head.windows(4).any(|w| w == b"\r\n\r\n") {
        return;
    }
    let request_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut parts = request_line.split_whitespace();
    let response = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => {
            let daemon = Arc::clone(&daemon);
            let made =
                tokio::task::spawn_blocking(move || exposition(&daemon).map_err(|e| e.to_string()))
                    .await
                    .unwrap_or_else(|error| Err(error.to_string()));
            match made {
                Ok(body) => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body),
                Err(error) => (
                    "500 Internal Server Error",
                    "text/plain",
                    format!("{error}\n"),
                ),
            }
        }
        (Some("GET"), _) => (
            "404 Not Found",
            "text/plain",
            "sockstats serves /metrics only\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".to_owned(),
        ),
    };
    let (status, content_type, body) = response;
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REPLY_TIMEOUT, async {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// The exposition text, or why it could not be made.
fn exposition(daemon: &Daemon) -> Result<String, crate::ops::Refusal> {
    let named = naming::named_totals(daemon)?;
    let maps = daemon.with_core(|core| core.kernel.fill());
    let live_sockets = named.snapshot.live_sockets();
    let health = Health {
        counters: counters_by_name(named.snapshot.counters),
        maps,
        programs_attached: daemon
            .info()
            .programs
            .iter()
            .filter(|p| p.prog_id.is_some())
            .count(),
        programs_expected: daemon.info().programs.len(),
        live_sockets,
        overflow: named.snapshot.overflow(),
        wire_overflow: named.snapshot.wire_overflow(),
    };
    Ok(metrics::render(&named.labels, &health))
}
