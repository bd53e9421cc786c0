//! Reading the buckets a `history` request selects: the `usage` rows of spans still open and
//! the `usage_span` rows of those that ended ([`super::spans`]), summed per bucket and key.
//!
//! Both tables are read in the order of their keys, which begin (period, start) and (period,
//! span): span by span, so a span's sums fit a small dense array of (bucket, key) and SQLite
//! never sorts. Three years of day buckets of 1,000 labels are 35,000 span rows, not 1.1
//! million bucket rows (docs/benchmarks.md, "The usage history").
use std::collections::HashMap;

use rusqlite::{params, params_from_iter, types::Value, Connection};
use sockstats_common::protocol::Period;

use super::{filter::Filter, spans, store};

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

/// One bucket of an answer: its start and (key index, tx, rx) in key order.
pub type Bucket = (i64, Vec<(usize, i64, i64)>);

/// Open rows: (start, key index, tx, rx), oldest first.
type OpenRows = std::iter::Peekable<std::vec::IntoIter<(i64, usize, i64, i64)>>;

/// Payload sums per bucket and key: what a query answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The keys (or interfaces, or destinations) summed under, sorted.
    pub keys: Vec<String>,
    /// Buckets oldest first: the start and, in key order, (index into `keys`, tx, rx) of every
    /// key whose sums are not both zero. Buckets with none are left out.
    pub buckets: Vec<Bucket>,
}

impl Answer {
    /// Every (start, key, tx, rx), oldest first.
    #[must_use]
    pub fn rows(&self) -> Vec<Row> {
        self.buckets
            .iter()
            .flat_map(|(start, sums)| {
                sums.iter()
                    .map(|&(key, tx, rx)| (*start, self.keys[key].clone(), tx, rx))
            })
            .collect()
    }
}

/// What a query sums under, known before its buckets are read.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    /// The keys (or interfaces, or destinations) summed under, sorted.
    pub keys: Vec<String>,
    /// The series selected, by id, with the index of the key each is summed under.
    groups: HashMap<i64, usize>,
}

/// The keys `selection` sums under and the series it reads.
pub fn prepare(
    connection: &Connection,
    selection: &Selection<'_>,
) -> Result<Prepared, rusqlite::Error> {
    let (keys, groups) = selected_series(connection, selection)?;
    Ok(Prepared { keys, groups })
}

/// Gives `each` the buckets of `selection` that start in [since, until), oldest first, as
/// they are read: its start and, in key order, (index into `prepared.keys`, tx, rx) of every
/// key whose sums are not both zero. Buckets with none are left out.
pub fn each_bucket(
    connection: &Connection,
    selection: &Selection<'_>,
    prepared: &Prepared,
    mut each: impl FnMut(Bucket),
) -> Result<(), rusqlite::Error> {
    let groups = &prepared.groups;
    if groups.is_empty() {
        return Ok(());
    }
    let since = selection.since.unwrap_or(i64::MIN);
    let until = selection.until.unwrap_or(i64::MAX);
    let period = selection.period;
    let window = Window {
        period,
        since,
        until,
    };
    let open = open_rows(connection, selection, groups)?;
    let mut open = open.into_iter().peekable();
    let span_length = spans::buckets_per_span(period)
        .map_or(1, |count| usize::try_from(count).expect("a small count"));
    let mut sums = SpanSums::new(span_length, prepared.keys.len());

    if let Some(bucket) = spans::bucket_seconds(period) {
        // Spans that end after `since`: their first bucket starts after since − span.
        let first_span =
            since.saturating_sub(bucket * (spans::buckets_per_span(period).expect("packed") - 1));
        // Every series of the period is read and those not selected skipped: cheaper than
        // SQLite testing each row against a list of ids (which cannot narrow the key range).
        let mut statement = connection.prepare(
            "SELECT span, series, payload FROM usage_span
             WHERE period = ?1 AND span >= ?2 AND span < ?3
             ORDER BY span",
        )?;
        let mut rows = statement.query(params![period.name(), first_span, until])?;
        let mut current = None;
        while let Some(row) = rows.next()? {
            let span: i64 = row.get(0)?;
            if current != Some(span) {
                if let Some(ended) = current {
                    add_open_rows(&mut open, &mut sums, period, ended);
                    sums.flush(window, ended, &mut each);
                }
                // Open rows of spans before this one that have no span row.
                while let Some(&(start, ..)) = open.peek() {
                    let (open_span, _) = spans::locate(period, start).expect("packed");
                    if open_span >= span {
                        break;
                    }
                    add_open_rows(&mut open, &mut sums, period, open_span);
                    sums.flush(window, open_span, &mut each);
                }
                current = Some(span);
            }
            let Some(&group) = groups.get(&row.get(1)?) else {
                continue;
            };
            let payload = row.get_ref(2)?.as_bytes()?;
            spans::decode(payload, |index, [tx, rx]| sums.add(index, group, tx, rx))
                .map_err(store::damaged)?;
            if sums.overflowed {
                return Err(store::damaged(spans::Malformed { at: 0 }));
            }
        }
        if let Some(ended) = current {
            add_open_rows(&mut open, &mut sums, period, ended);
            sums.flush(window, ended, &mut each);
        }
    }
    // Open rows after the last span row (or of months, each bucket its own "span").
    while let Some(&(start, ..)) = open.peek() {
        let span = spans::locate(period, start).map_or(start, |(span, _)| span);
        add_open_rows(&mut open, &mut sums, period, span);
        sums.flush(window, span, &mut each);
    }
    Ok(())
}

