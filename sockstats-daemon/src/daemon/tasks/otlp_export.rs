//! The OTLP exporter task (`--otlp-endpoint`): every interval one reading of the counters
//! (off the async workers, like a scrape) is queued in the [`Outbox`], and the outbox is
//! posted to the collector oldest first, with back-off while the collector cannot take it.
//! It shares nothing with accounting or the Unix-socket server but that one reading per
//! interval: a collector that is down, slow or refusing costs them nothing.
//!
//! Exports still queued at shutdown are not sent; the counters are cumulative, so the next
//! daemon's first export carries them.
use std::{
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use sockstats_common::protocol::OtlpDebug;
use tokio::time::Instant;

use crate::{
    daemon::{shutdown::Shutdown, state::Daemon},
    metrics::collect::collect,
    otlp::{
        client::Collector,
        encode::{self, Source},
        endpoint::Endpoint,
        outbox::{Export, Outbox, Outcome, QUEUE_LIMIT},
    },
};

/// `--otlp-endpoint`, `--otlp-interval` and who exports.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    pub endpoint: Endpoint,
    pub interval: Duration,
    pub source: Source,
}

/// Exports `daemon`'s counters per `config` until shutdown.
pub async fn run(daemon: Arc<Daemon>, config: OtlpConfig, shutdown: Shutdown) {
    let collector = Collector::new(config.endpoint.clone());
    let outbox = Outbox::new(config.endpoint.to_string(), config.interval, QUEUE_LIMIT);
    let source = Arc::new(config.source);
    let reader = Arc::clone(&daemon);
    let read = move || {
        let daemon = Arc::clone(&reader);
        let source = Arc::clone(&source);
        async move {
            tokio::task::spawn_blocking(move || {
                let exported = collect(&daemon).map_err(|e| e.to_string())?;
                let taken = SystemTime::now();
                Ok(Export {
                    body: encode::encode(&exported, &source, taken),
                    taken,
                })
            })
            .await
            .unwrap_or_else(|panic| Err(panic.to_string()))
        }
    };
    let send = |body: Bytes| collector.post(body);
    let publish = |status: &OtlpDebug| daemon.exporter().publish(status);
    export(outbox, config.interval, read, send, publish, shutdown).await;
}

