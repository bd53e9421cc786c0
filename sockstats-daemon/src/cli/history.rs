//! `sockstats history` and `sockstats top`: times on the command line, and the reply as a
//! table per bucket with a bar per row (like vnstat's), as JSON or as CSV.
use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;
use sockstats_common::protocol::{HistoryBucket, HistoryBy, HistoryCounts, HistoryReply, Period};

use super::format::{human_bytes, table};

/// Width of the longest bar.
const BAR_WIDTH: u64 = 30;

/// How far back `history` looks when `--since` is not given, per period: 2 hours of 5-minute
/// buckets, a day of hours, 30 days, 12 months (vnstat's views).
#[must_use]
pub const fn default_since_seconds(period: Period) -> i64 {
    match period {
        Period::FiveMinutes => 2 * 3600,
        Period::Hour => 24 * 3600,
        Period::Day => 30 * 86_400,
        Period::Month => 365 * 86_400,
    }
}

/// The bucket length `top` sums over a window of `seconds`: the finest whose default retention
/// still covers it (5 minutes up to 2 days, hours up to 90 days, days beyond).
#[must_use]
pub const fn top_period(seconds: i64) -> Period {
    if seconds <= 2 * 86_400 {
        Period::FiveMinutes
    } else if seconds <= 90 * 86_400 {
        Period::Hour
    } else {
        Period::Day
    }
}

/// A time of the command line as Unix seconds: `now`, a duration back from `now` (`24h`,
/// `7d`, `90min`), a date (`2026-12-01`, 00:00 UTC) or an RFC 3339 time
/// (`2026-12-01T12:00:00Z`, `2026-12-01 12:00:00`, UTC).
pub fn parse_time(text: &str, now: i64) -> Result<i64, String> {
    if text == "now" {
        return Ok(now);
    }
    if let Ok(back) = humantime::parse_duration(text) {
        return Ok(now.saturating_sub(i64::try_from(back.as_secs()).unwrap_or(i64::MAX)));
    }
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_secs()).ok())
        .ok_or_else(|| {
            format!("{text:?} is not a time: write a duration back from now (24h, 7d), a date (2026-12-01) or a UTC time (2026-12-01T12:00:00Z)")
        })
}

/// What `history --json` prints: `{"period": …, "buckets": [{"start", "end", "stats"}]}`, in
/// that order.
#[derive(Debug, Serialize)]
pub struct HistoryJson<'a> {
    pub period: Period,
    pub buckets: &'a [HistoryBucket],
}

#[must_use]
pub fn history_json(reply: &HistoryReply) -> HistoryJson<'_> {
    HistoryJson {
        period: reply.period,
        buckets: &reply.buckets,
    }
}

