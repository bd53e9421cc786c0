//! The opt-in HTTP listener for Prometheus (`--metrics ADDR`): `GET /metrics` only.
//!
//! axum routes (`GET`/`HEAD /metrics`, 404 elsewhere, 405 for other methods on `/metrics`),
//! hyper 1.x speaks HTTP/1.1 on each accepted connection. The accept loop is ours so that the
//! daemon keeps its own limits: at most [`CONCURRENT_SCRAPES`] connections served at once (one
//! request each: no keep-alive), a client that is slow to send its request head or to read the
//! reply is cut off, accept(2) failures back off, and shutdown lets scrapes in progress finish
//! within [`SHUTDOWN_GRACE`] before `daemon::run` joins the task.
use std::{sync::Arc, time::Duration};

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Semaphore,
    task::JoinSet,
};

use crate::daemon::{shutdown::Shutdown, state::Daemon, tasks::backoff::Backoff};
use crate::metrics::{self, Format};

/// How long a client may take to send its request head, and the whole exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(15);
/// Scrapes served at once; more wait (each reads every kernel map).
const CONCURRENT_SCRAPES: usize = 4;

/// How long shutdown waits for scrapes in progress.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The routes, over `daemon`.
fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain")],
                "sockstats serves /metrics only\n",
            )
        })
        .with_state(daemon)
}

/// Serves `listener` until `shutdown`, then lets the scrapes in progress finish (briefly).
pub async fn serve(listener: TcpListener, daemon: Arc<Daemon>, mut shutdown: Shutdown) {
    let app = router(daemon);
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
                    let app = app.clone();
                    answering.spawn(async move {
                        answer(stream, app).await;
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

/// Serves one connection: one request, then close.
async fn answer(stream: TcpStream, app: Router) {
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => log::debug!("metrics: connection: {error}"),
        Err(_) => log::debug!("metrics: client too slow, cut off"),
    }
}

/// `GET /metrics`: the exposition in the format the `Accept` header asks for.
async fn scrape(State(daemon): State<Arc<Daemon>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(
        headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok()),
    );
    let made =
        tokio::task::spawn_blocking(move || exposition(&daemon, format).map_err(|e| e.to_string()))
            .await
            .unwrap_or_else(|error| Err(error.to_string()));
    match made {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("{error}\n"),
        )
            .into_response(),
    }
}

/// The exposition text, or why it could not be made.
fn exposition(daemon: &Daemon, format: Format) -> Result<String, crate::ops::Refusal> {
    let exported = metrics::collect::collect(daemon)?;
    Ok(metrics::render(exported.labels, exported.health, format))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::{daemon::shutdown, ops::testing::Fixture};

    /// Sends `request` raw and reads the reply until the server closes.
    async fn exchange(port: u16, request: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8(reply).unwrap()
    }

    fn header_of<'r>(reply: &'r str, name: &str) -> Option<&'r str> {
        let head = reply.split("\r\n\r\n").next().unwrap();
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn negotiates_routes_and_stops_on_shutdown() {
        let test = Fixture::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (trigger, stop) = shutdown::channel();
        let serving = tokio::spawn(serve(listener, Arc::clone(&test.daemon), stop));

        let classic = exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(classic.starts_with("HTTP/1.1 200"), "{classic}");
        assert_eq!(
            header_of(&classic, "content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert!(
            classic.contains("# TYPE sockstats_live_sockets gauge\n"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");

        let open = exchange(
            port,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n",
        )
        .await;
        assert!(open.starts_with("HTTP/1.1 200"), "{open}");
        assert_eq!(
            header_of(&open, "content-type"),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
        );
        assert!(open.ends_with("# EOF\n"), "{open}");

        let missing = exchange(port, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        let posted = exchange(
            port,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        )
        .await;
        assert!(posted.starts_with("HTTP/1.1 405"), "{posted}");

        // A client that never finishes its request head does not hold a scrape slot forever,
        // nor delay shutdown.
        let mut slow = Vec::new();
        for _ in 0..CONCURRENT_SCRAPES {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\n")
                .await
                .unwrap();
            slow.push(stream);
        }
        let started = Instant::now();
        let after_slow = exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(after_slow.starts_with("HTTP/1.1 200"), "{after_slow}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
            "{waited:?}"
        );

        let stopping = Instant::now();
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(5), serving)
            .await
            .unwrap()
            .unwrap();
        assert!(stopping.elapsed() < SHUTDOWN_GRACE + Duration::from_secs(1));
        drop(slow);
    }
}
