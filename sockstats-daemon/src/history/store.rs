//! The SQLite file (docs/history.md has the schema): recording deltas into buckets, retention,
//! queries and resets. Everything here is one connection's work; [`super::History`] owns the
//! writer and opens a reader per query, so a query never waits for a recording (WAL mode).
use std::{collections::BTreeMap, path::Path};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use sockstats_common::protocol::Period;

use super::{
    calendar,
    quota::{self, Crossing, Quotas},
    spans, HistoryError,
};

/// The schema this daemon writes; a file with another is refused, not changed.
pub const SCHEMA_VERSION: &str = "3";

/// The destination of the series of a schema 1 file, which recorded none.
pub const DESTINATION_NOT_RECORDED: &str = "(not recorded)";

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Every table and view but `series` (whose columns are [`SERIES_COLUMNS`]);
/// `{USAGE_SPAN_COLUMNS}` and `{USAGE_SPAN_WIRE_COLUMNS}` stand for [`span_columns`].
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
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
CREATE TABLE IF NOT EXISTS usage_span {USAGE_SPAN_COLUMNS};
CREATE TABLE IF NOT EXISTS usage_span_wire {USAGE_SPAN_WIRE_COLUMNS};
CREATE VIEW IF NOT EXISTS buckets AS
    SELECT period, start, series, tx_bytes, rx_bytes, wire_tx_bytes, wire_rx_bytes FROM usage
    UNION ALL
    SELECT p.period,
           p.span + b.key * CASE p.period WHEN '5min' THEN 300 WHEN 'hour' THEN 3600 ELSE 86400 END,
           p.series, b.value ->> 0, b.value ->> 1,
           w.wire ->> ('$[' || b.key || '][0]'), w.wire ->> ('$[' || b.key || '][1]')
    FROM usage_span p LEFT JOIN usage_span_wire w USING (period, span, series), json_each(p.payload) b
    WHERE b.type = 'array';
CREATE TABLE IF NOT EXISTS baseline (
    source TEXT PRIMARY KEY,
    tx_bytes INTEGER NOT NULL,
    rx_bytes INTEGER NOT NULL,
    wire_tx_bytes INTEGER NOT NULL,
    wire_rx_bytes INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The columns of a span table: `usage_span` (`value` `payload`) and `usage_span_wire`
/// (`value` `wire`), made by [`SCHEMA`] and by the upgrade from schema 2. The wire bytes are
/// apart: a query reads payload only, and with both in one row it read every page of both.
fn span_columns(value: &str) -> String {
    format!(
        "(
    period TEXT NOT NULL,
    span INTEGER NOT NULL,
    series INTEGER NOT NULL REFERENCES series (id),
    {value} TEXT NOT NULL,
    PRIMARY KEY (period, span, series)
) WITHOUT ROWID"
    )
}

/// The columns of `series` (made by [`SCHEMA`]'s caller and by the upgrade from schema 1).
const SERIES_COLUMNS: &str = "(
    id INTEGER PRIMARY KEY,
    dimension TEXT NOT NULL,
    key TEXT NOT NULL,
    interface TEXT NOT NULL,
    destination TEXT NOT NULL,
    UNIQUE (dimension, key, interface, destination)
)";

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
    /// Bucket rows deleted by retention (`usage` and `usage_span` rows).
    pub expired: usize,
    /// `usage` rows packed into spans ([`super::spans`]).
    pub packed: usize,
    /// Quota thresholds this recording crossed (kept as fired in the same transaction).
    pub crossings: Vec<Crossing>,
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
        // A new file gets 16 KiB pages: a span row (up to about 2 KB) then fits its b-tree
        // page instead of taking an overflow page of its own (4 KiB pages: three times the
        // file, twice the query time). An existing file keeps its pages (no-op).
        self.connection
            .pragma_update(None, "page_size", 16_384)
            .map_err(sqlite)?;
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
            } else if version.as_deref() == Some("2") {
                upgrade_from_2(&self.connection).map_err(sqlite)?;
                log::info!(
                    "usage history: {} upgraded from schema 2 to {SCHEMA_VERSION} (spans' wire bytes moved to a table of their own; what it recorded is kept)",
                    path.display()
                );
                // The old span table's pages are free now: given back once, so the file is
                // not twice its size (and the span rows lie in order).
                if let Err(error) = self.connection.execute_batch("VACUUM") {
                    log::warn!(
                        "usage history: {} could not be compacted after its upgrade ({error}); it works as it is, at about twice its size, until `sqlite3 {} VACUUM` with the daemon stopped",
                        path.display(),
                        path.display()
                    );
                }
            } else if version.as_deref() != Some(SCHEMA_VERSION) {
                return Err(HistoryError::Schema {
                    path: path.to_owned(),
                    found: version.unwrap_or_else(|| "none".to_owned()),
                });
            }
        }
        self.connection
            .execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS series {SERIES_COLUMNS};\n{}",
                SCHEMA
                    .replace("{USAGE_SPAN_COLUMNS}", &span_columns("payload"))
                    .replace("{USAGE_SPAN_WIRE_COLUMNS}", &span_columns("wire"))
            ))
            .map_err(sqlite)?;
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
        keep_up(&transaction, now, billing_day, retention, &mut recorded)?;
        recorded.crossings = quota::evaluate(&transaction, now, billing_day, quotas)?;
        transaction.commit()?;
        Ok(recorded)
    }

    /// Forgets the buckets of the label `label` (every interface), or all buckets of every
    /// dimension when `None`. The baseline stays: bytes already recorded are not recorded
    /// again. Returns the rows deleted (of `usage` and `usage_span`).
    pub fn reset(&mut self, label: Option<&str>) -> Result<usize, rusqlite::Error> {
        let transaction = self.connection.transaction()?;
        let mut deleted = 0;
        for table in ["usage", "usage_span", "usage_span_wire"] {
            let rows = match label {
                Some(label) => transaction.execute(
                    &format!(
                        "DELETE FROM {table} WHERE series IN
                           (SELECT id FROM series WHERE dimension = 'label' AND key = ?1)"
                    ),
                    [label],
                )?,
                None => transaction.execute(&format!("DELETE FROM {table}"), [])?,
            };
            // A span's wire row goes with its payload row: counted once.
            if table != "usage_span_wire" {
                deleted += rows;
            }
        }
        transaction.execute(
            "DELETE FROM series WHERE id NOT IN
               (SELECT series FROM usage UNION SELECT series FROM usage_span)",
            [],
        )?;
        transaction.commit()?;
        Ok(deleted)
    }
}