/// The exporter's loop over its parts: `read` takes a reading, `send` posts one export,
/// `publish` shows the outbox's counts (for `sockstats debug`).
pub async fn export<R, RF, S, SF, P>(
    mut outbox: Outbox,
    interval: Duration,
    read: R,
    send: S,
    publish: P,
    mut shutdown: Shutdown,
) where
    R: Fn() -> RF,
    RF: Future<Output = Result<Export, String>>,
    S: Fn(Bytes) -> SF,
    SF: Future<Output = Outcome>,
    P: Fn(&OtlpDebug),
{
    publish(outbox.status());
    let mut next_reading = Instant::now() + interval;
    loop {
        let wake = outbox
            .due_at(Instant::now())
            .map_or(next_reading, |due| due.min(next_reading));
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = shutdown.wait() => return,
        }
        let now = Instant::now();
        if now >= next_reading {
            match read().await {
                Ok(export) => {
                    if outbox.push(export) {
                        log::debug!("otlp: queue full, dropped the oldest export");
                    }
                }
                Err(error) => {
                    log::warn!("otlp: cannot read the counters: {error}");
                    outbox.error(
                        format!("cannot read the counters: {error}"),
                        SystemTime::now(),
                    );
                }
            }
            // Like a fixed interval whose missed ticks are skipped.
            next_reading += interval;
            if next_reading <= now {
                next_reading = now + interval;
            }
            publish(outbox.status());
        }
        while let Some(export) = outbox.due(Instant::now()) {
            let body = export.body.clone();
            let outcome = tokio::select! {
                outcome = send(body) => outcome,
                () = shutdown.wait() => return,
            };
            outbox.settle(outcome, Instant::now(), SystemTime::now());
            publish(outbox.status());
            if Instant::now() >= next_reading {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::daemon::shutdown;

    const SECOND: Duration = Duration::from_secs(1);

    /// A fake collector: down (connection refused) until `up_after`, then taking everything;
    /// it records (seconds since start, the export's number) of every attempt.
    struct Fake {
        start: Instant,
        up_after: Duration,
        attempts: Mutex<Vec<(u64, u8, bool)>>,
        readings: Mutex<u8>,
        status: Mutex<OtlpDebug>,
    }

    impl Fake {
        fn new(up_after: Duration) -> Arc<Self> {
            Arc::new(Self {
                start: Instant::now(),
                up_after,
                attempts: Mutex::new(Vec::new()),
                readings: Mutex::new(0),
                status: Mutex::new(OtlpDebug::default()),
            })
        }

        fn read(&self) -> Export {
            let mut readings = self.readings.lock().unwrap();
            *readings += 1;
            Export {
                body: Bytes::from(vec![*readings]),
                taken: SystemTime::now(),
            }
        }

        fn send(&self, body: &[u8]) -> Outcome {
            let elapsed = self.start.elapsed();
            let up = elapsed >= self.up_after;
            self.attempts
                .lock()
                .unwrap()
                .push((elapsed.as_secs(), body[0], up));
            if up {
                Outcome::Delivered { rejected: None }
            } else {
                Outcome::Retry("connection refused".to_owned())
            }
        }
    }

    /// Runs the loop against `fake` for `running`, then shuts it down.
    async fn run_for(fake: &Arc<Fake>, limit: usize, running: Duration) {
        let (trigger, stop) = shutdown::channel();
        let outbox = Outbox::new("http://fake/v1/metrics".to_owned(), 10 * SECOND, limit);
        let (reader, sender, publisher) = (Arc::clone(fake), Arc::clone(fake), Arc::clone(fake));
        let task = tokio::spawn(async move {
            export(
                outbox,
                10 * SECOND,
                move || {
                    let fake = Arc::clone(&reader);
                    async move { Ok(fake.read()) }
                },
                move |body| {
                    let fake = Arc::clone(&sender);
                    async move { fake.send(&body) }
                },
                move |status| *publisher.status.lock().unwrap() = status.clone(),
                stop,
            )
            .await;
        });
        tokio::time::sleep(running).await;
        trigger.trigger();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_collector_down_at_first_gets_every_export_once_it_is_up() {
        let fake = Fake::new(Duration::from_secs(25));
        run_for(&fake, 30, Duration::from_secs(45)).await;
        let attempts = fake.attempts.lock().unwrap().clone();
        // Readings at 10, 20, 30, 40 s. The first is tried at 10 s, then 2, 4, 8 s later
        // (12, 16, 24) while refused, then at 40 s (16 s later) when the collector is up:
        // everything waiting goes at once, oldest first.
        assert_eq!(
            attempts,
            [
                (10, 1, false),
                (12, 1, false),
                (16, 1, false),
                (24, 1, false),
                (40, 1, true),
                (40, 2, true),
                (40, 3, true),
                (40, 4, true),
            ]
        );
        let status = fake.status.lock().unwrap().clone();
        assert_eq!(
            (status.sent, status.failed, status.dropped, status.queued),
            (4, 4, 0, 0)
        );
        assert_eq!(status.last_error.as_deref(), Some("connection refused"));
        assert!(status.last_success_at.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_collector_is_down_the_newest_exports_are_kept() {
        let fake = Fake::new(Duration::from_secs(3600));
        run_for(&fake, 3, Duration::from_secs(125)).await;
        let status = fake.status.lock().unwrap().clone();
        // 12 readings (10 … 120 s), 3 kept, 9 dropped; tries at 10, 12, 16, 24, 40, 72, 132…
        assert_eq!(*fake.readings.lock().unwrap(), 12);
        assert_eq!((status.queued, status.dropped, status.sent), (3, 9, 0));
        let tried: Vec<(u64, u8)> = fake
            .attempts
            .lock()
            .unwrap()
            .iter()
            .map(|(t, n, _)| (*t, *n))
            .collect();
        assert_eq!(
            tried,
            [(10, 1), (12, 1), (16, 1), (24, 1), (40, 2), (72, 5)]
        );
        assert_eq!(status.failed, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_an_export_that_hangs() {
        let (trigger, stop) = shutdown::channel();
        let outbox = Outbox::new("http://fake/v1/metrics".to_owned(), SECOND, 3);
        let task = tokio::spawn(export(
            outbox,
            SECOND,
            || async {
                Ok(Export {
                    body: Bytes::from_static(b"x"),
                    taken: SystemTime::now(),
                })
            },
            |_| std::future::pending::<Outcome>(),
            |_| {},
            stop,
        ));
        tokio::time::sleep(5 * SECOND).await;
        trigger.trigger();
        tokio::time::timeout(SECOND, task).await.unwrap().unwrap();
    }
}
