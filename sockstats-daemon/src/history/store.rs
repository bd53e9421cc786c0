//! The SQLite file (docs/history.md has the schema): recording deltas into buckets, retention,
//! queries and resets. Everything here is one connection's work; [`super::History`] owns the
//! writer and opens a reader per query, so a query never waits for a recording (WAL mode).
use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use rusqlite::{params, params_from_iter, types::Value, Connection, OpenFlags, OptionalExtension};
use sockstats_common::protocol::Period;

use super::{
    calendar,
    filter::Filter,
    quota::{self, Crossing, Quotas},
    HistoryError,
};

/// The schema this daemon writes; a file with another is refused, not changed.
pub const SCHEMA_VERSION: &str = "2";

/// The destination of the series of a schema 1 file, which recorded none.
pub const DESTINATION_NOT_RECORDED: &str = "(not recorded)";

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    dimension TEXT NOT NULL,
    key TEXT NOT NULL,
    interface TEXT NOT NULL,
    destination TEXT NOT NULL,
    UNIQUE (dimension, key, interface, destination)
);
CREATE TABLE IF NOT EXISTS usage (
    period TEXT NOT NULL,
    start INTEGER NOT NULL,
    series INTEGER NOT NULL REFERENCES series (id),
    tx_bytes INTEGER NOT NULL,
    rx_bytes INTEGER NOT NULL,
    wire_tx_bytes INTEGER NOT NULL,
    wire_rx_bytes INTEGER NOT NULL,
    PRIMARY KEY (period, start, series)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS baseline (
    source TEXT PRIMARY KEY,
    tx_bytes INTEGER NOT NULL,
    rx_bytes INTEGER NOT NULL,
    wire_tx_bytes INTEGER NOT NULL,
    wire_rx_bytes INTEGER NOT NULL
) WITHOUT ROWID;
";

/// One series: what a row of `usage` is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    /// `label` (with an interface) or `uid` / `cgroup` (interface `""`: owners' bytes are
    /// kept without their interface).
    pub dimension: &'static str,
    pub key: String,
    pub interface: String,
    /// The destination class or named network the bytes went to or came from.
    pub destination: String,
}

/// One kernel counter set at one moment: `source` names it across restarts (a kernel account
/// or owner account), `series` are where its deltas go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub source: String,
    /// Payload tx, rx; wire tx, rx (cumulative, as the kernel keeps them).
    pub counters: [u64; 4],
    pub series: Vec<Series>,
}

/// What one recording did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Samples whose deltas were added to buckets.
    pub changed: usize,
    /// True when the baseline was (re)started: a new file, or the kernel's counters were made
    /// anew (pins lost) since the last recording.
    pub restarted: bool,
    /// Bucket rows deleted by retention.
    pub expired: usize,
    /// Quota thresholds this recording crossed (kept as fired in the same transaction).
    pub crossings: Vec<Crossing>,
}

/// One row of a query: bucket start, key, payload tx, rx.
pub type Row = (i64, String, i64, i64);

/// What a query sums its rows under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Group {
    /// The series' key (label, uid or cgroup).
    #[default]
    Key,
    /// The series' interface (label dimension only).
    Interface,
    /// The series' destination.
    Destination,
}

impl Group {
    const fn column(self) -> &'static str {
        match self {
            Group::Key => "key",
            Group::Interface => "interface",
            Group::Destination => "destination",
        }
    }
}

/// What a query selects (see [`sockstats_common::protocol::HistoryQuery`]).
#[derive(Debug, Clone, Default)]
pub struct Selection<'a> {
    pub period: Period,
    /// `label`, `uid` or `cgroup`.
    pub dimension: &'static str,
    /// What rows are summed under.
    pub group: Group,
    pub keys: &'a [String],
    pub interfaces: &'a [String],
    pub destinations: &'a [String],
    /// Interface globs (SQLite `GLOB`), any of which must match; `None` for no filter.
    pub interface_globs: Option<Vec<String>>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// The bit pattern of a counter as SQLite's signed integer (counters never reach 2^63 in
/// practice; the round trip is exact either way).
#[expect(
    clippy::cast_possible_wrap,
    reason = "a u64 stored as its two's complement bit pattern"
)]
pub(crate) const fn stored(counter: u64) -> i64 {
    counter as i64
}

