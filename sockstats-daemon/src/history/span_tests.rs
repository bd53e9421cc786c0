//! Packing ended spans ([`super::spans`]) changes where buckets are kept, never what they
//! hold: every bucket of every period stays exact through packing, a clock that goes back into
//! a packed span, and a quota of such a bucket; the `buckets` view shows the same; a span the
//! daemon never wrote is a damaged file.
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use rusqlite::Connection;
use sockstats_common::protocol::Period;

use super::{
    calendar::{self, days_from_civil},
    clock::FakeClock,
    query::{Group, Selection},
    store::{Sample, Series},
    History, HistoryError, FILE_NAME,
};
use crate::config::Config;

const DAY: i64 = 86_400;

/// (period, bucket start, key) → (tx, rx).
type Buckets = BTreeMap<(Period, i64, String), (i64, i64)>;

fn sample(source: &str, label: &str, destination: &str, tx: u64, rx: u64) -> Sample {
    Sample {
        source: source.to_owned(),
        counters: [tx, rx, tx * 2, rx * 2],
        series: vec![Series {
            dimension: "label",
            key: label.to_owned(),
            interface: "eth0".to_owned(),
            destination: destination.to_owned(),
        }],
    }
}

/// A history that keeps everything, at `start`.
fn keeping_everything(dir: &std::path::Path, clock: &FakeClock) -> History {
    let mut config = Config::default();
    for period in Period::ALL {
        config.retention.insert(period, None);
    }
    let (history, opened) = History::open(
        dir,
        &config,
        "boot-1".to_owned(),
        Duration::from_secs(60),
        Arc::new(clock.clone()),
    );
    opened.unwrap();
    history
}

/// Every bucket the history answers, by key or by destination.
fn answered(history: &History, group: Group) -> Buckets {
    let mut buckets = Buckets::new();
    for period in Period::ALL {
        let (answer, _) = history
            .query(&Selection {
                period,
                dimension: "label",
                group,
                ..Selection::default()
            })
            .unwrap();
        for (start, key, tx, rx) in answer.rows() {
            buckets.insert((period, start, key), (tx, rx));
        }
    }
    buckets
}

/// Every bucket the `buckets` view shows, by label, as a `sqlite3` user would sum them.
fn viewed(dir: &std::path::Path) -> Buckets {
    let connection = Connection::open(dir.join(FILE_NAME)).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT b.period, b.start, s.key, SUM(b.tx_bytes), SUM(b.rx_bytes), SUM(b.wire_tx_bytes)
             FROM buckets b JOIN series s ON s.id = b.series
             GROUP BY b.period, b.start, s.key",
        )
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            let period: String = row.get(0)?;
            let tx: i64 = row.get(3)?;
            let wire_tx: i64 = row.get(5)?;
            assert_eq!(wire_tx, tx * 2, "the view pairs each bucket's wire bytes");
            Ok((
                (
                    Period::from_name(&period).unwrap(),
                    row.get(1)?,
                    row.get(2)?,
                ),
                (tx, row.get(4)?),
            ))
        })
        .unwrap();
    rows.map(Result::unwrap)
        .filter(|(_, sums)| *sums != (0, 0))
        .collect()
}

fn count(dir: &std::path::Path, sql: &str) -> i64 {
    Connection::open(dir.join(FILE_NAME))
        .unwrap()
        .query_row(sql, [], |row| row.get(0))
        .unwrap()
}

#[test]
fn seventy_days_of_recordings_pack_into_spans_and_every_bucket_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at(days_from_civil(2026, 10, 1) * DAY + 17);
    let history = keeping_everything(dir.path(), &clock);
    history.record(&[]).unwrap();
    let mut expected = Buckets::new();
    let mut by_destination = Buckets::new();
    let (mut web, mut dns) = ([0u64; 2], [0u64; 2]);
    for step in 0u64..(70 * DAY as u64 / (23 * 60)) {
        clock.advance(23 * 60);
        let now = super::clock::Clock::now(&clock);
        let web_delta = [1_000_003 * (step % 7), 11 * (step % 3)];
        let dns_delta = [step % 5, 300];
        for (totals, delta) in [(&mut web, web_delta), (&mut dns, dns_delta)] {
            totals[0] += delta[0];
            totals[1] += delta[1];
        }
        history
            .record(&[
                sample("a1", "web", "internet", web[0], web[1]),
                sample("a2", "dns", "private", dns[0], dns[1]),
            ])
            .unwrap();
        for period in Period::ALL {
            let start = calendar::bucket_start(period, now, 1);
            for (key, destination, delta) in [
                ("web", "internet", web_delta),
                ("dns", "private", dns_delta),
            ] {
                if delta == [0, 0] {
                    continue;
                }
                for (map, name) in [(&mut expected, key), (&mut by_destination, destination)] {
                    let sums = map.entry((period, start, name.to_owned())).or_default();
                    sums.0 += i64::try_from(delta[0]).unwrap();
                    sums.1 += i64::try_from(delta[1]).unwrap();
                }
            }
        }
    }
    expected.retain(|_, sums| *sums != (0, 0));
    by_destination.retain(|_, sums| *sums != (0, 0));
    assert_eq!(answered(&history, Group::Key), expected);
    assert_eq!(answered(&history, Group::Destination), by_destination);
    assert_eq!(
        viewed(dir.path()),
        expected,
        "sqlite3 sees the same through the view"
    );
    // Packed: only the spans still open have rows of their own (an hour of 5-minute buckets,
    // a day of hours, 32 days of days, per series), months never are.
    let open = |period: &str| {
        count(
            dir.path(),
            &format!("SELECT count(*) FROM usage WHERE period = '{period}'"),
        )
    };
    assert!(open("5min") <= 2 * 12, "{}", open("5min"));
    assert!(open("hour") <= 2 * 24, "{}", open("hour"));
    assert!(open("day") <= 2 * 32, "{}", open("day"));
    assert_eq!(open("month"), 2 * 3);
    assert!(
        count(
            dir.path(),
            "SELECT count(*) FROM usage_span WHERE period = 'day'"
        ) >= 2
    );

    // A window cuts through spans exactly at its bounds.
    let since = days_from_civil(2026, 10, 20) * DAY;
    let until = days_from_civil(2026, 11, 25) * DAY + 5 * 3600;
    for period in [Period::FiveMinutes, Period::Hour, Period::Day] {
        let (answer, _) = history
            .query(&Selection {
                period,
                dimension: "label",
                keys: &["web".to_owned()],
                since: Some(since),
                until: Some(until),
                ..Selection::default()
            })
            .unwrap();
        let window: Buckets = expected
            .iter()
            .filter(|((p, start, key), _)| {
                *p == period && *start >= since && *start < until && key == "web"
            })
            .map(|(bucket, sums)| (bucket.clone(), *sums))
            .collect();
        let got: Buckets = answer
            .rows()
            .into_iter()
            .map(|(start, key, tx, rx)| ((period, start, key), (tx, rx)))
            .collect();
        assert_eq!(got, window, "{period:?}");
    }
}

