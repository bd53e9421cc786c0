//! The opt-in HTTP listener for Prometheus (`--metrics ADDR`): `GET /metrics` only.
use std::{sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::{watch, Semaphore},
};

use super::{state::Daemon, views};
use crate::metrics::{self, Health};

/// Longest request head read, and how long a client may take to send it or read the reply.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Scrapes served at once; more wait (each reads every kernel map).
const CONCURRENT_SCRAPES: usize = 4;

/// Serves `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    daemon: Arc<Daemon>,
    mut shutdown: watch::Receiver<bool>,
) {
    let scrapes = Arc::new(Semaphore::new(CONCURRENT_SCRAPES));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(permit) = Arc::clone(&scrapes).acquire_owned().await else { return };
                    let daemon = Arc::clone(&daemon);
                    tokio::spawn(async move {
                        answer(stream, daemon).await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    log::warn!("metrics: accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
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
            match tokio::task::spawn_blocking(move || exposition(&daemon))
                .await
                .unwrap_or_else(|error| Err(error.to_string()))
            {
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
fn exposition(daemon: &Daemon) -> Result<String, String> {
    let named = views::named_totals(daemon)?;
    let maps = daemon.kernel.lock().expect("kernel lock").fill();
    let live_sockets = named.snapshot.live_sockets();
    let health = Health {
        counters: super::handler::counters_by_name(named.snapshot.counters),
        maps,
        programs_attached: daemon
            .info
            .programs
            .iter()
            .filter(|p| p.prog_id.is_some())
            .count(),
        programs_expected: daemon.info.programs.len(),
        live_sockets,
        overflow: named.snapshot.overflow(),
        wire_overflow: named.snapshot.wire_overflow(),
    };
    Ok(metrics::render(&named.labels, &health))
}
