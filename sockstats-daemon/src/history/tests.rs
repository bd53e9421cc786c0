//! The history over a fake clock: bucketing, exact rollups, retention, restarts, lost pins,
//! relabels, clock jumps, and files it cannot use.
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use sockstats_common::protocol::Period;

use super::{
    calendar::days_from_civil,
    clock::FakeClock,
    query::{Group, Row, Selection},
    store::{Sample, Series},
    History, HistoryError,
};
use crate::config::Config;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// 2026-12-02 00:00 UTC.
fn midnight() -> i64 {
    days_from_civil(2026, 12, 2) * DAY
}

pub(super) fn label(source: &str, label: &str, interface: &str, tx: u64, rx: u64) -> Sample {
    label_to(source, label, interface, "internet", tx, rx)
}

fn label_to(
    source: &str,
    label: &str,
    interface: &str,
    destination: &str,
    tx: u64,
    rx: u64,
) -> Sample {
    Sample {
        source: source.to_owned(),
        counters: [tx, rx, tx + 40, rx + 40],
        series: vec![Series {
            dimension: "label",
            key: label.to_owned(),
            interface: interface.to_owned(),
            destination: destination.to_owned(),
        }],
    }
}

struct Test {
    dir: tempfile::TempDir,
    clock: FakeClock,
    history: History,
}

/// The history in `dir` (recorded every minute), and how opening it went.
fn try_open(
    dir: &std::path::Path,
    clock: &FakeClock,
    config: &Config,
    epoch: &str,
) -> (History, Result<(), HistoryError>) {
    History::open(
        dir,
        config,
        epoch.to_owned(),
        Duration::from_secs(60),
        Arc::new(clock.clone()),
    )
}

fn open(dir: &std::path::Path, clock: &FakeClock, config: &Config, epoch: &str) -> History {
    let (history, opened) = try_open(dir, clock, config, epoch);
    opened.unwrap();
    history
}

impl Test {
    fn new() -> Self {
        Self::with_config(&Config::default())
    }

    fn with_config(config: &Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = FakeClock::at(midnight());
        let history = open(dir.path(), &clock, config, "boot-1");
        Self {
            dir,
            clock,
            history,
        }
    }

    fn reopen(&mut self, epoch: &str) {
        self.history = open(self.dir.path(), &self.clock, &Config::default(), epoch);
    }

    fn record(&self, samples: &[Sample]) {
        self.history.record(samples).unwrap();
    }

    /// (bucket start, tx) of every row of `period`.
    fn starts_and_tx(&self, period: Period) -> Vec<(i64, i64)> {
        self.rows(period)
            .into_iter()
            .map(|(start, _, tx, _)| (start, tx))
            .collect()
    }

    fn rows(&self, period: Period) -> Vec<Row> {
        self.history
            .query(&Selection {
                period,
                dimension: "label",
                ..Selection::default()
            })
            .unwrap()
            .0
            .rows()
    }

    /// Payload (tx, rx) per key over every bucket of `period`.
    fn sums(&self, period: Period) -> BTreeMap<String, (i64, i64)> {
        let mut sums = BTreeMap::new();
        for (_, key, tx, rx) in self.rows(period) {
            let sum: &mut (i64, i64) = sums.entry(key).or_default();
            sum.0 += tx;
            sum.1 += rx;
        }
        sums
    }
}

#[test]
fn a_new_file_starts_from_the_kernels_totals_then_records_deltas_in_every_period() {
    let test = Test::new();
    // Bytes moved before history began are not history.
    test.record(&[label("a1", "web", "eth0", 1000, 500)]);
    assert!(test.rows(Period::Hour).is_empty());
    test.clock.advance(61);
    let recorded = test
        .history
        .record(&[label("a1", "web", "eth0", 1300, 600)])
        .unwrap();
    assert_eq!(recorded.changed, 1);
    for period in Period::ALL {
        assert_eq!(
            test.rows(period),
            [(
                super::calendar::bucket_start(period, midnight(), 1),
                "web".to_owned(),
                300,
                100
            )],
            "{period:?}"
        );
    }
    let status = test.history.status();
    assert!(status.recording && status.error.is_none(), "{status:?}");
    assert_eq!(
        status.recorded_until.as_deref(),
        Some("2026-12-02T00:01:01Z")
    );
}

