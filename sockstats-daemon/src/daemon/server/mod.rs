//! The Unix-socket server: accepts clients ([`clients`] decides who gets in), frames their
//! requests ([`framing`]) and answers them ([`session`]), until shutdown.
use std::{sync::Arc, time::Duration};

use tokio::{io::AsyncWriteExt as _, net::UnixListener, net::UnixStream, task::JoinSet};

use super::{shutdown::Shutdown, state::Daemon, tasks::backoff::Backoff};

pub mod clients;
pub mod closing;
pub mod framing;
pub mod session;
pub mod socket_file;

use clients::Clients;
use closing::Closing;

/// How long shutdown waits for connections to finish their current request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// After refusing a connection's input, how long and how much of the rest is read and dropped
/// so that closing does not reset the connection before the client has read our reply.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Default of [`ServerLimits::max_clients`].
pub const DEFAULT_MAX_CLIENTS: u64 = 256;
/// Default of [`ServerLimits::max_clients_per_uid`].
pub const DEFAULT_MAX_CLIENTS_PER_UID: u64 = 32;

/// Bounds on what clients can make the daemon hold.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Connections served at once; more are told so and closed (root always gets in: see
    /// [`clients`]).
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

/// Serves `listener` until `shutdown`, then waits for open connections briefly.
pub async fn serve(
    listener: UnixListener,
    daemon: Arc<Daemon>,
    limits: ServerLimits,
    mut shutdown: Shutdown,
) {
    let clients = Clients::new(limits.max_clients, limits.max_clients_per_uid);
    let mut connections = JoinSet::new();
    // accept(2) fails persistently when the daemon is out of fds: retry ever later.
    let mut accept_backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => {
                        accept_backoff.succeeded();
                        stream
                    }
                    Err(error) => {
                        let delay = accept_backoff.failed();
                        log::warn!("accept failed: {error}; accepting again in {delay:?}");
                        if !shutdown.sleep(delay).await {
                            break;
                        }
                        continue;
                    }
                };
                let Ok(uid) = stream.peer_cred().map(|cred| cred.uid()) else {
                    continue;
                };
                match clients.admit(uid) {
                    Ok(slot) => {
                        let daemon = Arc::clone(&daemon);
                        let shutdown = shutdown.clone();
                        connections.spawn(async move {
                            if let Err(error) = session::serve_connection(stream, daemon, uid, slot, limits, shutdown).await {
                                log::debug!("connection ended: {error}");
                            }
                        });
                    }
                    Err(closing) => {
                        connections.spawn(refuse(stream, closing));
                    }
                }
            }
            () = shutdown.wait() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}

/// Tells a client it cannot be served now (without reading its request) and closes.
async fn refuse(mut stream: UnixStream, closing: Closing) {
    let _ = tokio::time::timeout(DRAIN_TIME, stream.write_all(closing.line().as_bytes())).await;
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead as _, BufReader, Write as _},
        os::unix::net::UnixStream as StdUnixStream,
    };

    use sockstats_common::client::Client;

    use super::*;
    use crate::{daemon::shutdown, ops::testing::Fixture};

    /// The whole request path without root: socket, framing, fd passing, ops, the fake
    /// kernel, replies, and shutdown.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_requests_over_the_socket_and_stops_on_shutdown() {
        let test = Fixture::new();
        let path = test.daemon.info().socket.clone();
        let listener = UnixListener::bind(&path).unwrap();
        let (trigger, stop) = shutdown::channel();
        let server = tokio::spawn(serve(
            listener,
            Arc::clone(&test.daemon),
            ServerLimits::default(),
            stop,
        ));
        let client_path = path.clone();
        let (label_id, stats, idle) = tokio::task::spawn_blocking(move || {
            let mut client = Client::connect(&client_path).unwrap();
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let labeled = client.label(&udp, "web").unwrap();
            // Two requests pipelined in one write, answered in order; a bad one in between.
            let mut raw = StdUnixStream::connect(&client_path).unwrap();
            raw.write_all(b"{\"op\":\"labels\"}\n{\"op\":\"explode\"}\n{\"op\":\"get\"}\n")
                .unwrap();
            let mut lines = BufReader::new(raw.try_clone().unwrap()).lines();
            let labels = lines.next().unwrap().unwrap();
            assert!(labels.contains("\"web\""), "{labels}");
            let unknown = lines.next().unwrap().unwrap();
            assert!(
                unknown.starts_with(
                    "{\"code\":\"bad_request\",\"error\":\"unknown op \\\"explode\\\""
                ),
                "{unknown}"
            );
            let get = lines.next().unwrap().unwrap();
            (labeled.label_id, get, raw)
        })
        .await
        .unwrap();
        assert_eq!(label_id, 1);
        let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
        assert_eq!(
            stats["stats"]["web"],
            serde_json::json!({"tx_bytes": 0, "rx_bytes": 0}),
            "{stats}"
        );
        assert_eq!(test.with_kernel(|kernel| kernel.relabels.len()), 1);
        // An idle connection does not hold shutdown up.
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .expect("the server stops on shutdown")
            .unwrap();
        drop(idle);
    }
}
