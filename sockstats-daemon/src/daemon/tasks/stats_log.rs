//! The periodic delta log (like Tailscale's sockstatlog): every interval, one JSON line with the
//! per-label payload bytes moved since the previous line, for the labels that changed:
//!
//! `{"time":"2026-11-25T18:00:00.000Z","duration_seconds":10.0,"stats":{"web":[1200,800]}}`
//!
//! The first line ever counts from zero, and the totals of the last line written are kept in
//! the state dir, so a restarted daemon continues where it left off: the deltas of all lines
//! (rotated files included) sum to the totals. Deltas can be negative: relabeling a live
//! socket moves its bytes between labels. Totals are remembered only once their line is
//! written, so a failed write loses nothing (the next line carries it).
//! The file is rotated by size (`PATH.1` … `PATH.<keep>`), the oldest dropped.
use std::{
    collections::BTreeMap,
    fs::{self, OpenOptions},
    io::{self, Write as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use serde::Serialize;
use sockstats_common::Totals;

use super::backoff::Backoff;
use crate::daemon::{shutdown::Shutdown, state::Daemon};
use crate::ops::{naming, Refusal};

/// Where and how often to log, and how much to keep.
#[derive(Debug, Clone)]
pub struct StatsLogConfig {
    pub path: PathBuf,
    pub interval: Duration,
    /// Rotate before the file would grow past this.
    pub max_bytes: u64,
    /// Rotated files kept besides the live one.
    pub keep: usize,
    /// Where the totals of the last line written are kept across restarts.
    pub state_file: PathBuf,
}

#[derive(Serialize)]
struct Line<'a> {
    time: String,
    duration_seconds: f64,
    stats: &'a BTreeMap<String, [i64; 2]>,
}

/// Remembers the totals of the previous line.
#[derive(Debug, Default)]
pub struct Deltas {
    previous: BTreeMap<String, Totals>,
}

fn delta(now: u64, before: u64) -> i64 {
    let difference = i128::from(now) - i128::from(before);
    i64::try_from(difference).unwrap_or(if difference < 0 { i64::MIN } else { i64::MAX })
}

impl Deltas {
    /// Continues from the totals saved in `state_file` (from zero when there are none).
    #[must_use]
    pub fn resume(state_file: &Path) -> Self {
        let previous = fs::read(state_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<BTreeMap<String, [u64; 2]>>(&bytes).ok())
            .map(|saved| {
                saved
                    .into_iter()
                    .map(|(l, [tx, rx])| (l, Totals::new(tx, rx)))
                    .collect()
            })
            .unwrap_or_default();
        Self { previous }
    }

    /// Makes `totals` the base of the next line and saves them to `state_file`.
    pub fn remember(
        &mut self,
        totals: BTreeMap<String, Totals>,
        state_file: &Path,
    ) -> io::Result<()> {
        let saved: BTreeMap<&String, [u64; 2]> = totals
            .iter()
            .map(|(l, t)| (l, [t.tx_bytes, t.rx_bytes]))
            .collect();
        crate::state_file::write_atomically(
            state_file,
            &serde_json::to_vec(&saved).map_err(io::Error::other)?,
        )?;
        self.previous = totals;
        Ok(())
    }

    /// The line for `totals` (`None` when nothing changed since the remembered totals).
    #[must_use]
    pub fn line(
        &self,
        totals: &BTreeMap<String, Totals>,
        time: SystemTime,
        duration: Duration,
    ) -> Option<String> {
        let mut changed = BTreeMap::new();
        for (label, now) in totals {
            let before = self.previous.get(label).copied().unwrap_or_default();
            if *now != before {
                changed.insert(
                    label.clone(),
                    [
                        delta(now.tx_bytes, before.tx_bytes),
                        delta(now.rx_bytes, before.rx_bytes),
                    ],
                );
            }
        }
        for (label, before) in &self.previous {
            if !totals.contains_key(label) && *before != Totals::default() {
                changed.insert(
                    label.clone(),
                    [delta(0, before.tx_bytes), delta(0, before.rx_bytes)],
                );
            }
        }
        if changed.is_empty() {
            return None;
        }
        let line = Line {
            time: humantime::format_rfc3339_millis(time).to_string(),
            duration_seconds: duration.as_secs_f64(),
            stats: &changed,
        };
        Some(serde_json::to_string(&line).expect("lines serialize"))
    }
}

/// Appends `line` to `path`, rotating first if the file would grow past `max_bytes`.
pub fn append(path: &Path, line: &str, max_bytes: u64, keep: usize) -> io::Result<()> {
    let size = fs::metadata(path).map_or(0, |m| m.len());
    if size > 0 && size + line.len() as u64 + 1 > max_bytes {
        rotate(path, keep)?;
    }
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// `path` → `path.1` → … → `path.<keep>`; the oldest is dropped.
fn rotate(path: &Path, keep: usize) -> io::Result<()> {
    if keep == 0 {
        return fs::remove_file(path);
    }
    let _ = fs::remove_file(rotated(path, keep));
    for n in (1..keep).rev() {
        let from = rotated(path, n);
        if from.exists() {
            fs::rename(&from, rotated(path, n + 1))?;
        }
    }
    fs::rename(path, rotated(path, 1))
}

fn totals_now(daemon: &Daemon) -> Result<BTreeMap<String, Totals>, Refusal> {
    Ok(naming::named_totals(daemon)?.payload_per_label())
}

/// The longest the log waits between tries while writing keeps failing.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// Writes a line every interval until shutdown, and a last one then. While writing fails,
/// tries ever less often (up to [`MAX_RETRY_DELAY`] apart); the next line written carries
/// the bytes of the lines that could not be.
pub async fn run(daemon: Arc<Daemon>, config: StatsLogConfig, mut shutdown: Shutdown) {
    let mut deltas = Deltas::resume(&config.state_file);
    let mut last = Instant::now();
    let mut backoff = Backoff::new(config.interval, MAX_RETRY_DELAY.max(config.interval));
    let mut next = tokio::time::Instant::now() + config.interval;
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep_until(next) => false,
            () = shutdown.wait() => true,
        };
        let daemon = Arc::clone(&daemon);
        let totals = tokio::task::spawn_blocking(move || totals_now(&daemon))
            .await
            .map_err(|error| error.to_string())
            .and_then(|totals| totals.map_err(|error| error.to_string()));
        let written = totals.and_then(|totals| {
            let now = Instant::now();
            match deltas.line(&totals, SystemTime::now(), now - last) {
                Some(line) => append(&config.path, &line, config.max_bytes, config.keep),
                None => Ok(()),
            }
            .and_then(|()| deltas.remember(totals, &config.state_file))
            .map_err(|error| {
                format!(
                    "cannot write the stats log {}: {error}",
                    config.path.display()
                )
            })?;
            last = now;
            Ok(())
        });
        let delay = match written {
            Ok(()) => {
                backoff.succeeded();
                backoff.delay()
            }
            Err(error) => {
                let delay = backoff.failed();
                log::warn!("stats log: {error}; trying again in {} s", delay.as_secs());
                delay
            }
        };
        if stopping {
            return;
        }
        // Like a fixed interval (whose missed ticks are delayed), counted from the last
        // deadline, not from when the work ended.
        let now = tokio::time::Instant::now();
        next = if next + delay < now {
            now + delay
        } else {
            next + delay
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(entries: &[(&str, u64, u64)]) -> BTreeMap<String, Totals> {
        entries
            .iter()
            .map(|(l, tx, rx)| ((*l).to_owned(), Totals::new(*tx, *rx)))
            .collect()
    }

    fn stats(line: &str) -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(line).unwrap()["stats"].clone()
    }

    #[test]
    fn lines_hold_the_deltas_of_changed_labels() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        let mut deltas = Deltas::resume(&state);
        let second = Duration::from_secs(1);
        let epoch = SystemTime::UNIX_EPOCH;
        let first_totals = totals(&[("a", 10, 5), ("b", 0, 0)]);
        let first = deltas.line(&first_totals, epoch, second).unwrap();
        assert_eq!(stats(&first), serde_json::json!({"a": [10, 5]}));
        assert!(
            first.starts_with(r#"{"time":"1970-01-01T00:00:00.000Z","duration_seconds":1.0,"#),
            "{first}"
        );
        deltas.remember(first_totals.clone(), &state).unwrap();
        assert_eq!(deltas.line(&first_totals, epoch, second), None);
        // Not remembered (say the write failed): the next line still carries these bytes.
        let _ = deltas
            .line(&totals(&[("a", 11, 5)]), epoch, second)
            .unwrap();
        let third = deltas
            .line(&totals(&[("a", 4, 9), ("b", 6, 0)]), epoch, second)
            .unwrap();
        assert_eq!(
            stats(&third),
            serde_json::json!({"a": [-6, 4], "b": [6, 0]})
        );
        // A restarted daemon continues from the saved totals.
        let resumed = Deltas::resume(&state);
        let after_restart = resumed
            .line(&totals(&[("a", 12, 5), ("b", 0, 0)]), epoch, second)
            .unwrap();
        assert_eq!(stats(&after_restart), serde_json::json!({"a": [2, 0]}));
    }

    #[test]
    fn rotation_keeps_at_most_keep_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.log");
        for n in 0..20 {
            append(&path, &format!("line {n:02} ........."), 45, 2).unwrap();
        }
        let live = fs::read_to_string(&path).unwrap();
        assert!(
            live.ends_with("line 19 .........\n") && live.len() <= 45,
            "{live:?}"
        );
        assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        let older = fs::read_to_string(rotated(&path, 1)).unwrap();
        assert!(older.ends_with("line 17 .........\n"), "{older:?}");
    }
}