#[test]
fn a_day_is_the_sum_of_its_hours_and_its_five_minutes_to_the_byte() {
    let test = Test::new();
    test.record(&[]);
    let mut tx = 0u64;
    let mut rx = 0u64;
    // Two days of recordings every 7 minutes with uneven amounts on two labels.
    for step in 0..(2 * DAY / 420) {
        test.clock.advance(420);
        tx += 1_000_003 * u64::try_from(step % 13).unwrap();
        rx += 77 * u64::try_from(step % 5).unwrap();
        test.record(&[
            label("a1", "web", "eth0", tx, rx),
            label("a2", "dns", "eth0", rx, tx / 3),
        ]);
    }
    let per_start = |period| {
        let mut out: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
        for (start, key, tx, rx) in test.rows(period) {
            out.insert((start, key), (tx, rx));
        }
        out
    };
    let days = per_start(Period::Day);
    for (finer, length) in [(Period::Hour, HOUR), (Period::FiveMinutes, 300)] {
        let mut rolled: BTreeMap<(i64, String), (i64, i64)> = BTreeMap::new();
        for ((start, key), (tx, rx)) in per_start(finer) {
            assert_eq!(start % length, 0);
            let day = rolled
                .entry((start - start.rem_euclid(DAY), key))
                .or_default();
            day.0 += tx;
            day.1 += rx;
        }
        assert_eq!(rolled, days, "{finer:?}");
    }
    let sums = test.sums(Period::Month);
    assert_eq!(
        sums["web"],
        (i64::try_from(tx).unwrap(), i64::try_from(rx).unwrap())
    );
    assert_eq!(
        sums["dns"],
        (i64::try_from(rx).unwrap(), i64::try_from(tx / 3).unwrap())
    );
    assert_eq!(test.sums(Period::Day), sums);
    assert_eq!(test.sums(Period::Hour), sums);
}

#[test]
fn restarts_continue_from_the_saved_baseline_and_lost_pins_restart_it() {
    let mut test = Test::new();
    test.record(&[label("a1", "web", "eth0", 100, 0)]);
    test.clock.advance(60);
    test.record(&[label("a1", "web", "eth0", 150, 0)]);
    // The daemon restarts (same kernel counters): the bytes moved while it was down land in
    // the first bucket after it comes back, once.
    test.reopen("boot-1");
    test.clock.advance(3 * HOUR);
    test.record(&[label("a1", "web", "eth0", 400, 0)]);
    assert_eq!(test.sums(Period::Hour)["web"], (300, 0));
    assert_eq!(
        test.rows(Period::Hour).last().unwrap().0,
        midnight() + 3 * HOUR
    );
    // The pins were lost (a reboot, `--uninstall`): the kernel counts from zero again. What
    // was recorded stays, nothing negative is recorded, and the new totals count in full.
    test.reopen("boot-2");
    test.clock.advance(60);
    test.record(&[label("a9", "web", "eth0", 20, 5)]);
    assert_eq!(test.sums(Period::Day)["web"], (320, 5));
    test.clock.advance(60);
    test.record(&[label("a9", "web", "eth0", 25, 5)]);
    assert_eq!(test.sums(Period::Day)["web"], (325, 5));
}

#[test]
fn a_relabel_moves_recorded_bytes_so_each_label_sums_to_its_total() {
    let test = Test::new();
    test.record(&[]);
    test.clock.advance(60);
    test.record(&[label("a0", "unlabeled", "eth0", 500, 50)]);
    // A live socket with 200/20 of those bytes is labeled `web`: the kernel moves them.
    test.clock.advance(60);
    test.record(&[
        label("a0", "unlabeled", "eth0", 300, 30),
        label("a1", "web", "eth0", 200, 20),
    ]);
    let sums = test.sums(Period::Hour);
    assert_eq!(sums["unlabeled"], (300, 30));
    assert_eq!(sums["web"], (200, 20));
}

