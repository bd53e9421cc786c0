//! The history recorder: every `--history-interval`, the kernel's totals into the usage
//! history ([`crate::history`]). The snapshot holds the core lock as long as any `get`; the
//! naming and the SQLite transaction hold only the history's writer. Quota thresholds the
//! recording crossed are announced after it commits ([`super::quota_alert`]).
use std::sync::Arc;

use super::run_periodically;
use crate::{
    daemon::{shutdown::Shutdown, state::Daemon},
    history::{samples, store::Recorded, History, HistoryError},
    ops::{naming, Refusal},
};

/// Why one recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read the kernel's totals: {0}")]
    Snapshot(#[from] Refusal),
    #[error("cannot record the usage history: {0}; the daemon goes on counting")]
    History(#[from] HistoryError),
}

/// Samples the kernel's totals now and records them.
pub fn record_now(daemon: &Daemon, history: &History) -> Result<Recorded, RecordError> {
    let (snapshot, labels) = naming::snapshot(daemon)?;
    let interface_names = daemon
        .interfaces()
        .refresh_and_name(samples::interfaces(&snapshot));
    let cgroup_paths = if snapshot.owners.is_empty() {
        std::collections::HashMap::new()
    } else {
        daemon.cgroups().paths_by_id()
    };
    let samples = samples::samples(
        &snapshot,
        &samples::Names {
            labels: &labels,
            interfaces: &interface_names,
            cgroup_paths: &cgroup_paths,
            destinations: &daemon.info().destinations,
        },
    );
    let recorded = history.record(&samples)?;
    // Kept as fired in the recording's transaction already: a crash from here on skips the
    // command of these crossings rather than running it twice (README, "Quotas and alerts").
    for crossing in &recorded.crossings {
        super::quota_alert::announce(crossing, daemon.info().config.quota_command.as_deref());
    }
    if recorded.restarted {
        log::info!(
            "usage history: recording into {} from the kernel's totals of now",
            history.path().display()
        );
    }
    Ok(recorded)
}

/// Records every interval of `history` until shutdown; failures back off and are logged.
pub async fn run(daemon: Arc<Daemon>, history: Arc<History>, shutdown: Shutdown) {
    let period = history.interval();
    run_periodically("history recorder", period, shutdown, move || {
        record_now(&daemon, &history).map(drop)
    })
    .await;
}