/// The buckets a query answers: of `period`, starting in [since, until).
#[derive(Debug, Clone, Copy)]
struct Window {
    period: Period,
    since: i64,
    until: i64,
}

/// The `usage` rows of the selection's series in [since, until), oldest first.
fn open_rows(
    connection: &Connection,
    selection: &Selection<'_>,
    groups: &HashMap<i64, usize>,
) -> Result<Vec<(i64, usize, i64, i64)>, rusqlite::Error> {
    // Ids are the file's own integers: written into the statement, they make the selection
    // an index SQLite builds once per query.
    let mut ids: Vec<i64> = groups.keys().copied().collect();
    ids.sort_unstable();
    let ids = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let mut open = Vec::new();
    let mut statement = connection.prepare(&format!(
        "SELECT start, series, tx_bytes, rx_bytes FROM usage
         WHERE period = ?1 AND start >= ?2 AND start < ?3 AND series IN ({ids})
         ORDER BY start"
    ))?;
    let mut rows = statement.query(params![
        selection.period.name(),
        selection.since.unwrap_or(i64::MIN),
        selection.until.unwrap_or(i64::MAX)
    ])?;
    while let Some(row) = rows.next()? {
        open.push((row.get(0)?, groups[&row.get(1)?], row.get(2)?, row.get(3)?));
    }
    Ok(open)
}

/// Adds the open rows of span `span` (they come first in `open`).
fn add_open_rows(open: &mut OpenRows, sums: &mut SpanSums, period: Period, span: i64) {
    while let Some(&(start, group, tx, rx)) = open.peek() {
        let (row_span, index) = spans::locate(period, start).unwrap_or((start, 0));
        if row_span != span {
            break;
        }
        sums.add(index, group, tx, rx);
        open.next();
    }
}

/// The sums of one span: a (bucket index × key) array and the cells used.
struct SpanSums {
    length: usize,
    keys: usize,
    cells: Vec<(i64, i64)>,
    used: Vec<bool>,
    touched: Vec<usize>,
    /// A span row held a bucket past the span's length (a damaged file).
    overflowed: bool,
}

impl SpanSums {
    fn new(length: usize, keys: usize) -> Self {
        Self {
            length,
            keys,
            cells: vec![(0, 0); length * keys],
            used: vec![false; length * keys],
            touched: Vec::new(),
            overflowed: false,
        }
    }

    fn add(&mut self, index: usize, key: usize, tx: i64, rx: i64) {
        if index >= self.length {
            self.overflowed = true;
            return;
        }
        let cell = index * self.keys + key;
        if !self.used[cell] {
            self.used[cell] = true;
            self.touched.push(cell);
        }
        let sums = &mut self.cells[cell];
        // The u64 bit patterns the table stores, added as u64s are (modulo 2^64).
        sums.0 = sums.0.wrapping_add(tx);
        sums.1 = sums.1.wrapping_add(rx);
    }

    /// Gives `each` the span's buckets in the window, oldest first, and empties the span.
    fn flush(&mut self, window: Window, span: i64, each: &mut impl FnMut(Bucket)) {
        let Window {
            period,
            since,
            until,
        } = window;
        // Cells in order: sorting what was touched, unless most of the span was anyway.
        if self.touched.len() * 8 < self.cells.len() {
            self.touched.sort_unstable();
        } else {
            self.touched.clear();
            self.touched
                .extend((0..self.cells.len()).filter(|&cell| self.used[cell]));
        }
        let mut bucket: Option<Bucket> = None;
        for &cell in &self.touched {
            let (index, key) = (cell / self.keys, cell % self.keys);
            let (tx, rx) = std::mem::take(&mut self.cells[cell]);
            self.used[cell] = false;
            let start = if spans::bucket_seconds(period).is_some() {
                spans::bucket_start(period, span, index)
            } else {
                span
            };
            if (tx, rx) == (0, 0) || start < since || start >= until {
                continue;
            }
            match &mut bucket {
                Some((last, sums)) if *last == start => sums.push((key, tx, rx)),
                _ => {
                    if let Some(ended) = bucket.take() {
                        each(ended);
                    }
                    bucket = Some((start, vec![(key, tx, rx)]));
                }
            }
        }
        if let Some(last) = bucket {
            each(last);
        }
        self.touched.clear();
    }
}

/// The keys `selection` sums under, sorted, and the series it wants by id, with the index
/// of the key each is summed under.
fn selected_series(
    connection: &Connection,
    selection: &Selection<'_>,
) -> Result<(Vec<String>, HashMap<i64, usize>), rusqlite::Error> {
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
    let series: Vec<(i64, String)> = statement
        .query_map(params_from_iter(filter.values), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut keys: Vec<String> = series.iter().map(|(_, key)| key.clone()).collect();
    keys.sort_unstable();
    keys.dedup();
    let index: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(index, key)| (key.as_str(), index))
        .collect();
    let groups = series
        .iter()
        .map(|(id, key)| (*id, index[key.as_str()]))
        .collect();
    Ok((keys, groups))
}