#[expect(
    clippy::cast_sign_loss,
    reason = "the inverse of stored(): the bit pattern back"
)]
const fn loaded(value: i64) -> u64 {
    value as u64
}

/// The writer's connection.
pub struct Store {
    connection: Connection,
}

impl Store {
    /// Opens (or makes) the file and its schema. Refuses a file that is not a history of this
    /// schema, without changing it.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        let connection =
            Connection::open(path).map_err(|error| HistoryError::sqlite(path, error))?;
        let store = Self { connection };
        store.prepare(path)?;
        Ok(store)
    }

    fn prepare(&self, path: &Path) -> Result<(), HistoryError> {
        let sqlite = |error| HistoryError::sqlite(path, error);
        self.connection.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
        // WAL: readers never wait for the writer, and a killed daemon leaves a consistent file
        // (the last committed recording); NORMAL is durable across process crashes.
        self.connection
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(sqlite)?;
        self.connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sqlite)?;
        let tables: i64 = self
            .connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |row| row.get(0),
            )
            .map_err(sqlite)?;
        if tables > 0 {
            let version: Option<String> = self
                .connection
                .query_row("SELECT value FROM meta WHERE name = 'schema'", [], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(sqlite)?;
            if version.as_deref() == Some("1") {
                upgrade_from_1(&self.connection).map_err(sqlite)?;
                log::info!(
                    "usage history: {} upgraded from schema 1 to {SCHEMA_VERSION} (what it recorded is kept, with destination {DESTINATION_NOT_RECORDED:?})",
                    path.display()
                );
            } else if version.as_deref() != Some(SCHEMA_VERSION) {
                return Err(HistoryError::Schema {
                    path: path.to_owned(),
                    found: version.unwrap_or_else(|| "none".to_owned()),
                });
            }
        }
        self.connection.execute_batch(SCHEMA).map_err(sqlite)?;
        // Added after schema 1 shipped: a table more, nothing changed, so still schema 1.
        self.connection
            .execute_batch(quota::TABLE)
            .map_err(sqlite)?;
        self.connection
            .execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?1)",
                [SCHEMA_VERSION],
            )
            .map_err(sqlite)?;
        Ok(())
    }

    /// Adds the deltas of `samples` since the last recording into the buckets of `now`, in
    /// one transaction with the new baseline, then applies `retention` (per period, seconds;
    /// `None` keeps forever), then evaluates `quotas` ([`quota::evaluate`]). `epoch` names
    /// the kernel's counters: when it is not the one of the last recording they were made
    /// anew, so every sample counts from zero.
    pub fn record(
        &mut self,
        now: i64,
        epoch: &str,
        samples: &[Sample],
        billing_day: u8,
        retention: &[(Period, Option<i64>)],
        quotas: &Quotas,
    ) -> Result<Recorded, rusqlite::Error> {
        let transaction = self
            .connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last_epoch: Option<String> = transaction
            .query_row("SELECT value FROM meta WHERE name = 'epoch'", [], |row| {
                row.get(0)
            })
            .optional()?;
        // A new file starts from what the kernel holds now (bytes moved before history began
        // are not history); new kernel counters start from zero.
        let new_file = last_epoch.is_none();
        let restarted = last_epoch.as_deref() != Some(epoch);
        if restarted {
            transaction.execute("DELETE FROM baseline", [])?;
        }
        let mut recorded = Recorded {
            restarted,
            ..Recorded::default()
        };
        {
            let mut base = transaction.prepare_cached(
                "SELECT tx_bytes, rx_bytes, wire_tx_bytes, wire_rx_bytes FROM baseline WHERE source = ?1",
            )?;
            let mut set_base = transaction.prepare_cached(
                "INSERT OR REPLACE INTO baseline (source, tx_bytes, rx_bytes, wire_tx_bytes, wire_rx_bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut series_id = transaction.prepare_cached(
                "INSERT INTO series (dimension, key, interface, destination) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (dimension, key, interface, destination) DO UPDATE SET key = key
                 RETURNING id",
            )?;
            let mut add = transaction.prepare_cached(
                "INSERT INTO usage (period, start, series, tx_bytes, rx_bytes, wire_tx_bytes, wire_rx_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (period, start, series) DO UPDATE SET
                   tx_bytes = tx_bytes + excluded.tx_bytes, rx_bytes = rx_bytes + excluded.rx_bytes,
                   wire_tx_bytes = wire_tx_bytes + excluded.wire_tx_bytes,
                   wire_rx_bytes = wire_rx_bytes + excluded.wire_rx_bytes",
            )?;
            let starts: Vec<(Period, i64)> = Period::ALL
                .into_iter()
                .map(|period| (period, calendar::bucket_start(period, now, billing_day)))
                .collect();
            for sample in samples {
                let before: Option<[i64; 4]> = base
                    .query_row([&sample.source], |row| {
                        Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?])
                    })
                    .optional()?;
                let now_stored = sample.counters.map(stored);
                if before == Some(now_stored) {
                    continue;
                }
                set_base.execute(params![
                    sample.source,
                    now_stored[0],
                    now_stored[1],
                    now_stored[2],
                    now_stored[3]
                ])?;
                if new_file {
                    continue;
                }
                // Within one epoch a counter only goes down when a relabel moved a live
                // socket's bytes to another label: the difference (modulo 2^64, as the kernel
                // sums per-CPU values) is then negative, and the new label's is positive.
                let before = before.unwrap_or_default().map(loaded);
                let delta: [i64; 4] =
                    std::array::from_fn(|i| stored(sample.counters[i].wrapping_sub(before[i])));
                if delta == [0; 4] {
                    continue;
                }
                recorded.changed += 1;
                for series in &sample.series {
                    let id: i64 = series_id.query_row(
                        params![
                            series.dimension,
                            series.key,
                            series.interface,
                            series.destination
                        ],
                        |row| row.get(0),
                    )?;
                    for (period, start) in &starts {
                        add.execute(params![
                            period.name(),
                            start,
                            id,
                            delta[0],
                            delta[1],
                            delta[2],
                            delta[3]
                        ])?;
                    }
                }
            }
        }
        transaction.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('epoch', ?1), ('recorded_until', ?2)",
            params![epoch, now.to_string()],
        )?;
        recorded.expired = expire(&transaction, now, retention)?;
        recorded.crossings = quota::evaluate(&transaction, now, billing_day, quotas)?;
        transaction.commit()?;
        Ok(recorded)
    }

    /// Forgets the buckets of the label `label` (every interface), or all buckets of every
    /// dimension when `None`. The baseline stays: bytes already recorded are not recorded
    /// again. Returns the rows deleted.
    pub fn reset(&mut self, label: Option<&str>) -> Result<usize, rusqlite::Error> {
        let transaction = self.connection.transaction()?;
        let deleted = match label {
            Some(label) => transaction.execute(
                "DELETE FROM usage WHERE series IN
                   (SELECT id FROM series WHERE dimension = 'label' AND key = ?1)",
                [label],
            )?,
            None => transaction.execute("DELETE FROM usage", [])?,
        };
        transaction.execute(
            "DELETE FROM series WHERE id NOT IN (SELECT DISTINCT series FROM usage)",
            [],
        )?;
        transaction.commit()?;
        Ok(deleted)
    }
}