/// What a recording does after its deltas: packs the spans that ended, then applies the
/// retention (so a span expires whole: docs/history.md, "Spans").
fn keep_up(
    connection: &Connection,
    now: i64,
    billing_day: u8,
    retention: &[(Period, Option<i64>)],
    recorded: &mut Recorded,
) -> Result<(), rusqlite::Error> {
    recorded.packed = pack_ended_spans(connection, now, billing_day)?;
    recorded.expired = expire(connection, now, retention)?;
    Ok(())
}

/// Schema 1 to 2, in one transaction: a series is also keyed by its destination (schema 1's
/// get [`DESTINATION_NOT_RECORDED`]); buckets, baseline and quota firings stay as they are.
/// `usage` refers to `series`: foreign keys are off while `series` is made anew (the ids
/// stay), then as they were; every bucket must still name a series.
fn upgrade_from_1(connection: &Connection) -> Result<(), rusqlite::Error> {
    let foreign_keys: bool = connection.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    connection.pragma_update(None, "foreign_keys", false)?;
    let upgraded = in_one_transaction(
        connection,
        &format!(
            "CREATE TABLE series_2 {SERIES_COLUMNS};
             INSERT INTO series_2 (id, dimension, key, interface, destination)
                 SELECT id, dimension, key, interface, '{DESTINATION_NOT_RECORDED}' FROM series;
             DROP TABLE series;
             ALTER TABLE series_2 RENAME TO series;
             UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE name = 'schema';"
        ),
    );
    connection.pragma_update(None, "foreign_keys", foreign_keys)?;
    upgraded?;
    // Every bucket still names a series.
    let orphans: i64 = connection.query_row(
        "SELECT count(*) FROM usage WHERE series NOT IN (SELECT id FROM series)",
        [],
        |row| row.get(0),
    )?;
    if orphans > 0 {
        return Err(damaged(spans::Malformed { at: 0 }));
    }
    Ok(())
}

/// Schema 2 to 3, in one transaction: the wire bytes of spans move from `usage_span` to
/// `usage_span_wire` (a table made anew for each, so the payload rows are packed into pages of
/// their own; the freed pages are reused). The `buckets` view is made anew by [`SCHEMA`].
fn upgrade_from_2(connection: &Connection) -> Result<(), rusqlite::Error> {
    in_one_transaction(
        connection,
        &format!(
            "DROP VIEW IF EXISTS buckets;
             CREATE TABLE usage_span_wire {wire};
             INSERT INTO usage_span_wire (period, span, series, wire)
                 SELECT period, span, series, wire FROM usage_span;
             CREATE TABLE usage_span_3 {payload};
             INSERT INTO usage_span_3 (period, span, series, payload)
                 SELECT period, span, series, payload FROM usage_span;
             DROP TABLE usage_span;
             ALTER TABLE usage_span_3 RENAME TO usage_span;
             UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE name = 'schema';",
            wire = span_columns("wire"),
            payload = span_columns("payload"),
        ),
    )
}

/// Runs the statements of `batch` in one immediate transaction, rolled back if one fails
/// (the error is that statement's).
fn in_one_transaction(connection: &Connection, batch: &str) -> Result<(), rusqlite::Error> {
    let done = connection.execute_batch(&format!("BEGIN IMMEDIATE;\n{batch}\nCOMMIT;"));
    if done.is_err() && !connection.is_autocommit() {
        if let Err(error) = connection.execute_batch("ROLLBACK") {
            log::warn!("usage history: rolling back a failed upgrade failed too: {error}");
        }
    }
    done
}