/// One line per bucket and key: `start,end,key,tx_bytes,rx_bytes`.
#[must_use]
pub fn history_csv(reply: &HistoryReply) -> String {
    let mut out = format!("start,end,{},tx_bytes,rx_bytes\n", reply.by.name());
    for bucket in &reply.buckets {
        for (key, counts) in sorted(&bucket.stats) {
            let _ = writeln!(
                out,
                "{},{},{},{},{}",
                bucket.start,
                bucket.end,
                csv_field(key),
                counts.tx_bytes,
                counts.rx_bytes
            );
        }
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn total(counts: &HistoryCounts) -> i64 {
    counts.tx_bytes.saturating_add(counts.rx_bytes)
}

/// Keys by total, largest first (then by name).
fn sorted(stats: &BTreeMap<String, HistoryCounts>) -> Vec<(&String, &HistoryCounts)> {
    let mut rows: Vec<_> = stats.iter().collect();
    rows.sort_by(|a, b| total(b.1).cmp(&total(a.1)).then(a.0.cmp(b.0)));
    rows
}

/// Bytes as `get` shows them; below zero (a relabel moved bytes away) with a minus.
fn signed_bytes(bytes: i64, exact: bool) -> String {
    let magnitude = bytes.unsigned_abs();
    let shown = if exact {
        magnitude.to_string()
    } else {
        human_bytes(magnitude)
    };
    if bytes < 0 {
        format!("-{shown}")
    } else {
        shown
    }
}

/// `rrrrtt`: a bar as long as the row's share of `largest`, received bytes as `r`, sent as `t`.
fn bar(counts: &HistoryCounts, largest: u64) -> String {
    let rx = u64::try_from(counts.rx_bytes).unwrap_or(0);
    let tx = u64::try_from(counts.tx_bytes).unwrap_or(0);
    if largest == 0 {
        return String::new();
    }
    let scale = |bytes: u64| {
        usize::try_from(u128::from(bytes) * u128::from(BAR_WIDTH) / u128::from(largest))
            .unwrap_or(0)
    };
    let width = scale(rx + tx).max(usize::from(rx + tx > 0));
    // The received share of the bar, rounded to the nearest character.
    let rx_width = usize::try_from(
        (u128::from(rx) * 2 * width as u128 + u128::from(rx + tx))
            / (2 * u128::from(rx + tx).max(1)),
    )
    .unwrap_or(width)
    .min(width);
    format!("{}{}", "r".repeat(rx_width), "t".repeat(width - rx_width))
}

/// What a bucket is called in the table: `2026-12-02 13:00–14:00`, `2026-12-02`,
/// `2026-11-15 – 2026-12-14`.
fn bucket_title(period: Period, start: &str, end: &str) -> String {
    let date = |time: &str| time.get(..10).unwrap_or(time).to_owned();
    let clock = |time: &str| time.get(11..16).unwrap_or(time).to_owned();
    match period {
        Period::FiveMinutes | Period::Hour => {
            format!("{} {}–{} UTC", date(start), clock(start), clock(end))
        }
        Period::Day => format!("{} UTC", date(start)),
        Period::Month => {
            let last_day = humantime::parse_rfc3339(end).ok().map_or_else(
                || date(end),
                |end| {
                    humantime::format_rfc3339_seconds(end - std::time::Duration::from_secs(86_400))
                        .to_string()
                        .get(..10)
                        .unwrap_or_default()
                        .to_owned()
                },
            );
            format!("{} – {last_day}", date(start))
        }
    }
}

/// The `sockstats history` text: per bucket, its rows largest first with a bar each (scaled to
/// the largest row of the whole answer).
#[must_use]
pub fn history_text(reply: &HistoryReply, exact: bool) -> String {
    let largest = reply
        .buckets
        .iter()
        .flat_map(|bucket| bucket.stats.values())
        .map(|counts| u64::try_from(total(counts)).unwrap_or(0))
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    if reply.buckets.is_empty() {
        out.push_str("no recorded bytes in this window\n");
    }
    let key = reply.by.name().to_uppercase();
    for bucket in &reply.buckets {
        let _ = writeln!(
            out,
            "{}",
            bucket_title(reply.period, &bucket.start, &bucket.end)
        );
        let rows = sorted(&bucket.stats)
            .into_iter()
            .map(|(name, counts)| row(name, counts, largest, exact))
            .collect();
        out.push_str(&table_with_bars(&key, rows));
        out.push('\n');
    }
    out.push_str(&recorded_line(reply.recorded_until.as_deref()));
    out
}

/// `table` of `rows` (name, tx, rx, total) with each row's bar after it: the last column is
/// right-aligned, so every line is as wide and the bars start in one column.
fn table_with_bars(key: &str, rows: Vec<(Vec<String>, String)>) -> String {
    let (cells, bars): (Vec<Vec<String>>, Vec<String>) = rows.into_iter().unzip();
    let rendered = table(&[key, "TX", "RX", "TOTAL"], 1, &cells);
    let mut out = String::new();
    let mut lines = rendered.lines();
    if let Some(header) = lines.next() {
        let _ = writeln!(out, "{header}");
    }
    for (line, bar) in lines.zip(bars) {
        let _ = writeln!(out, "{line}  {bar}");
    }
    out
}

fn row(name: &str, counts: &HistoryCounts, largest: u64, exact: bool) -> (Vec<String>, String) {
    (
        vec![
            name.to_owned(),
            signed_bytes(counts.tx_bytes, exact),
            signed_bytes(counts.rx_bytes, exact),
            signed_bytes(total(counts), exact),
        ],
        bar(counts, largest),
    )
}

fn recorded_line(recorded_until: Option<&str>) -> String {
    match recorded_until {
        Some(time) => format!("recorded until {time}; bytes moved since are in no bucket yet\n"),
        None => "nothing recorded yet\n".to_owned(),
    }
}

/// The sums of every bucket of `reply` per key.
#[must_use]
pub fn top_totals(reply: &HistoryReply) -> BTreeMap<String, HistoryCounts> {
    let mut totals: BTreeMap<String, HistoryCounts> = BTreeMap::new();
    for bucket in &reply.buckets {
        for (key, counts) in &bucket.stats {
            let sum = totals.entry(key.clone()).or_default();
            sum.tx_bytes = sum.tx_bytes.saturating_add(counts.tx_bytes);
            sum.rx_bytes = sum.rx_bytes.saturating_add(counts.rx_bytes);
        }
    }
    totals
}

/// What `top --json` prints: `{"since", "until", "by", "stats": {"<key>": {"tx_bytes",
/// "rx_bytes"}}}`, `since`/`until` the bounds of the buckets summed (`null` without any).
#[derive(Debug, Serialize)]
pub struct TopJson {
    pub since: Option<String>,
    pub until: Option<String>,
    pub by: HistoryBy,
    pub stats: BTreeMap<String, HistoryCounts>,
}

#[must_use]
pub fn top_json(reply: &HistoryReply) -> TopJson {
    TopJson {
        since: reply.buckets.first().map(|bucket| bucket.start.clone()),
        until: reply.buckets.last().map(|bucket| bucket.end.clone()),
        by: reply.by,
        stats: top_totals(reply),
    }
}

/// The `sockstats top` table: keys by their total over the window, largest first, with bars.
#[must_use]
pub fn top_text(reply: &HistoryReply, exact: bool) -> String {
    let totals = top_totals(reply);
    let largest = totals
        .values()
        .map(|counts| u64::try_from(total(counts)).unwrap_or(0))
        .max()
        .unwrap_or(0);
    let mut out = match (reply.buckets.first(), reply.buckets.last()) {
        (Some(first), Some(last)) => format!("{} – {}\n", first.start, last.end),
        _ => "no recorded bytes in this window\n".to_owned(),
    };
    let rows: Vec<_> = sorted(&totals)
        .into_iter()
        .map(|(name, counts)| row(name, counts, largest, exact))
        .collect();
    if !rows.is_empty() {
        out.push_str(&table_with_bars(&reply.by.name().to_uppercase(), rows));
    }
    out.push_str(&recorded_line(reply.recorded_until.as_deref()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(tx: i64, rx: i64) -> HistoryCounts {
        HistoryCounts {
            tx_bytes: tx,
            rx_bytes: rx,
        }
    }

    fn reply() -> HistoryReply {
        HistoryReply {
            period: Period::Hour,
            by: HistoryBy::Label,
            buckets: vec![
                HistoryBucket {
                    start: "2026-12-02T13:00:00Z".to_owned(),
                    end: "2026-12-02T14:00:00Z".to_owned(),
                    stats: BTreeMap::from([
                        ("dns".to_owned(), counts(1024, 1024)),
                        ("web".to_owned(), counts(10 * 1024, 20 * 1024)),
                    ]),
                },
                HistoryBucket {
                    start: "2026-12-02T14:00:00Z".to_owned(),
                    end: "2026-12-02T15:00:00Z".to_owned(),
                    stats: BTreeMap::from([("web".to_owned(), counts(-5, 7))]),
                },
            ],
            recorded_until: Some("2026-12-02T14:30:00Z".to_owned()),
        }
    }

    #[test]
    fn the_table_has_a_block_per_bucket_largest_first_with_bars() {
        let text = history_text(&reply(), false);
        assert_eq!(
            text,
            "2026-12-02 13:00–14:00 UTC\n\
             LABEL        TX        RX     TOTAL\n\
             web    10.0 KiB  20.0 KiB  30.0 KiB  rrrrrrrrrrrrrrrrrrrrtttttttttt\n\
             dns     1.0 KiB   1.0 KiB   2.0 KiB  rt\n\
             \n\
             2026-12-02 14:00–15:00 UTC\n\
             LABEL    TX   RX  TOTAL\n\
             web    -5 B  7 B    2 B  r\n\
             \n\
             recorded until 2026-12-02T14:30:00Z; bytes moved since are in no bucket yet\n"
        );
    }

    #[test]
    fn json_is_exactly_period_and_buckets() {
        let text = serde_json::to_string(&history_json(&reply())).unwrap();
        assert!(
            text.starts_with(r#"{"period":"hour","buckets":[{"start":"2026-12-02T13:00:00Z","end":"2026-12-02T14:00:00Z","stats":{"dns":{"tx_bytes":1024,"rx_bytes":1024},"#),
            "{text}"
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value.as_object().unwrap().len(), 2);
        assert_eq!(value["period"], "hour");
        assert_eq!(value["buckets"][0]["start"], "2026-12-02T13:00:00Z");
        assert_eq!(value["buckets"][0]["stats"]["web"]["rx_bytes"], 20 * 1024);
        assert_eq!(
            value["buckets"][0]["stats"]["web"]
                .as_object()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn csv_has_a_line_per_bucket_and_key() {
        assert_eq!(
            history_csv(&reply()),
            "start,end,label,tx_bytes,rx_bytes\n\
             2026-12-02T13:00:00Z,2026-12-02T14:00:00Z,web,10240,20480\n\
             2026-12-02T13:00:00Z,2026-12-02T14:00:00Z,dns,1024,1024\n\
             2026-12-02T14:00:00Z,2026-12-02T15:00:00Z,web,-5,7\n"
        );
    }

    #[test]
    fn top_sums_the_window() {
        let totals = top_totals(&reply());
        assert_eq!(totals["web"], counts(10 * 1024 - 5, 20 * 1024 + 7));
        assert_eq!(
            top_json(&reply()).until.as_deref(),
            Some("2026-12-02T15:00:00Z")
        );
        assert!(top_text(&reply(), true).contains("web    10235  20487  30722"));
    }

    #[test]
    fn times_are_durations_dates_or_rfc3339() {
        let now = 1_764_633_600 + 3600;
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(parse_time("1h", now), Ok(1_764_633_600));
        assert_eq!(parse_time("2025-12-02", now), Ok(1_764_633_600));
        assert_eq!(parse_time("2025-12-02T01:00:00Z", now), Ok(now));
        assert!(parse_time("yesterday-ish", now)
            .unwrap_err()
            .contains("is not a time"));
        assert_eq!(top_period(24 * 3600), Period::FiveMinutes);
        assert_eq!(top_period(30 * 86_400), Period::Hour);
        assert_eq!(top_period(400 * 86_400), Period::Day);
    }

    #[test]
    fn month_titles_name_the_last_day() {
        assert_eq!(
            bucket_title(
                Period::Month,
                "2026-11-15T00:00:00Z",
                "2026-12-15T00:00:00Z"
            ),
            "2026-11-15 – 2026-12-14"
        );
    }
}