#[test]
fn the_clock_jumping_back_or_forward_neither_loses_nor_doubles_bytes() {
    let test = Test::new();
    test.record(&[label("a1", "web", "eth0", 0, 0)]);
    test.clock.advance(HOUR);
    test.record(&[label("a1", "web", "eth0", 10, 0)]);
    // Back by a day: the delta goes into the bucket of the time the clock says.
    test.clock.advance(-DAY);
    test.record(&[label("a1", "web", "eth0", 30, 0)]);
    // Forward by a week.
    test.clock.advance(8 * DAY);
    test.record(&[label("a1", "web", "eth0", 70, 0)]);
    assert_eq!(
        test.starts_and_tx(Period::Day),
        [
            (midnight() - DAY, 20),
            (midnight(), 10),
            (midnight() + 7 * DAY, 40)
        ]
    );
    assert_eq!(test.sums(Period::Hour)["web"], (70, 0));
    assert_eq!(test.sums(Period::Month)["web"], (70, 0));
    // A jump forward past a retention expires those buckets early (docs/history.md): the
    // 5-minute buckets of a week ago are gone, the longer ones keep every byte.
    assert_eq!(test.sums(Period::FiveMinutes)["web"], (40, 0));
}

#[test]
fn retention_deletes_old_buckets_per_period() {
    let mut config = Config::default();
    config
        .retention
        .insert(Period::Hour, Some(Duration::from_secs(2 * 86_400)));
    let test = Test::with_config(&config);
    test.record(&[label("a1", "web", "eth0", 0, 0)]);
    let mut total = 0;
    for _ in 0..(4 * 24) {
        test.clock.advance(HOUR);
        total += 10;
        test.record(&[label("a1", "web", "eth0", total, 0)]);
    }
    let now = test.clock.clone();
    let now = super::clock::Clock::now(&now);
    let fives = test.rows(Period::FiveMinutes);
    // Buckets that start at most 2 days ago: 48 hours and the one starting at the cut.
    assert_eq!(fives.len(), 49, "2 days of one 5-minute bucket an hour");
    assert!(fives.iter().all(|row| row.0 >= now - 2 * DAY));
    assert_eq!(test.rows(Period::Hour).len(), 49);
    assert_eq!(test.rows(Period::Day).len(), 5, "days are kept 3 years");
    assert_eq!(test.sums(Period::Day)["web"], (960, 0));
}

#[test]
fn billing_months_follow_the_billing_day() {
    let config = Config {
        billing_day: 15,
        ..Config::default()
    };
    let test = Test::with_config(&config);
    test.clock
        .set(days_from_civil(2026, 12, 14) * DAY + 23 * HOUR);
    test.record(&[label("a1", "web", "wwan0", 0, 0)]);
    test.clock.advance(30 * 60);
    test.record(&[label("a1", "web", "wwan0", 5, 0)]);
    test.clock.advance(60 * 60);
    test.record(&[label("a1", "web", "wwan0", 12, 0)]);
    assert_eq!(
        test.starts_and_tx(Period::Month),
        [
            (days_from_civil(2026, 11, 15) * DAY, 5),
            (days_from_civil(2026, 12, 15) * DAY, 7)
        ]
    );
}

#[test]
fn queries_filter_and_group_by_interface_and_owner() {
    let test = Test::new();
    let owner = |source: &str, uid: &str, cgroup: &str, tx: u64| Sample {
        source: source.to_owned(),
        counters: [tx, 0, 0, 0],
        series: vec![
            Series {
                dimension: "uid",
                key: uid.to_owned(),
                interface: String::new(),
                destination: "host".to_owned(),
            },
            Series {
                dimension: "cgroup",
                key: cgroup.to_owned(),
                interface: String::new(),
                destination: "host".to_owned(),
            },
        ],
    };
    test.record(&[]);
    test.clock.advance(60);
    test.record(&[
        label("a1", "web", "eth0", 10, 1),
        label("a2", "web", "wwan0", 20, 2),
        label("a3", "dns", "wwan0", 30, 3),
        owner("o1", "33", "/web.slice", 40),
        owner("o2", "33", "/other.slice", 5),
    ]);
    let select = |selection: Selection<'_>| test.history.query(&selection).unwrap().0.rows();
    let by_interface = select(Selection {
        period: Period::Day,
        dimension: "label",
        group: Group::Interface,
        ..Selection::default()
    });
    let keys: Vec<(String, i64)> = by_interface.into_iter().map(|r| (r.1, r.2)).collect();
    assert_eq!(keys, [("eth0".to_owned(), 10), ("wwan0".to_owned(), 50)]);
    let metered = select(Selection {
        period: Period::Day,
        dimension: "label",
        interface_globs: Some(vec!["ww*".to_owned()]),
        keys: &["web".to_owned()],
        ..Selection::default()
    });
    assert_eq!(metered.len(), 1);
    assert_eq!(metered[0].2, 20);
    let none_metered = select(Selection {
        period: Period::Day,
        dimension: "label",
        interface_globs: Some(Vec::new()),
        ..Selection::default()
    });
    assert!(none_metered.is_empty());
    let by_uid = select(Selection {
        period: Period::Hour,
        dimension: "uid",
        ..Selection::default()
    });
    assert_eq!(by_uid.len(), 1);
    assert_eq!(by_uid[0].2, 45);
    assert_eq!(
        select(Selection {
            period: Period::Hour,
            dimension: "cgroup",
            ..Selection::default()
        })
        .len(),
        2
    );
    let later = select(Selection {
        period: Period::Hour,
        dimension: "label",
        since: Some(midnight() + HOUR),
        ..Selection::default()
    });
    assert!(later.is_empty());
}

