//! The daemon's background tasks, and [`Tasks`], which starts and joins them (for
//! [`crate::daemon::run`]).
//!
//! Every task takes the same [`Shutdown`]; [`Tasks::join`] waits for all of them after it
//! is triggered, up to a bound, and aborts what is left. The tasks: the Unix-socket server
//! ([`crate::daemon::server`]), the interface follower ([`interface_follower`]), the rule
//! re-resolver ([`rule_resolver`]), the kernel-log forwarder ([`kernel_log`]), the history
//! recorder ([`history_recorder`]) when the daemon has a history, and when enabled the stats
//! log ([`stats_log`]), the metrics server ([`crate::metrics::server`]) and the OTLP exporter
//! ([`otlp_export`]). Periodic work that fails backs off ([`backoff`]).
use std::{collections::HashMap, fmt::Display, future::Future, sync::Arc, time::Duration};

use tokio::task::{Id, JoinSet};

use super::shutdown::Shutdown;

pub mod backoff;
pub mod closed_sockets;
pub mod history_recorder;
pub mod interface_follower;
pub mod kernel_log;
pub mod otlp_export;
pub mod quota_alert;
pub mod rule_resolver;
pub mod stats_log;

use backoff::Backoff;

/// The longest a periodic task waits between tries while its work keeps failing.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The running background tasks, by name.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Tasks {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `task` (which must end soon after shutdown is triggered) under `name`.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Waits for every task to end, up to `within`; aborts the ones still running then and
    /// returns their names.
    pub async fn join(mut self, within: Duration) -> Vec<&'static str> {
        let joined = tokio::time::timeout(within, async {
            while let Some(ended) = self.set.join_next_with_id().await {
                let id = match &ended {
                    Ok((id, ())) => *id,
                    Err(error) => error.id(),
                };
                let name = self.names.remove(&id).unwrap_or("a task");
                if let Err(error) = ended {
                    if error.is_panic() {
                        log::error!("{name} panicked");
                    }
                }
            }
        })
        .await;
        if joined.is_ok() {
            return Vec::new();
        }
        self.set.abort_all();
        let mut left: Vec<&'static str> = self.names.into_values().collect();
        left.sort_unstable();
        left
    }
}

/// Runs blocking `work` every `period` until shutdown: on the blocking pool, so it may do
/// syscalls. While it fails, it is retried with [`Backoff`] (up to [`MAX_RETRY_DELAY`]
/// apart) and each failure is logged once; the first success after failures says so.
pub async fn run_periodically<E, F>(
    name: &'static str,
    period: Duration,
    mut shutdown: Shutdown,
    work: F,
) where
    E: Display + Send + 'static,
    F: Fn() -> Result<(), E> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let mut backoff = Backoff::new(period, MAX_RETRY_DELAY);
    loop {
        if !shutdown.sleep(backoff.delay()).await {
            return;
        }
        let work = Arc::clone(&work);
        let result = tokio::task::spawn_blocking(move || work())
            .await
            .map_err(|error| error.to_string());
        match result {
            Ok(Ok(())) => {
                let failures = backoff.succeeded();
                if failures > 0 {
                    log::info!("{name}: working again after {failures} failure(s)");
                }
            }
            Ok(Err(error)) => {
                let delay = backoff.failed();
                log::warn!("{name}: {error}; trying again in {} s", delay.as_secs());
            }
            Err(panic) => {
                let delay = backoff.failed();
                log::error!("{name}: {panic}; trying again in {} s", delay.as_secs());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::daemon::shutdown;

    #[tokio::test]
    async fn tasks_end_on_shutdown_and_stragglers_are_aborted() {
        let (trigger, stop) = shutdown::channel();
        let runs = Arc::new(AtomicU32::new(0));
        let mut tasks = Tasks::new();
        let counted = Arc::clone(&runs);
        tasks.spawn(
            "counter",
            run_periodically(
                "counter",
                Duration::from_millis(1),
                stop.clone(),
                move || {
                    counted.fetch_add(1, Ordering::Relaxed);
                    Ok::<(), String>(())
                },
            ),
        );
        tasks.spawn("deaf", std::future::pending());
        tokio::time::sleep(Duration::from_millis(50)).await;
        trigger.trigger();
        let left = tasks.join(Duration::from_millis(200)).await;
        assert_eq!(left, ["deaf"]);
        assert!(runs.load(Ordering::Relaxed) > 1);
        let after = runs.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            runs.load(Ordering::Relaxed),
            after,
            "the periodic task stopped"
        );
    }

    #[tokio::test]
    async fn failing_work_is_retried_ever_later() {
        let (trigger, stop) = shutdown::channel();
        let tries = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&tries);
        let task = tokio::spawn(run_periodically(
            "failing",
            Duration::from_millis(10),
            stop,
            move || {
                counted.fetch_add(1, Ordering::Relaxed);
                Err::<(), _>("always fails")
            },
        ));
        // Without backoff: ~50 tries in 500 ms; with it (20, 40, 80, 160 ms, ...): about 5.
        tokio::time::sleep(Duration::from_millis(500)).await;
        trigger.trigger();
        task.await.unwrap();
        let attempts = tries.load(Ordering::Relaxed);
        assert!((2..=6).contains(&attempts), "{attempts} tries");
    }
}