/// Schema 1 to 2, in one transaction: a series is also keyed by its destination (schema 1's
/// get [`DESTINATION_NOT_RECORDED`]); buckets, baseline and quota firings stay as they are.
/// `usage` refers to `series`: its foreign keys are off while `series` is made anew (the
/// ids stay), then checked.
fn upgrade_from_1(connection: &Connection) -> Result<(), rusqlite::Error> {
    connection.pragma_update(None, "foreign_keys", false)?;
    let upgraded = connection.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         CREATE TABLE series_2 (
             id INTEGER PRIMARY KEY,
             dimension TEXT NOT NULL,
             key TEXT NOT NULL,
             interface TEXT NOT NULL,
             destination TEXT NOT NULL,
             UNIQUE (dimension, key, interface, destination)
         );
         INSERT INTO series_2 (id, dimension, key, interface, destination)
             SELECT id, dimension, key, interface, '{DESTINATION_NOT_RECORDED}' FROM series;
         DROP TABLE series;
         ALTER TABLE series_2 RENAME TO series;
         UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE name = 'schema';
         COMMIT;"
    ));
    if upgraded.is_err() && !connection.is_autocommit() {
        connection.execute_batch("ROLLBACK")?;
    }
    connection.pragma_update(None, "foreign_keys", true)?;
    upgraded
}

