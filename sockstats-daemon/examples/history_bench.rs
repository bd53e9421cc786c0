//! What the usage history costs (issue 14's "cheap"), measured on this machine, not installed:
//!
//! 1. Recording: 1,000 labels × 10 interfaces (10,000 kernel accounts) plus 1,000 owner
//!    accounts, every one changing at every recording, recorded 30 times a fake minute apart
//!    into a fresh file; the CPU time of one recording, and what that is of one CPU at the
//!    default 60 s interval.
//! 2. Querying: a file holding three years of 1,000 labels (one interface and destination
//!    each), made by the daemon's recorder a fake day apart, then `history --period day
//!    --since 3y` by label as the daemon answers it: the reply line for the socket written
//!    while a thread reads the file; the query and the line are also timed apart.
//!
//! `cargo run --release --example history_bench [-- DIR]` (DIR: where the files go, default a
//! temporary directory; a three-year file an earlier run left in DIR is queried as it is).
//! `cargo xtask bench` runs it.
use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use sockstats_common::protocol::{HistoryBy, Period};
use sockstats_daemon::{
    config::Config,
    history::{
        calendar::days_from_civil,
        clock::FakeClock,
        query::Selection,
        store::{Sample, Series},
        History, FILE_NAME,
    },
    ops::{
        history_reply::{HistoryLine, ReplyFrame},
        reply_line, Reply,
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

/// Three years of every label, recorded by the daemon's own recorder once a fake day (so
/// each recording also fills that day's 5-minute, hour and month buckets and packs the spans
/// that ended): what a file kept three years looks like, day buckets in spans.
fn three_years(dir: &Path, now: i64, days: i64) -> u64 {
    let clock = FakeClock::at(now - days * DAY - 60);
    let history = open(dir, &clock);
    let day_samples = |day: u64| -> Vec<Sample> {
        (0..LABELS)
            .map(|label| {
                let bytes = day * (1_000_000 + label.unsigned_abs());
                Sample {
                    source: format!("account {label} 1 2 3"),
                    counters: [bytes, bytes * 2, bytes + 40, bytes * 2 + 40],
                    series: vec![Series {
                        dimension: "label",
                        key: format!("label-{label}"),
                        interface: "eth0".to_owned(),
                        destination: "internet".to_owned(),
                    }],
                }
            })
            .collect()
    };
    history.record(&day_samples(0)).expect("record");
    for day in 1..=days {
        clock.advance(DAY);
        history
            .record(&day_samples(day.unsigned_abs()))
            .expect("record");
    }
    std::fs::metadata(dir.join(FILE_NAME)).map_or(0, |m| m.len())
}

fn query(dir: &Path, now: i64) {
    let days = 3 * 365;
    let made = Instant::now();
    let reused = dir.join(FILE_NAME).exists();
    let size = if reused {
        // Made by an earlier run into this DIR: queried again as it is (for profiling).
        std::fs::metadata(dir.join(FILE_NAME)).map_or(0, |m| m.len())
    } else {
        three_years(dir, now, days)
    };
    let made = made.elapsed();
    let reader = open(dir, &FakeClock::at(now));
    let (mut best_query, mut best_line, mut best_answer) =
        (Duration::MAX, Duration::MAX, Duration::MAX);
    let mut rows = 0;
    let mut json_bytes = 0;
    let selection = Selection {
        period: Period::Day,
        dimension: "label",
        since: Some(now - days * DAY),
        ..Selection::default()
    };
    let frame = ReplyFrame {
        period: Period::Day,
        by: HistoryBy::Label,
        billing_day: 1,
        recorded_until: None,
    };
    for _ in 0..5 {
        // Apart: the query alone, and the reply line alone from its answer.
        let started = Instant::now();
        let (answer, _) = reader.query(&selection).expect("query");
        best_query = best_query.min(started.elapsed());
        rows = answer.buckets.iter().map(|(_, sums)| sums.len()).sum();
        let started = Instant::now();
        let line = HistoryLine::write(&frame, &answer.keys, answer.buckets.into_iter());
        let line = reply_line(Ok(Reply::History(line)));
        best_line = best_line.min(started.elapsed());
        json_bytes = line.len();
        drop(line);
        // As the daemon answers: the line written while the query reads.
        let started = Instant::now();
        let line = reader
            .query_streamed(&selection, |_, keys, buckets| {
                HistoryLine::write(&frame, keys, buckets)
            })
            .expect("query");
        let line = reply_line(Ok(Reply::History(line)));
        best_answer = best_answer.min(started.elapsed());
        assert_eq!(line.len(), json_bytes);
    }
    println!(
        "history --period day --since 3y over {LABELS} labels: answered in {:.0} ms, {rows} (day, label) sums from a {} MiB file (best of 5; the reply line written while the query reads; apart, the query takes {:.0} ms and the line of {} MiB {:.0} ms); {}",
        best_answer.as_secs_f64() * 1000.0,
        size / 1024 / 1024,
        best_query.as_secs_f64() * 1000.0,
        json_bytes / 1024 / 1024,
        best_line.as_secs_f64() * 1000.0,
        if reused {
            "the file an earlier run made".to_owned()
        } else {
            format!("the file took {:.0} s of recordings to make", made.as_secs_f64())
        },
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