#[test]
fn reset_forgets_a_label_or_everything_and_never_records_old_bytes_again() {
    let test = Test::new();
    test.record(&[]);
    test.clock.advance(60);
    let samples = [
        label("a1", "web", "eth0", 10, 1),
        label("a2", "dns", "eth0", 7, 0),
    ];
    test.record(&samples);
    assert_eq!(test.history.reset(Some("web")).unwrap(), 4);
    assert_eq!(test.sums(Period::Hour).keys().collect::<Vec<_>>(), ["dns"]);
    test.clock.advance(60);
    test.record(&samples);
    assert!(!test.sums(Period::Hour).contains_key("web"));
    test.history.reset(None).unwrap();
    assert!(test.rows(Period::Month).is_empty());
}

#[test]
fn a_damaged_file_is_reported_and_left_alone_until_it_is_moved_away() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::FILE_NAME);
    let garbage = b"this is somebody's file, not a database\n".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let clock = FakeClock::at(midnight());
    let (history, opened) = try_open(dir.path(), &clock, &Config::default(), "boot-1");
    let error = opened.unwrap_err();
    assert!(matches!(error, HistoryError::Damaged { .. }), "{error}");
    assert!(error.to_string().contains("move it away"), "{error}");
    let failed = history
        .record(&[label("a1", "web", "eth0", 1, 1)])
        .unwrap_err();
    assert!(matches!(failed, HistoryError::Damaged { .. }), "{failed}");
    let status = history.status();
    assert!(!status.recording);
    assert!(status
        .error
        .unwrap()
        .contains("is damaged or not a SQLite database"));
    let queried = history
        .query(&Selection {
            period: Period::Hour,
            dimension: "label",
            ..Selection::default()
        })
        .unwrap_err();
    assert!(matches!(queried, HistoryError::Damaged { .. }), "{queried}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "never overwritten");
    // Moved away: the next recording starts a new history.
    std::fs::rename(&path, dir.path().join("history.sqlite.damaged")).unwrap();
    history.record(&[label("a1", "web", "eth0", 1, 1)]).unwrap();
    assert!(history.status().recording);
}

#[test]
fn a_file_of_another_schema_is_refused_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::FILE_NAME);
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TABLE meta (name TEXT, value TEXT); INSERT INTO meta VALUES ('schema', '99');",
        )
        .unwrap();
    drop(other);
    let (_, opened) = try_open(dir.path(), &FakeClock::at(0), &Config::default(), "boot-1");
    let error = opened.unwrap_err();
    assert!(
        error.to_string().contains(&format!(
            "has history schema \"99\", not {}",
            super::store::SCHEMA_VERSION
        )),
        "{error}"
    );
}

