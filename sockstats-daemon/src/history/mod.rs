//! The usage history: the kernel's running totals, sampled every `--history-interval`, as
//! deltas in buckets of 5 minutes, hours, days and billing months in `history.sqlite` in the
//! state dir (docs/history.md: schema, growth, what happens when the clock jumps).
//!
//! [`History`] owns the writer connection and the history's health. A recording adds each
//! delta to the bucket of every period in one transaction with the new baseline (so a day is
//! the sum of its hours to the byte, and a daemon killed mid-way neither loses nor doubles
//! anything); queries open a read-only connection of their own (WAL: they never wait for a
//! recording, nor it for them). A file that cannot be opened or written is reported (status,
//! debug, the log, one error line for `history`) and left as it is: never deleted, never
//! replaced. The daemon keeps counting and serving meanwhile, and tries again at every
//! recording, so moving a damaged file away is enough to start a new one.
//!
//! It must not touch the kernel: [`samples`] turns a snapshot the caller took into samples.
pub mod calendar;
pub mod clock;
mod filter;
pub mod query;
pub mod quota;
pub mod samples;
pub mod spans;
pub mod store;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use rusqlite::ErrorCode;
use sockstats_common::protocol::{HistoryStatus, Period};

use crate::config::Config;
use clock::Clock;
use query::{Answer, Bucket, Selection};
use quota::Quotas;
use store::{Recorded, Sample, Store};

/// The file's name in the state dir.
pub const FILE_NAME: &str = "history.sqlite";

/// The default seconds between recordings.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 60;

/// Why the history could not be used; each says what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HistoryError {
    #[error("{} is damaged or not a SQLite database ({reason}): move it away (e.g. `mv {0} {0}.damaged`) and a new history starts at the next recording; sockstats never deletes or overwrites it", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("{} is locked by another program ({reason}): end that program's transaction (an open sqlite3 shell?); recording resumes by itself", path.display())]
    Locked { path: PathBuf, reason: String },
    #[error("{} cannot be written ({reason}): check the state dir's permissions, read-only mounts and free space; recording resumes by itself", path.display())]
    Unwritable { path: PathBuf, reason: String },
    #[error("{} has history schema {found:?}, not {}: it was made by another version of sockstats; move it away to start a new history", path.display(), store::SCHEMA_VERSION)]
    Schema { path: PathBuf, found: String },
    #[error("{} cannot be used: {reason}", path.display())]
    Other { path: PathBuf, reason: String },
    #[error("no history yet: {} does not exist (the daemon records every {interval_seconds} s)", path.display())]
    Missing {
        path: PathBuf,
        interval_seconds: u64,
    },
}

impl HistoryError {
    /// Sorts a SQLite error by what the user can do about it.
    #[must_use]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "used as map_err(|e| HistoryError::sqlite(path, e)): the error is done with"
    )]
    pub fn sqlite(path: &Path, error: rusqlite::Error) -> Self {
        let path = path.to_owned();
        let reason = error.to_string();
        match error.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                HistoryError::Damaged { path, reason }
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                HistoryError::Locked { path, reason }
            }
            Some(
                ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure,
            ) => HistoryError::Unwritable { path, reason },
            _ => HistoryError::Other { path, reason },
        }
    }
}

/// How the last recording went.
#[derive(Debug, Clone, Default)]
struct Health {
    error: Option<HistoryError>,
    recorded_until: Option<i64>,
}