/// Deletes the buckets older than `retention` (per period, seconds; `None` keeps forever);
/// returns how many.
fn expire(
    connection: &Connection,
    now: i64,
    retention: &[(Period, Option<i64>)],
) -> Result<usize, rusqlite::Error> {
    let mut expired = 0;
    for (period, keep) in retention {
        if let Some(keep) = keep {
            expired += connection.execute(
                "DELETE FROM usage WHERE period = ?1 AND start < ?2",
                params![period.name(), now.saturating_sub(*keep)],
            )?;
        }
    }
    Ok(expired)
}

/// Opens `path` for a query, read-only (it must exist).
pub fn open_reader(path: &Path) -> Result<Connection, HistoryError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| HistoryError::sqlite(path, error))?;
    connection
        .busy_timeout(BUSY_TIMEOUT)
        .map_err(|error| HistoryError::sqlite(path, error))?;
    Ok(connection)
}

/// When the last recording was (Unix seconds), if there was one.
pub fn recorded_until(connection: &Connection) -> Result<Option<i64>, rusqlite::Error> {
    let value: Option<String> = connection
        .query_row(
            "SELECT value FROM meta WHERE name = 'recorded_until'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(value.and_then(|value| value.parse().ok()))
}

/// Payload bytes per bucket start and key (or interface), oldest first, keys in order within
/// a bucket.
///
/// Two steps, so that SQLite never sorts: the series the selection wants (a few thousand rows
/// at most) are picked first; then the buckets of the period are read in the order of the
/// table's key (period, start, series) and summed per (start, key) here. A `GROUP BY` of the
/// key over a join sorted every row in a temporary b-tree: 1.2 s for three years of day
/// buckets of 1,000 labels, against about a tenth of that this way (docs/benchmarks.md).
pub fn query(
    connection: &Connection,
    selection: &Selection<'_>,
) -> Result<Vec<Row>, rusqlite::Error> {
    let groups = selected_series(connection, selection)?;
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut statement = connection.prepare(
        "SELECT start, series, tx_bytes, rx_bytes FROM usage
         WHERE period = ?1 AND start >= ?2 AND start < ?3 ORDER BY start",
    )?;
    let mut found = statement.query(params![
        selection.period.name(),
        selection.since.unwrap_or(i64::MIN),
        selection.until.unwrap_or(i64::MAX)
    ])?;
    let mut rows: Vec<Row> = Vec::new();
    let mut bucket: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let mut bucket_start = None;
    let flush = |rows: &mut Vec<Row>, start: i64, bucket: &mut BTreeMap<&str, (i64, i64)>| {
        for (key, (tx, rx)) in std::mem::take(bucket) {
            rows.push((start, key.to_owned(), tx, rx));
        }
    };
    while let Some(row) = found.next()? {
        let start: i64 = row.get(0)?;
        let Some(key) = groups.get(&row.get::<_, i64>(1)?) else {
            continue;
        };
        if bucket_start != Some(start) {
            if let Some(previous) = bucket_start {
                flush(&mut rows, previous, &mut bucket);
            }
            bucket_start = Some(start);
        }
        let sums = bucket.entry(key.as_str()).or_default();
        // The u64 bit patterns the table stores, added as u64s are (modulo 2^64).
        sums.0 = sums.0.wrapping_add(row.get(2)?);
        sums.1 = sums.1.wrapping_add(row.get(3)?);
    }
    if let Some(last) = bucket_start {
        flush(&mut rows, last, &mut bucket);
    }
    Ok(rows)
}

/// The series `selection` wants, by id, with the key (or interface) they are summed under.
fn selected_series(
    connection: &Connection,
    selection: &Selection<'_>,
) -> Result<HashMap<i64, String>, rusqlite::Error> {
    let mut filter = Filter::new(
        format!(
            "SELECT id, {} FROM series WHERE dimension = ?1",
            selection.group.column()
        ),
        vec![Value::Text(selection.dimension.to_owned())],
    );
    filter.and_in("key", selection.keys);
    filter.and_in("interface", selection.interfaces);
    filter.and_in("destination", selection.destinations);
    if let Some(globs) = &selection.interface_globs {
        filter.and_glob_any("interface", globs);
    }
    let mut statement = connection.prepare(&filter.sql)?;
    let series = statement.query_map(params_from_iter(filter.values), |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    series.collect()
}