#[test]
fn a_locked_file_is_reported_and_recording_resumes_after() {
    let test = Test::new();
    test.record(&[label("a1", "web", "eth0", 0, 0)]);
    let other = rusqlite::Connection::open(test.history.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    test.clock.advance(60);
    let error = test
        .history
        .record(&[label("a1", "web", "eth0", 10, 0)])
        .unwrap_err();
    assert!(matches!(error, HistoryError::Locked { .. }), "{error}");
    assert!(test.history.status().error.unwrap().contains("is locked"));
    // Queries still answer while a writer holds the lock.
    assert!(test.rows(Period::Hour).is_empty());
    other.execute_batch("ROLLBACK").unwrap();
    test.clock.advance(60);
    test.record(&[label("a1", "web", "eth0", 10, 0)]);
    assert_eq!(test.sums(Period::Hour)["web"], (10, 0));
    assert!(test.history.status().recording);
}

#[test]
fn a_file_that_cannot_be_made_is_reported_as_unwritable() {
    let dir = tempfile::tempdir().unwrap();
    // The state "dir" is a file: SQLite cannot make the history in it (root or not).
    let not_a_dir = dir.path().join("state");
    std::fs::write(&not_a_dir, "a file").unwrap();
    let (history, opened) = try_open(&not_a_dir, &FakeClock::at(0), &Config::default(), "boot-1");
    let error = opened.unwrap_err();
    assert!(
        matches!(error, HistoryError::Unwritable { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("check the state dir's permissions"),
        "{error}"
    );
    assert!(history.record(&[]).is_err());
    assert_eq!(std::fs::read_to_string(&not_a_dir).unwrap(), "a file");
}

#[test]
fn queries_group_and_filter_by_destination() {
    let test = Test::new();
    test.record(&[]);
    test.clock.advance(60);
    test.record(&[
        label_to("a1", "web", "eth0", "internet", 10, 1),
        label_to("a2", "web", "eth0", "vpc", 20, 2),
        label_to("a3", "dns", "eth0", "internet", 30, 3),
        label_to("a4", "dns", "lo", "host", 4, 4),
    ]);
    let select = |selection: Selection<'_>| test.history.query(&selection).unwrap().0.rows();
    let by_destination: Vec<(String, i64, i64)> = select(Selection {
        period: Period::Day,
        dimension: "label",
        group: Group::Destination,
        ..Selection::default()
    })
    .into_iter()
    .map(|(_, key, tx, rx)| (key, tx, rx))
    .collect();
    assert_eq!(
        by_destination,
        [
            ("host".to_owned(), 4, 4),
            ("internet".to_owned(), 40, 4),
            ("vpc".to_owned(), 20, 2)
        ]
    );
    let internet = ["internet".to_owned()];
    let web_to_internet = select(Selection {
        period: Period::Hour,
        dimension: "label",
        keys: &["web".to_owned()],
        destinations: &internet,
        ..Selection::default()
    });
    assert_eq!(web_to_internet.len(), 1);
    assert_eq!((web_to_internet[0].2, web_to_internet[0].3), (10, 1));
}

/// An old file in `dir` opened at midnight (so upgraded) and the account of web on eth0 to
/// the internet recorded at `tx`, `rx`.
fn opened_and_recorded(dir: &std::path::Path, tx: u64, rx: u64) -> History {
    let clock = FakeClock::at(midnight());
    let history = open(dir, &clock, &Config::default(), "boot-1");
    history
        .record(&[label_to(
            "account 1 1 2 3",
            "web",
            "eth0",
            "internet",
            tx,
            rx,
        )])
        .unwrap();
    history
}

/// The schema version the file at `path` says it has.
fn schema_of(path: &std::path::Path) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT value FROM meta WHERE name = 'schema'", [], |row| {
            row.get(0)
        })
        .unwrap()
}

#[test]
fn a_schema_1_file_is_upgraded_in_place_keeping_what_it_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::FILE_NAME);
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(&format!(
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
         CREATE TABLE series (id INTEGER PRIMARY KEY, dimension TEXT NOT NULL,
             key TEXT NOT NULL, interface TEXT NOT NULL, UNIQUE (dimension, key, interface));
         CREATE TABLE usage (period TEXT NOT NULL, start INTEGER NOT NULL,
             series INTEGER NOT NULL REFERENCES series (id), tx_bytes INTEGER NOT NULL,
             rx_bytes INTEGER NOT NULL, wire_tx_bytes INTEGER NOT NULL,
             wire_rx_bytes INTEGER NOT NULL, PRIMARY KEY (period, start, series)) WITHOUT ROWID;
         CREATE TABLE baseline (source TEXT PRIMARY KEY, tx_bytes INTEGER NOT NULL,
             rx_bytes INTEGER NOT NULL, wire_tx_bytes INTEGER NOT NULL,
             wire_rx_bytes INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO meta VALUES ('schema', '1'), ('epoch', 'boot-1'), ('recorded_until', '{now}');
         INSERT INTO series VALUES (7, 'label', 'web', 'eth0');
         INSERT INTO usage VALUES ('day', {day}, 7, 1000, 10, 1100, 20);
         INSERT INTO baseline VALUES ('account 1 1 2 3', 1000, 10, 1100, 20);",
        now = midnight() - 60,
        day = midnight() - DAY,
    ))
    .unwrap();
    drop(old);
    let history = opened_and_recorded(dir.path(), 1005, 10);
    let rows = history
        .query(&Selection {
            period: Period::Day,
            dimension: "label",
            group: Group::Destination,
            ..Selection::default()
        })
        .unwrap()
        .0
        .rows();
    assert_eq!(
        rows,
        [
            (
                midnight() - DAY,
                super::store::DESTINATION_NOT_RECORDED.to_owned(),
                1000,
                10
            ),
            (midnight(), "internet".to_owned(), 5, 0)
        ],
        "schema 1's buckets kept, the baseline continued"
    );
    assert_eq!(schema_of(&path), super::store::SCHEMA_VERSION);
}

