//! What the usage history costs (issue 14's "cheap"), measured on this machine, not installed:
//!
//! 1. Recording: 1,000 labels × 10 interfaces (10,000 kernel accounts) plus 1,000 owner
//!    accounts, every one changing at every recording, recorded 30 times a fake minute apart
//!    into a fresh file; the CPU time of one recording, and what that is of one CPU at the
//!    default 60 s interval.
//! 2. Querying: a file holding three years of day buckets of 1,000 labels (one interface each,
//!    made directly in SQLite), then `history --period day --since 3y` by label through
//!    the same query the daemon runs.
//!
//! `cargo run --release --example history_bench [-- DIR]` (DIR: where the files go, default a
//! temporary directory). `cargo xtask bench` runs it.
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use sockstats_common::protocol::Period;
use sockstats_daemon::{
    config::Config,
    history::{
        calendar::days_from_civil,
        clock::FakeClock,
        store::{Sample, Selection, Series},
        History, FILE_NAME,
    },
};

const LABELS: i64 = 1000;
const INTERFACES: i64 = 10;
const RECORDINGS: u32 = 30;
const DAY: i64 = 86_400;

fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // utime and stime (fields 14 and 15) after the command's closing parenthesis.
    let ticks: u64 = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .split(' ')
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn samples(round: u64) -> Vec<Sample> {
    let mut samples = Vec::new();
    for label in 0..LABELS {
        let base = 1000 + label.unsigned_abs() * 7;
        for interface in 0..INTERFACES {
            let bytes = round * (base + interface.unsigned_abs());
            samples.push(Sample {
                source: format!("account {label} 1 {interface}"),
                counters: [bytes, bytes / 2, bytes + 40, bytes / 2 + 40],
                series: vec![Series {
                    dimension: "label",
                    key: format!("label-{label}"),
                    interface: format!("eth{interface}"),
                    destination: "internet".to_owned(),
                }],
            });
        }
        samples.push(Sample {
            source: format!("owner {label} {label}"),
            counters: [round * 100, round * 50, 0, 0],
            series: vec![
                Series {
                    dimension: "uid",
                    key: label.to_string(),
                    interface: String::new(),
                    destination: "internet".to_owned(),
                },
                Series {
                    dimension: "cgroup",
                    key: format!("/app-{label}.slice"),
                    interface: String::new(),
                    destination: "internet".to_owned(),
                },
            ],
        });
    }
    samples
}

fn open(dir: &Path, clock: &FakeClock) -> History {
    std::fs::create_dir_all(dir).expect("mkdir");
    let (history, opened) = History::open(
        dir,
        &Config::default(),
        "bench".to_owned(),
        Duration::from_secs(60),
        Arc::new(clock.clone()),
    );
    opened.expect("open");
    history
}

/// Recordings of every account changing, a fake minute apart.
fn recording(dir: &Path, start: i64) {
    let clock = FakeClock::at(start);
    let history = open(dir, &clock);
    history.record(&samples(0)).expect("record");
    let mut cpu = Duration::ZERO;
    let mut wall = Duration::ZERO;
    for round in 1..=u64::from(RECORDINGS) {
        clock.advance(60);
        let batch = samples(round);
        let (cpu_before, wall_before) = (cpu_time(), Instant::now());
        history.record(&batch).expect("record");
        cpu += cpu_time().saturating_sub(cpu_before);
        wall += wall_before.elapsed();
    }
    let per_recording = cpu / RECORDINGS;
    println!(
        "recording {} accounts: {:.1} ms CPU ({:.1} ms wall) per recording, {:.3} % of one CPU every 60 s",
        LABELS * (INTERFACES + 1),
        per_recording.as_secs_f64() * 1000.0,
        (wall / RECORDINGS).as_secs_f64() * 1000.0,
        per_recording.as_secs_f64() / 60.0 * 100.0
    );
}

/// A file with three years of day buckets of every label, written directly.
fn three_years(dir: &Path, now: i64, days: i64) -> u64 {
    drop(open(dir, &FakeClock::at(now)));
    let path = dir.join(FILE_NAME);
    let mut connection = rusqlite::Connection::open(&path).expect("open");
    let transaction = connection.transaction().expect("transaction");
    for label in 0..LABELS {
        transaction
            .execute(
                "INSERT INTO series (id, dimension, key, interface, destination) VALUES (?1, 'label', ?2, 'eth0', 'internet')",
                rusqlite::params![label + 1, format!("label-{label}")],
            )
            .expect("series");
    }
    {
        let mut insert = transaction
            .prepare("INSERT INTO usage VALUES ('day', ?1, ?2, ?3, ?4, ?3, ?4)")
            .expect("prepare");
        for day in 0..days {
            for label in 0..LABELS {
                insert
                    .execute(rusqlite::params![
                        now - (days - day) * DAY,
                        label + 1,
                        1_000_000 + label,
                        2_000_000 + day
                    ])
                    .expect("insert");
            }
        }
    }
    transaction.commit().expect("commit");
    std::fs::metadata(&path).map_or(0, |m| m.len())
}

fn query(dir: &Path, now: i64) {
    let days = 3 * 365;
    let size = three_years(dir, now, days);
    let reader = open(dir, &FakeClock::at(now));
    let mut best = Duration::MAX;
    let mut rows = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let (answer, _) = reader
            .query(&Selection {
                period: Period::Day,
                dimension: "label",
                since: Some(now - days * DAY),
                ..Selection::default()
            })
            .expect("query");
        best = best.min(started.elapsed());
        rows = answer.len();
    }
    println!(
        "history --period day --since 3y over {LABELS} labels: {:.0} ms for {rows} (day, label) rows from a {} MiB file (best of 5)",
        best.as_secs_f64() * 1000.0,
        size / 1024 / 1024
    );
}

fn main() {
    // A temporary directory goes when `temporary` drops; a DIR given stays.
    let temporary = tempfile::tempdir().expect("tempdir");
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| temporary.path().to_owned(), PathBuf::from);
    let start = days_from_civil(2026, 12, 1) * DAY;
    recording(&dir.join("recording"), start);
    query(&dir.join("query"), start);
}
