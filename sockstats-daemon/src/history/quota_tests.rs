//! Quotas over the history's fake clock: warn then limit, once per period, a new period
//! re-arms, restarts and crashes do not fire again, billing months, filters.
use std::{path::Path, sync::Arc, time::Duration};

use sockstats_common::protocol::{QuotaState, QuotaThreshold};

use super::{calendar::days_from_civil, clock::FakeClock, quota::Crossing, store::Sample, History};
use crate::config::{parse, Config};

const DAY: i64 = 86_400;

fn config(text: &str) -> Config {
    parse(text, Path::new("test.conf")).unwrap()
}

/// One label's account on one interface, at cumulative (tx, rx).
fn sample(label: &str, interface: &str, tx: u64, rx: u64) -> Sample {
    super::tests::label(&format!("{label}@{interface}"), label, interface, tx, rx)
}

struct Test {
    dir: tempfile::TempDir,
    clock: FakeClock,
    config: Config,
    history: History,
}

impl Test {
    /// A history of `config` at `now`, with a first recording of zeros (the baseline).
    fn new(text: &str, now: i64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = FakeClock::at(now);
        let config = config(text);
        let history = open(dir.path(), &clock, &config, "boot-1");
        history.record(&[]).unwrap();
        Self {
            dir,
            clock,
            config,
            history,
        }
    }

    /// The thresholds a recording of `samples` crossed: (threshold, period start, used).
    fn record(&self, samples: &[Sample]) -> Vec<(QuotaThreshold, i64, u64)> {
        let recorded = self.history.record(samples).unwrap();
        recorded
            .crossings
            .iter()
            .map(
                |Crossing {
                     threshold,
                     period_start,
                     used,
                     ..
                 }| (*threshold, *period_start, *used),
            )
            .collect()
    }

    /// A daemon started anew on the same file (`epoch`: the kernel's counters, kept or not).
    fn restart(&mut self, epoch: &str) {
        self.history = open(self.dir.path(), &self.clock, &self.config, epoch);
    }
}

fn open(dir: &Path, clock: &FakeClock, config: &Config, epoch: &str) -> History {
    let (history, opened) = History::open(
        dir,
        config,
        epoch.to_owned(),
        Duration::from_secs(60),
        Arc::new(clock.clone()),
    );
    opened.unwrap();
    history
}

fn at(year: i64, month: u32, day: u32, seconds: i64) -> i64 {
    days_from_civil(year, month, day) * DAY + seconds
}

#[test]
fn warn_then_limit_once_per_period_and_a_new_period_re_arms() {
    let today = at(2026, 12, 2, 0);
    let test = Test::new("quota web day 1000B warn=50%", today + 3600);
    let web = |tx, rx| [sample("web", "eth0", tx, rx)];
    assert_eq!(test.record(&web(300, 100)), []);
    let (uses, _) = test.history.quota_uses().unwrap();
    assert_eq!((uses[0].used, uses[0].period_start), (400, today));
    assert_eq!(uses[0].state(&test.history.quotas()[0]), QuotaState::Ok);
    // 499 is under 50 %, 500 is on it.
    assert_eq!(test.record(&web(399, 100)), []);
    assert_eq!(
        test.record(&web(400, 100)),
        [(QuotaThreshold::Warn, today, 500)]
    );
    assert_eq!(test.record(&web(700, 200)), []);
    let (uses, _) = test.history.quota_uses().unwrap();
    assert_eq!(uses[0].state(&test.history.quotas()[0]), QuotaState::Warn);
    assert_eq!(
        uses[0].last_fired,
        Some((QuotaThreshold::Warn, today, today + 3600))
    );
    test.clock.advance(60);
    assert_eq!(
        test.record(&web(800, 200)),
        [(QuotaThreshold::Limit, today, 1000)]
    );
    assert_eq!(test.record(&web(5000, 200)), []);
    let (uses, _) = test.history.quota_uses().unwrap();
    assert_eq!(uses[0].used, 5200);
    assert_eq!(uses[0].state(&test.history.quotas()[0]), QuotaState::Over);
    assert!((uses[0].ratio(&test.history.quotas()[0]) - 5.2).abs() < 1e-9);
    assert_eq!(
        uses[0].last_fired,
        Some((QuotaThreshold::Limit, today, today + 3660))
    );
    // The next day starts at zero and fires again.
    let tomorrow = today + DAY;
    test.clock.set(tomorrow + 10);
    assert_eq!(test.record(&web(5100, 200)), []);
    let (uses, _) = test.history.quota_uses().unwrap();
    assert_eq!((uses[0].used, uses[0].period_start), (100, tomorrow));
    assert_eq!(uses[0].period_end, tomorrow + DAY);
    assert_eq!(uses[0].state(&test.history.quotas()[0]), QuotaState::Ok);
    assert_eq!(
        test.record(&web(5600, 200)),
        [(QuotaThreshold::Warn, tomorrow, 600)]
    );
}