/// Deletes the buckets that started longer than `retention` ago (per period, seconds; `None`
/// keeps forever), and the spans whose every bucket did; returns how many rows.
fn expire(
    connection: &Connection,
    now: i64,
    retention: &[(Period, Option<i64>)],
) -> Result<usize, rusqlite::Error> {
    let mut expired = 0;
    for (period, keep) in retention {
        let Some(keep) = keep else { continue };
        let cutoff = now.saturating_sub(*keep);
        expired += connection.execute(
            "DELETE FROM usage WHERE period = ?1 AND start < ?2",
            params![period.name(), cutoff],
        )?;
        if let (Some(bucket), Some(count)) = (
            spans::bucket_seconds(*period),
            spans::buckets_per_span(*period),
        ) {
            // The span's last bucket started before the cutoff.
            let first_kept = cutoff.saturating_sub(bucket * (count - 1));
            expired += connection.execute(
                "DELETE FROM usage_span WHERE period = ?1 AND span < ?2",
                params![period.name(), first_kept],
            )?;
            connection.execute(
                "DELETE FROM usage_span_wire WHERE period = ?1 AND span < ?2",
                params![period.name(), first_kept],
            )?;
        }
    }
    Ok(expired)
}

/// The bucket sums of a span: payload tx, rx, wire tx, rx.
type SpanBuckets = Vec<Option<[i64; 4]>>;

/// Packs the `usage` rows of every span that has ended (before the span of `now`) into its
/// `usage_span` row, adding them to what the row already holds (a clock that went back can
/// add to a span already packed), and deletes them. Returns the rows packed.
fn pack_ended_spans(
    connection: &Connection,
    now: i64,
    billing_day: u8,
) -> Result<usize, rusqlite::Error> {
    let mut packed = 0;
    for period in spans::PACKED {
        let (open_span, _) =
            spans::locate(period, calendar::bucket_start(period, now, billing_day))
                .expect("a packed period");
        let count = usize::try_from(spans::buckets_per_span(period).expect("packed"))
            .expect("a small count");
        let mut ended: BTreeMap<(i64, i64), SpanBuckets> = BTreeMap::new();
        {
            let mut rows = connection.prepare_cached(
                "SELECT start, series, tx_bytes, rx_bytes, wire_tx_bytes, wire_rx_bytes
                 FROM usage WHERE period = ?1 AND start < ?2",
            )?;
            let mut found = rows.query(params![period.name(), open_span])?;
            while let Some(row) = found.next()? {
                let (span, index) = spans::locate(period, row.get(0)?).expect("packed");
                let buckets = ended
                    .entry((span, row.get(1)?))
                    .or_insert_with(|| vec![None; count]);
                buckets[index] = Some([row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?]);
                packed += 1;
            }
        }
        if ended.is_empty() {
            continue;
        }
        let mut existing = connection.prepare_cached(
            "SELECT p.payload, w.wire FROM usage_span p LEFT JOIN usage_span_wire w USING (period, span, series)
             WHERE p.period = ?1 AND p.span = ?2 AND p.series = ?3",
        )?;
        let mut write = connection.prepare_cached(
            "INSERT OR REPLACE INTO usage_span (period, span, series, payload) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut write_wire = connection.prepare_cached(
            "INSERT OR REPLACE INTO usage_span_wire (period, span, series, wire) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for ((span, series), mut buckets) in ended {
            let before: Option<(String, Option<String>)> = existing
                .query_row(params![period.name(), span, series], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            if let Some((payload, wire)) = before {
                add_span(&mut buckets, &payload, 0)?;
                add_span(&mut buckets, wire.as_deref().unwrap_or("[]"), 2)?;
            }
            let pairs = |at: usize| -> Vec<Option<[i64; 2]>> {
                buckets
                    .iter()
                    .map(|bucket| bucket.map(|sums| [sums[at], sums[at + 1]]))
                    .collect()
            };
            write.execute(params![
                period.name(),
                span,
                series,
                spans::encode(&pairs(0))
            ])?;
            write_wire.execute(params![
                period.name(),
                span,
                series,
                spans::encode(&pairs(2))
            ])?;
        }
        connection.execute(
            "DELETE FROM usage WHERE period = ?1 AND start < ?2",
            params![period.name(), open_span],
        )?;
    }
    Ok(packed)
}

/// Adds the pairs of a span's `text` into `buckets` at `at` (0: payload, 2: wire).
fn add_span(buckets: &mut SpanBuckets, text: &str, at: usize) -> Result<(), rusqlite::Error> {
    let mut outside = false;
    spans::decode(text.as_bytes(), |index, [a, b]| {
        match buckets.get_mut(index) {
            Some(bucket) => {
                let sums = bucket.get_or_insert([0; 4]);
                // The u64 bit patterns the table stores, added as u64s are (modulo 2^64).
                sums[at] = sums[at].wrapping_add(a);
                sums[at + 1] = sums[at + 1].wrapping_add(b);
            }
            None => outside = true,
        }
    })
    .map_err(damaged)?;
    if outside {
        return Err(damaged(spans::Malformed { at: 0 }));
    }
    Ok(())
}

/// A span the file holds that this daemon never writes: the file is damaged.
pub(super) fn damaged(error: spans::Malformed) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(error.to_string()),
    )
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
