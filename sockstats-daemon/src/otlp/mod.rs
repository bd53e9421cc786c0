//! OTLP push (`sockstatsd --otlp-endpoint URL`): every `--otlp-interval` the counters the
//! metrics endpoint shows ([`crate::metrics::collect`]) become one OTLP/HTTP protobuf export
//! ([`encode`]), queued in a bounded [`outbox`] and posted to the collector ([`client`]) by
//! the task in [`crate::daemon::tasks::otlp_export`]. Nothing here touches the kernel or the
//! locks the Unix-socket server takes, beyond the one reading of the counters per interval.
pub mod client;
pub mod encode;
pub mod endpoint;
pub mod outbox;

use std::{
    path::Path,
    sync::{Mutex, PoisonError},
    time::SystemTime,
};

use sockstats_common::protocol::OtlpDebug;

/// The exporter's state as `sockstats debug` shows it, published by the exporter task after
/// every change (a leaf lock: nothing is called while it is held).
#[derive(Debug, Default)]
pub struct ExporterStatus(Mutex<Option<OtlpDebug>>);

impl ExporterStatus {
    pub fn publish(&self, status: &OtlpDebug) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(status.clone());
    }

    /// `None` when no exporter runs.
    #[must_use]
    pub fn get(&self) -> Option<OtlpDebug> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// When the counters in the pinned maps began: when the pin of the account map under
/// `maps_dir` was made (bpffs sets a pin's times when it is made and never after), else
/// `fallback` (the daemon's start: a map not pinned, a pin time in the future).
#[must_use]
pub fn counters_since(maps_dir: &Path, fallback: SystemTime) -> SystemTime {
    std::fs::metadata(maps_dir.join("ACCOUNTS"))
        .and_then(|metadata| metadata.modified())
        .ok()
        .filter(|made| *made > SystemTime::UNIX_EPOCH && *made <= SystemTime::now())
        .unwrap_or(fallback)
}

/// The host name for the resource's `host.name` (`uname -n`).
#[must_use]
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn counters_began_when_the_account_pin_was_made() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now() + Duration::from_secs(5);
        // No pin: the daemon's start.
        assert_eq!(counters_since(dir.path(), now), now);
        std::fs::write(dir.path().join("ACCOUNTS"), b"").unwrap();
        let made = std::fs::metadata(dir.path().join("ACCOUNTS"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(counters_since(dir.path(), now), made);
        // A pin made after the daemon started (fresh maps) is when the counters began.
        let started = made - Duration::from_secs(1);
        assert_eq!(counters_since(dir.path(), started), made);
        // A pin "made" in the future (a clock set back since) is not believed.
        let file = std::fs::File::options()
            .write(true)
            .open(dir.path().join("ACCOUNTS"))
            .unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(3600))
            .unwrap();
        assert_eq!(counters_since(dir.path(), started), started);
    }

    #[test]
    fn the_status_is_none_until_published() {
        let status = ExporterStatus::default();
        assert_eq!(status.get(), None);
        let published = OtlpDebug {
            sent: 3,
            ..OtlpDebug::default()
        };
        status.publish(&published);
        assert_eq!(status.get(), Some(published));
    }
}