#[test]
fn crossing_both_at_once_fires_warn_then_limit() {
    let test = Test::new("quota web hour 1KiB", at(2026, 12, 2, 600));
    assert_eq!(
        test.record(&[sample("web", "lo", 2000, 0)]),
        [
            (QuotaThreshold::Warn, at(2026, 12, 2, 0), 2000),
            (QuotaThreshold::Limit, at(2026, 12, 2, 0), 2000)
        ]
    );
    // The next hour re-arms.
    test.clock.advance(3600);
    assert_eq!(
        test.record(&[sample("web", "lo", 2900, 0)]),
        [(QuotaThreshold::Warn, at(2026, 12, 2, 3600), 900)]
    );
}

#[test]
fn a_restart_or_a_crash_does_not_fire_again() {
    let mut test = Test::new("quota web day 1000B", at(2026, 12, 2, 60));
    assert_eq!(
        test.record(&[sample("web", "eth0", 900, 0)]),
        [(QuotaThreshold::Warn, at(2026, 12, 2, 0), 900)]
    );
    // The daemon killed after the commit and started again (same kernel counters): the
    // firing was kept with the bytes, so it is not repeated.
    test.restart("boot-1");
    assert_eq!(test.record(&[sample("web", "eth0", 950, 0)]), []);
    // A reboot: the counters start from zero, the day's use goes on.
    test.restart("boot-2");
    assert_eq!(test.record(&[sample("web", "eth0", 10, 0)]), []);
    assert_eq!(
        test.record(&[sample("web", "eth0", 60, 0)]),
        [(QuotaThreshold::Limit, at(2026, 12, 2, 0), 1010)]
    );
    test.restart("boot-2");
    assert_eq!(test.record(&[sample("web", "eth0", 500, 0)]), []);
    let (uses, _) = test.history.quota_uses().unwrap();
    assert_eq!(uses[0].used, 1450);
}

#[test]
fn billing_months_end_on_the_day_before_the_billing_day() {
    let test = Test::new(
        "billing-day 15\nquota web month 1MB warn=10%",
        at(2026, 12, 14, 86_000),
    );
    let november = at(2026, 11, 15, 0);
    let december = at(2026, 12, 15, 0);
    assert_eq!(
        test.record(&[sample("web", "wwan0", 100_000, 0)]),
        [(QuotaThreshold::Warn, november, 100_000)]
    );
    let (uses, _) = test.history.quota_uses().unwrap();
    assert_eq!(
        (uses[0].period_start, uses[0].period_end),
        (november, december)
    );
    // 00:00 UTC on the 15th is a new month.
    test.clock.set(december);
    assert_eq!(test.record(&[sample("web", "wwan0", 150_000, 0)]), []);
    assert_eq!(
        test.record(&[sample("web", "wwan0", 1_100_000, 0)]),
        [
            (QuotaThreshold::Warn, december, 1_000_000),
            (QuotaThreshold::Limit, december, 1_000_000)
        ]
    );
    let (uses, _) = test.history.quota_uses().unwrap();
    assert_eq!(uses[0].period_end, at(2027, 1, 15, 0));
}

#[test]
fn labels_interfaces_metered_links_and_directions_select_the_bytes() {
    let test = Test::new(
        "metered ww*\n\
         quota web interface=eth* day 1GB\n\
         quota * metered day 1GB\n\
         quota * day 1GB direction=rx\n\
         quota web day 1GB direction=tx\n\
         quota unlabeled day 1GB",
        at(2026, 12, 2, 60),
    );
    test.record(&[
        sample("web", "eth0", 1, 2),
        sample("web", "wwan0", 10, 20),
        sample("mail", "wwan1", 100, 200),
        sample("mail", "eth1", 1000, 2000),
        sample("unlabeled", "lo", 10_000, 20_000),
    ]);
    let (all, _) = test.history.quota_uses().unwrap();
    let used: Vec<u64> = all.iter().map(|usage| usage.used).collect();
    assert_eq!(used, [3, 330, 22_222, 11, 30_000]);
}
