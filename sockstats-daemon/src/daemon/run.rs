//! `run(daemon, listener, options, shutdown)`: starts every task the daemon runs, waits for
//! the shutdown signal, and joins them all within [`SHUTDOWN_WITHIN`]. `sockstatsd` calls it
//! with the signal tied to SIGTERM and SIGINT; tests call it with the fake kernel.
use std::{sync::Arc, time::Duration};

use tokio::net::{TcpListener, UnixListener};

use super::{
    server::{self, ServerLimits},
    shutdown::Shutdown,
    state::Daemon,
    tasks::{
        closed_sockets, history_recorder, interface_follower, kernel_log,
        otlp_export::{self, OtlpConfig},
        rule_resolver,
        stats_log::{self, StatsLogConfig},
        Tasks,
    },
};
use crate::metrics::server as metrics_server;

/// How long the tasks get to end after shutdown (the server lets requests in progress finish
/// for up to 5 s of it).
pub const SHUTDOWN_WITHIN: Duration = Duration::from_secs(10);

/// What runs besides the server and the periodic tasks.
#[derive(Debug, Default)]
pub struct Options {
    pub limits: ServerLimits,
    /// The program whose aya-log ring buffer to forward.
    pub log_program_id: Option<u32>,
    /// `--stats-log`.
    pub stats_log: Option<StatsLogConfig>,
    /// `--metrics`, bound.
    pub metrics: Option<TcpListener>,
    /// `--otlp-endpoint`.
    pub otlp: Option<OtlpConfig>,
}

/// Serves `listener` and runs every background task until `shutdown`, then joins them.
/// Returns the names of the tasks that were still running after [`SHUTDOWN_WITHIN`] (and
/// were aborted).
pub async fn run(
    daemon: Arc<Daemon>,
    listener: UnixListener,
    options: Options,
    mut shutdown: Shutdown,
) -> Vec<&'static str> {
    let mut tasks = Tasks::new();
    if let Some(program_id) = options.log_program_id {
        tasks.spawn(
            "kernel-log forwarder",
            kernel_log::run(program_id, shutdown.clone()),
        );
    }
    tasks.spawn(
        "interface follower",
        interface_follower::run(Arc::clone(&daemon), shutdown.clone()),
    );
    tasks.spawn(
        "closed-socket reader",
        closed_sockets::run(Arc::clone(&daemon), shutdown.clone()),
    );
    tasks.spawn(
        "rule re-resolver",
        rule_resolver::run(Arc::clone(&daemon), shutdown.clone()),
    );
    if let Some(history) = daemon.history() {
        tasks.spawn(
            "history recorder",
            history_recorder::run(Arc::clone(&daemon), Arc::clone(history), shutdown.clone()),
        );
    }
    if let Some(config) = options.stats_log {
        tasks.spawn(
            "stats log",
            stats_log::run(Arc::clone(&daemon), config, shutdown.clone()),
        );
    }
    if let Some(listener) = options.metrics {
        tasks.spawn(
            "metrics server",
            metrics_server::serve(listener, Arc::clone(&daemon), shutdown.clone()),
        );
    }
    if let Some(config) = options.otlp {
        tasks.spawn(
            "otlp exporter",
            otlp_export::run(Arc::clone(&daemon), config, shutdown.clone()),
        );
    }
    tasks.spawn(
        "server",
        server::serve(listener, daemon, options.limits, shutdown.clone()),
    );
    shutdown.wait().await;
    tasks.join(SHUTDOWN_WITHIN).await
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use sockstats_common::client::Client;

    use super::*;
    use crate::{daemon::shutdown, ops::testing::Fixture};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_task_ends_promptly_on_shutdown() {
        let test = Fixture::new();
        let (history, opened) = crate::history::History::open(
            test.state_dir(),
            &test.daemon.info().config,
            "epoch".to_owned(),
            Duration::from_secs(1),
            Arc::new(crate::history::clock::SystemClock),
        );
        opened.unwrap();
        let history = Arc::new(history);
        test.daemon.set_history(Arc::clone(&history));
        let path = test.daemon.info().socket.clone();
        let options = Options {
            stats_log: Some(StatsLogConfig {
                path: test.dir.path().join("stats.log"),
                interval: Duration::from_secs(3600),
                max_bytes: 1 << 20,
                keep: 1,
                state_file: test.state_dir().join("stats-log-totals.json"),
            }),
            metrics: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
            // A collector that is not there: the exporter must not hold shutdown up.
            otlp: Some(OtlpConfig {
                endpoint: crate::otlp::endpoint::Endpoint::parse("http://127.0.0.1:9/v1/metrics")
                    .unwrap(),
                interval: Duration::from_millis(10),
                source: crate::otlp::encode::Source {
                    host_name: "test".to_owned(),
                    counters_since: std::time::SystemTime::now(),
                },
            }),
            ..Options::default()
        };
        let (trigger, stop) = shutdown::channel();
        let running = tokio::spawn(run(
            Arc::clone(&test.daemon),
            UnixListener::bind(&path).unwrap(),
            options,
            stop,
        ));
        let status = tokio::task::spawn_blocking(move || Client::connect(&path).unwrap().status())
            .await
            .unwrap()
            .unwrap();
        assert!(!status.attached, "the fixture attaches no programs");
        // The rule re-resolver writes the (empty) rules to the fake kernel every second.
        let deadline = Instant::now() + Duration::from_secs(5);
        while test.with_kernel(|kernel| kernel.rule_writes) == 0 {
            assert!(Instant::now() < deadline, "the rule re-resolver never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The exporter runs: its first try (port 9 refuses) is counted where debug_info reads.
        while test
            .daemon
            .exporter()
            .get()
            .is_none_or(|status| status.failed == 0)
        {
            assert!(Instant::now() < deadline, "the OTLP exporter never tried");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The history recorder records every second.
        while !history.status().recording {
            assert!(Instant::now() < deadline, "the history recorder never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let started = Instant::now();
        trigger.trigger();
        let left = running.await.unwrap();
        assert!(left.is_empty(), "{left:?} did not stop");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // The stats log wrote its last line (unlabeled, zero bytes: nothing changed, no line)
        // and the rule re-resolver ran against the fake kernel.
        assert!(test.with_kernel(|kernel| kernel.rule_writes) >= 1);
    }
}
