//! Quotas (the config's `quota` lines): what each has used of its current period, read from
//! the history's buckets, and which thresholds it crossed. A recording evaluates every quota
//! inside its own transaction and keeps each threshold that fired for a period start in the
//! `quota_fired` table, so a crossing fires once per period: also across restarts and
//! `kill -9` (the firing is committed with the bytes that crossed it, before the command runs).
//! Quotas only watch: nothing is ever blocked.
use rusqlite::{params, types::Value, Connection, OptionalExtension};
use sockstats_common::protocol::{QuotaState, QuotaThreshold};

use super::{calendar, filter::Filter, spans, store};
use crate::config::{quota::Direction, Quota};

/// The quotas of a history, with the metered globs their `metered` means.
#[derive(Debug, Clone, Default)]
pub struct Quotas {
    pub quotas: Vec<Quota>,
    pub metered_globs: Vec<String>,
}

/// One threshold crossed by a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    pub quota: Quota,
    pub threshold: QuotaThreshold,
    pub period_start: i64,
    pub period_end: i64,
    pub used: u64,
}

/// A quota's use of its current period.
#[derive(Debug, Clone, PartialEq)]
pub struct Use {
    pub period_start: i64,
    pub period_end: i64,
    pub used: u64,
    /// The latest firing of this quota (any period): threshold, period start, when.
    pub last_fired: Option<(QuotaThreshold, i64, i64)>,
}

/// `used` over the limit (1.0 is the limit).
#[must_use]
#[expect(
    clippy::cast_precision_loss,
    reason = "a ratio to show; the exact bytes are beside it"
)]
pub fn ratio(quota: &Quota, used: u64) -> f64 {
    used as f64 / quota.limit as f64
}

impl Use {
    #[must_use]
    pub fn ratio(&self, quota: &Quota) -> f64 {
        ratio(quota, self.used)
    }

    #[must_use]
    pub fn state(&self, quota: &Quota) -> QuotaState {
        if self.used >= quota.limit {
            QuotaState::Over
        } else if reached_warn(quota, self.used) {
            QuotaState::Warn
        } else {
            QuotaState::Ok
        }
    }
}

fn reached_warn(quota: &Quota, used: u64) -> bool {
    u128::from(used) * 100 >= u128::from(quota.limit) * u128::from(quota.warn_percent)
}

pub const TABLE: &str = "
CREATE TABLE IF NOT EXISTS quota_fired (
    quota TEXT NOT NULL,
    period_start INTEGER NOT NULL,
    threshold TEXT NOT NULL,
    fired_at INTEGER NOT NULL,
    used_bytes INTEGER NOT NULL,
    PRIMARY KEY (quota, period_start, threshold)
) WITHOUT ROWID;
";

/// How long firings are kept (their period is long over by then).
const KEEP_FIRED_SECONDS: i64 = 400 * 86_400;