/// The usage history of one daemon.
pub struct History {
    path: PathBuf,
    interval: Duration,
    /// Names the kernel's counters (see [`Store::record`]).
    epoch: String,
    billing_day: u8,
    retention: Vec<(Period, Option<i64>)>,
    metered: crate::config::Metered,
    quotas: Quotas,
    clock: Arc<dyn Clock>,
    /// The writer; `None` until it opens.
    writer: Mutex<Option<Store>>,
    health: Mutex<Health>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl History {
    /// A history in `state_dir` per `config`, recorded every `interval`, of the kernel
    /// counters named `epoch`. Opens the file at once; if that fails the error is kept (and
    /// returned) and every recording tries again.
    pub fn open(
        state_dir: &Path,
        config: &Config,
        epoch: String,
        interval: Duration,
        clock: Arc<dyn Clock>,
    ) -> (Self, Result<(), HistoryError>) {
        let history = Self {
            path: state_dir.join(FILE_NAME),
            interval,
            epoch,
            billing_day: config.billing_day,
            retention: config
                .retention
                .iter()
                .map(|(period, keep)| {
                    (
                        *period,
                        keep.map(|keep| i64::try_from(keep.as_secs()).unwrap_or(i64::MAX)),
                    )
                })
                .collect(),
            metered: config.metered.clone(),
            quotas: Quotas {
                quotas: config.quotas.clone(),
                metered_globs: config.metered.globs(),
            },
            clock,
            writer: Mutex::new(None),
            health: Mutex::new(Health::default()),
        };
        let opened = history.writer().map(drop);
        (history, opened)
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[must_use]
    pub fn interval(&self) -> Duration {
        self.interval
    }

    #[must_use]
    pub fn billing_day(&self) -> u8 {
        self.billing_day
    }

    #[must_use]
    pub fn metered(&self) -> &crate::config::Metered {
        &self.metered
    }

    /// The writer, opened if it is not yet; a failure is kept as the health's error.
    fn writer(&self) -> Result<MutexGuard<'_, Option<Store>>, HistoryError> {
        let mut writer = lock(&self.writer);
        if writer.is_none() {
            match Store::open(&self.path) {
                Ok(store) => *writer = Some(store),
                Err(error) => {
                    lock(&self.health).error = Some(error.clone());
                    return Err(error);
                }
            }
        }
        Ok(writer)
    }

    /// Records `samples` (the kernel's counters now) into the buckets of the clock's now.
    pub fn record(&self, samples: &[Sample]) -> Result<Recorded, HistoryError> {
        let now = self.clock.now();
        let mut writer = self.writer()?;
        let store = writer.as_mut().expect("writer() opened it");
        let result = store.record(
            now,
            &self.epoch,
            samples,
            self.billing_day,
            &self.retention,
            &self.quotas,
        );
        let mut health = lock(&self.health);
        match result {
            Ok(recorded) => {
                health.error = None;
                health.recorded_until = Some(now);
                Ok(recorded)
            }
            Err(error) => {
                let error = HistoryError::sqlite(&self.path, error);
                // A damaged file stays damaged: open it anew next time (it may have been
                // moved away and a new one can start).
                if matches!(
                    error,
                    HistoryError::Damaged { .. } | HistoryError::Schema { .. }
                ) {
                    *writer = None;
                }
                health.error = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Rows of `selection`, and when the last recording was: [`Self::query_streamed`]'s
    /// buckets collected.
    pub fn query(&self, selection: &Selection<'_>) -> Result<(Answer, Option<i64>), HistoryError> {
        self.query_streamed(selection, |until, keys, buckets| {
            let answer = Answer {
                keys: keys.to_vec(),
                buckets: buckets.collect(),
            };
            (answer, until)
        })
    }

    /// A query read on a thread of its own while `consume` takes its buckets as they come
    /// (so a large reply is written while the file is still being read): `consume` gets when
    /// the daemon last recorded, the keys, and the buckets oldest first (see
    /// [`query::each_bucket`]). What it returns is kept only if the whole query succeeded.
    pub fn query_streamed<T>(
        &self,
        selection: &Selection<'_>,
        consume: impl FnOnce(Option<i64>, &[String], std::sync::mpsc::Iter<'_, Bucket>) -> T,
    ) -> Result<T, HistoryError> {
        if !self.path.exists() {
            return Err(self.unavailable());
        }
        let reader = store::open_reader(&self.path)?;
        let sqlite = |error| HistoryError::sqlite(&self.path, error);
        let until = store::recorded_until(&reader).map_err(sqlite)?;
        let prepared = query::prepare(&reader, selection).map_err(sqlite)?;
        // A span is at most 32 buckets: a few spans ahead of the writer.
        let (sender, receiver) = std::sync::mpsc::sync_channel(128);
        let prepared = &prepared;
        let (consumed, read) = std::thread::scope(|scope| {
            // The connection moves to the reading thread (it is not shared between threads).
            let reading = scope.spawn(move || {
                // A consumer that stopped early drops the receiver: the rest goes nowhere.
                query::each_bucket(&reader, selection, prepared, |bucket| {
                    let _ = sender.send(bucket);
                })
            });
            // Borrowed, so the receiver cannot outlive this scope (its end lets the query
            // thread's sends fail instead of waiting).
            let consumed = consume(until, &prepared.keys, receiver.iter());
            drop(receiver);
            let read = reading
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (consumed, read)
        });
        read.map_err(sqlite)?;
        Ok(consumed)
    }

    /// Every destination the file's series name (networks no longer configured included).
    pub fn recorded_destinations(&self) -> Result<Vec<String>, HistoryError> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let reader = store::open_reader(&self.path)?;
        let sqlite = |error| HistoryError::sqlite(&self.path, error);
        let mut statement = reader
            .prepare("SELECT DISTINCT destination FROM series")
            .map_err(sqlite)?;
        let names = statement
            .query_map([], |row| row.get(0))
            .map_err(sqlite)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(sqlite)?;
        Ok(names)
    }

    /// The configured quotas.
    #[must_use]
    pub fn quotas(&self) -> &[crate::config::Quota] {
        &self.quotas.quotas
    }

    /// Each quota's use of its period at the clock's now (in config order), and when the last
    /// recording was. Runs on a connection of its own.
    pub fn quota_uses(&self) -> Result<(Vec<quota::Use>, Option<i64>), HistoryError> {
        if !self.path.exists() {
            return Err(self.unavailable());
        }
        let reader = store::open_reader(&self.path)?;
        let sqlite = |error| HistoryError::sqlite(&self.path, error);
        let until = store::recorded_until(&reader).map_err(sqlite)?;
        let uses = quota::uses(&reader, self.clock.now(), self.billing_day, &self.quotas)
            .map_err(sqlite)?;
        Ok((uses, until))
    }

    /// Forgets the buckets of `label`, or all of them.
    pub fn reset(&self, label: Option<&str>) -> Result<usize, HistoryError> {
        let mut writer = self.writer()?;
        let store = writer.as_mut().expect("writer() opened it");
        store
            .reset(label)
            .map_err(|error| HistoryError::sqlite(&self.path, error))
    }

    /// What is wrong while the file cannot be used: the last error, or that it is missing.
    fn unavailable(&self) -> HistoryError {
        lock(&self.health)
            .error
            .clone()
            .unwrap_or(HistoryError::Missing {
                path: self.path.clone(),
                interval_seconds: self.interval.as_secs(),
            })
    }

    /// The history's health for `status` and `debug_info`.
    #[must_use]
    pub fn status(&self) -> HistoryStatus {
        let health = lock(&self.health).clone();
        HistoryStatus {
            path: self.path.display().to_string(),
            recording: health.error.is_none() && health.recorded_until.is_some(),
            error: health.error.map(|error| error.to_string()),
            recorded_until: health.recorded_until.map(rfc3339),
            interval_seconds: self.interval.as_secs(),
        }
    }
}

/// Unix seconds as RFC 3339 in UTC (`1970-01-01T00:00:00Z` for times before the epoch).
#[must_use]
pub fn rfc3339(seconds: i64) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod quota_tests;
#[cfg(test)]
mod span_tests;
#[cfg(test)]
mod tests;