/// A history that starts at `start` with label `web` at zero, records its totals `first` a
/// minute on, then `later` 40 days on: the first day's span has ended and is packed.
fn a_packed_first_day(
    start: i64,
    first: [u64; 2],
    later: [u64; 2],
) -> (tempfile::TempDir, FakeClock, History) {
    let dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::at(start);
    let history = keeping_everything(dir.path(), &clock);
    for (advance, [tx, rx]) in [(0, [0, 0]), (60, first), (40 * DAY, later)] {
        clock.advance(advance);
        history
            .record(&[sample("a1", "web", "internet", tx, rx)])
            .unwrap();
    }
    (dir, clock, history)
}

#[test]
fn a_clock_that_goes_back_into_a_packed_span_adds_to_it_exactly() {
    let first_day = days_from_civil(2026, 10, 1) * DAY;
    let (dir, clock, history) = a_packed_first_day(first_day + 3600, [100, 1], [150, 1]);
    let packed = "SELECT count(*) FROM usage WHERE period = 'day' AND start = ";
    assert_eq!(count(dir.path(), &format!("{packed}{first_day}")), 0);
    // Back to the first day: the bytes go into its bucket, beside the packed ones.
    clock.set(first_day + 7200);
    history
        .record(&[sample("a1", "web", "internet", 157, 3)])
        .unwrap();
    let day_of = |history: &History| {
        answered(history, Group::Key)
            .get(&(Period::Day, first_day, "web".to_owned()))
            .copied()
    };
    assert_eq!(day_of(&history), Some((107, 3)));
    assert_eq!(
        viewed(dir.path())[&(Period::Day, first_day, "web".to_owned())],
        (107, 3)
    );
    let quota = crate::config::Quota {
        text: "web day 1KiB".to_owned(),
        label: Some("web".to_owned()),
        interface: None,
        metered: false,
        period: Period::Day,
        limit: 1024,
        warn_percent: 80,
        direction: crate::config::quota::Direction::Both,
    };
    let reader = Connection::open(dir.path().join(FILE_NAME)).unwrap();
    assert_eq!(
        super::quota::used(&reader, &quota, first_day, &[]).unwrap(),
        110,
        "a quota counts the packed bucket and the bytes added to it"
    );
    // Forward again: the new row is packed into the span's row, still exact.
    clock.set(first_day + 41 * DAY);
    history
        .record(&[sample("a1", "web", "internet", 157, 3)])
        .unwrap();
    assert_eq!(count(dir.path(), &format!("{packed}{first_day}")), 0);
    assert_eq!(day_of(&history), Some((107, 3)));
    let months = answered(&history, Group::Key);
    assert_eq!(
        months[&(Period::Month, first_day, "web".to_owned())],
        (107, 3)
    );
    let november = days_from_civil(2026, 11, 1) * DAY;
    assert_eq!(
        months[&(Period::Month, november, "web".to_owned())],
        (50, 0)
    );
}

#[test]
fn a_span_the_daemon_never_wrote_is_a_damaged_file() {
    let first_day = days_from_civil(2026, 10, 1) * DAY;
    let (dir, _clock, history) = a_packed_first_day(first_day, [5, 0], [6, 0]);
    Connection::open(dir.path().join(FILE_NAME))
        .unwrap()
        .execute(
            "UPDATE usage_span SET payload = '[[1,2' WHERE period = 'day'",
            [],
        )
        .unwrap();
    let selection = Selection {
        period: Period::Day,
        dimension: "label",
        ..Selection::default()
    };
    let error = history.query(&selection).unwrap_err();
    assert!(matches!(error, HistoryError::Damaged { .. }), "{error}");
    // Streamed, the consumer sees the buckets read before the damage, and its result is not
    // what the query answers.
    let mut consumed = false;
    let error = history
        .query_streamed(&selection, |_, _, buckets| {
            consumed = true;
            buckets.count()
        })
        .unwrap_err();
    assert!(consumed);
    assert!(matches!(error, HistoryError::Damaged { .. }), "{error}");
}