/// Payload bytes `quota` counts in the bucket of its period that starts at `start`: its
/// `usage` rows, and its part of `usage_span` rows (a clock that went back can record into a
/// span already packed).
pub fn used(
    connection: &Connection,
    quota: &Quota,
    start: i64,
    metered_globs: &[String],
) -> rusqlite::Result<u64> {
    let quota_series = |sql: &str, at: i64| {
        let mut filter = Filter::new(
            sql.to_owned(),
            vec![
                Value::Text(quota.period.name().to_owned()),
                Value::Integer(at),
            ],
        );
        if let Some(label) = &quota.label {
            filter.and(" AND s.key = ?", Value::Text(label.clone()));
        }
        if let Some(glob) = &quota.interface {
            filter.and(" AND s.interface GLOB ?", Value::Text(glob.to_string()));
        }
        if quota.metered {
            filter.and_glob_any("s.interface", metered_globs);
        }
        filter
    };
    let rows = quota_series(
        "SELECT COALESCE(SUM(u.tx_bytes), 0), COALESCE(SUM(u.rx_bytes), 0) FROM usage u
         JOIN series s ON s.id = u.series
         WHERE u.period = ?1 AND u.start = ?2 AND s.dimension = 'label'",
        start,
    );
    let (mut tx, mut rx): (i64, i64) =
        connection.query_row(&rows.sql, rusqlite::params_from_iter(rows.values), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    if let Some((span, index)) = spans::locate(quota.period, start) {
        let packed = quota_series(
            "SELECT u.payload FROM usage_span u JOIN series s ON s.id = u.series
             WHERE u.period = ?1 AND u.span = ?2 AND s.dimension = 'label'",
            span,
        );
        let mut statement = connection.prepare(&packed.sql)?;
        let mut found = statement.query(rusqlite::params_from_iter(packed.values))?;
        while let Some(row) = found.next()? {
            spans::decode(row.get_ref(0)?.as_bytes()?, |at, [span_tx, span_rx]| {
                if at == index {
                    tx = tx.wrapping_add(span_tx);
                    rx = rx.wrapping_add(span_rx);
                }
            })
            .map_err(store::damaged)?;
        }
    }
    // A relabel can leave a label's bucket below zero for a moment; no use is less than none.
    let [tx, rx] = [tx, rx].map(|bytes| u64::try_from(bytes).unwrap_or(0));
    Ok(match quota.direction {
        Direction::Tx => tx,
        Direction::Rx => rx,
        Direction::Both => tx.saturating_add(rx),
    })
}

/// Evaluates every quota at `now` on the recording's `connection` (inside its transaction)
/// and keeps the thresholds newly crossed; returns them, warn before limit.
pub fn evaluate(
    connection: &Connection,
    now: i64,
    billing_day: u8,
    quotas: &Quotas,
) -> rusqlite::Result<Vec<Crossing>> {
    if quotas.quotas.is_empty() {
        return Ok(Vec::new());
    }
    let mut fire = connection.prepare_cached(
        "INSERT OR IGNORE INTO quota_fired (quota, period_start, threshold, fired_at, used_bytes)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut crossings = Vec::new();
    for quota in &quotas.quotas {
        let start = calendar::bucket_start(quota.period, now, billing_day);
        let used = used(connection, quota, start, &quotas.metered_globs)?;
        for (threshold, reached) in [
            (QuotaThreshold::Warn, reached_warn(quota, used)),
            (QuotaThreshold::Limit, used >= quota.limit),
        ] {
            if reached
                && fire.execute(params![
                    quota.text,
                    start,
                    threshold.name(),
                    now,
                    store::stored(used)
                ])? == 1
            {
                crossings.push(Crossing {
                    quota: quota.clone(),
                    threshold,
                    period_start: start,
                    period_end: calendar::bucket_end(quota.period, start, billing_day),
                    used,
                });
            }
        }
    }
    connection.execute(
        "DELETE FROM quota_fired WHERE period_start < ?1",
        [now.saturating_sub(KEEP_FIRED_SECONDS)],
    )?;
    Ok(crossings)
}

/// Each quota's use of its period at `now`, read on `connection`.
pub fn uses(
    connection: &Connection,
    now: i64,
    billing_day: u8,
    quotas: &Quotas,
) -> rusqlite::Result<Vec<Use>> {
    let has_table: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'quota_fired'",
        [],
        |row| row.get(0),
    )?;
    quotas
        .quotas
        .iter()
        .map(|quota| {
            let period_start = calendar::bucket_start(quota.period, now, billing_day);
            let last_fired = if has_table {
                connection
                    .query_row(
                        "SELECT threshold, period_start, fired_at FROM quota_fired WHERE quota = ?1
                         ORDER BY fired_at DESC, threshold = 'limit' DESC LIMIT 1",
                        [&quota.text],
                        |row| {
                            let threshold: String = row.get(0)?;
                            Ok((threshold, row.get(1)?, row.get(2)?))
                        },
                    )
                    .optional()?
                    .and_then(|(threshold, start, at)| {
                        QuotaThreshold::from_name(&threshold)
                            .map(|threshold| (threshold, start, at))
                    })
            } else {
                None
            };
            Ok(Use {
                period_start,
                period_end: calendar::bucket_end(quota.period, period_start, billing_day),
                used: used(connection, quota, period_start, &quotas.metered_globs)?,
                last_fired,
            })
        })
        .collect()
}