#[test]
fn a_schema_2_file_is_upgraded_in_place_with_the_wire_bytes_of_its_spans_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(super::FILE_NAME);
    // Day spans are 32 days from the epoch: the span of 40 days before midnight has ended.
    let (span, _) = super::spans::locate(Period::Day, midnight() - 40 * DAY).unwrap();
    let old = rusqlite::Connection::open(&path).unwrap();
    old.execute_batch(&format!(
        "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
         CREATE TABLE series (id INTEGER PRIMARY KEY, dimension TEXT NOT NULL,
             key TEXT NOT NULL, interface TEXT NOT NULL, destination TEXT NOT NULL,
             UNIQUE (dimension, key, interface, destination));
         CREATE TABLE usage (period TEXT NOT NULL, start INTEGER NOT NULL,
             series INTEGER NOT NULL REFERENCES series (id), tx_bytes INTEGER NOT NULL,
             rx_bytes INTEGER NOT NULL, wire_tx_bytes INTEGER NOT NULL,
             wire_rx_bytes INTEGER NOT NULL, PRIMARY KEY (period, start, series)) WITHOUT ROWID;
         CREATE TABLE usage_span (period TEXT NOT NULL, span INTEGER NOT NULL,
             series INTEGER NOT NULL REFERENCES series (id), payload TEXT NOT NULL,
             wire TEXT NOT NULL, PRIMARY KEY (period, span, series)) WITHOUT ROWID;
         CREATE VIEW buckets AS SELECT period, start, series, tx_bytes, rx_bytes,
             wire_tx_bytes, wire_rx_bytes FROM usage;
         CREATE TABLE baseline (source TEXT PRIMARY KEY, tx_bytes INTEGER NOT NULL,
             rx_bytes INTEGER NOT NULL, wire_tx_bytes INTEGER NOT NULL,
             wire_rx_bytes INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO meta VALUES ('schema', '2'), ('epoch', 'boot-1'), ('recorded_until', '{now}');
         INSERT INTO series VALUES (7, 'label', 'web', 'eth0', 'internet');
         INSERT INTO usage_span VALUES ('day', {span}, 7, '[0,[300,30]]', '[0,[340,70]]');
         INSERT INTO usage VALUES ('day', {day}, 7, 1000, 10, 1100, 20);
         INSERT INTO baseline VALUES ('account 1 1 2 3', 1300, 40, 1440, 90);",
        now = midnight() - 60,
        day = midnight() - DAY,
    ))
    .unwrap();
    drop(old);
    let history = opened_and_recorded(dir.path(), 1305, 40);
    let rows = history
        .query(&Selection {
            period: Period::Day,
            dimension: "label",
            ..Selection::default()
        })
        .unwrap()
        .0
        .rows();
    assert_eq!(
        rows,
        [
            (span + DAY, "web".to_owned(), 300, 30),
            (midnight() - DAY, "web".to_owned(), 1000, 10),
            (midnight(), "web".to_owned(), 5, 0)
        ],
        "schema 2's span and bucket kept, the baseline continued"
    );
    assert_eq!(schema_of(&path), super::store::SCHEMA_VERSION);
    let file = rusqlite::Connection::open(&path).unwrap();
    let span_columns: Vec<String> = file
        .prepare("SELECT name FROM pragma_table_info('usage_span')")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(span_columns, ["period", "span", "series", "payload"]);
    // The view pairs the span's payload and wire bytes again.
    let packed: (i64, i64, i64, i64) = file
        .query_row(
            "SELECT tx_bytes, rx_bytes, wire_tx_bytes, wire_rx_bytes FROM buckets
             WHERE period = 'day' AND start = ?1",
            [span + DAY],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!(packed, (300, 30, 340, 70));
}
