//! Which bucket of a period a moment falls in: 5 minutes and hours aligned to the Unix epoch,
//! UTC days, and billing months from a billing day (00:00 UTC) to the same day of the next
//! month (in a month shorter than the billing day: its last day). Pure arithmetic on Unix
//! seconds (the civil-date conversions are Howard Hinnant's `days_from_civil` and
//! `civil_from_days`).
use sockstats_common::protocol::Period;

const DAY: i64 = 86_400;

/// The start of the bucket of `period` that holds `time`.
#[must_use]
pub fn bucket_start(period: Period, time: i64, billing_day: u8) -> i64 {
    match period {
        Period::FiveMinutes => time.div_euclid(300) * 300,
        Period::Hour => time.div_euclid(3600) * 3600,
        Period::Day => time.div_euclid(DAY) * DAY,
        Period::Month => {
            let today = time.div_euclid(DAY);
            let (year, month, _) = civil_from_days(today);
            let this = cycle_start(year, month, billing_day);
            if today >= this {
                this * DAY
            } else {
                let (year, month) = previous_month(year, month);
                cycle_start(year, month, billing_day) * DAY
            }
        }
    }
}

/// The start of the bucket after the one that starts at `start`.
#[must_use]
pub fn bucket_end(period: Period, start: i64, billing_day: u8) -> i64 {
    match period {
        Period::FiveMinutes => start + 300,
        Period::Hour => start + 3600,
        Period::Day => start + DAY,
        Period::Month => {
            // A cycle starts in its own month (on the billing day, or on the last day of a
            // shorter month), so the next starts in the month after.
            let (year, month, _) = civil_from_days(start.div_euclid(DAY));
            let (year, month) = next_month(year, month);
            cycle_start(year, month, billing_day) * DAY
        }
    }
}

/// The day (days since the epoch) the billing month of (`year`, `month`) starts.
fn cycle_start(year: i64, month: u32, billing_day: u8) -> i64 {
    let day = u32::from(billing_day).clamp(1, days_in_month(year, month));
    days_from_civil(year, month, day)
}

const fn previous_month(year: i64, month: u32) -> (i64, u32) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

const fn next_month(year: i64, month: u32) -> (i64, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

fn days_in_month(year: i64, month: u32) -> u32 {
    let (next_year, next) = next_month(year, month);
    u32::try_from(days_from_civil(next_year, next, 1) - days_from_civil(year, month, 1))
        .expect("a month has 28 to 31 days")
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
#[must_use]
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day since 1970-01-01: (year, month 1–12, day 1–31).
#[must_use]
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * mp + 2) / 5 + 1).expect("1 to 31");
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).expect("1 to 12");
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(year: i64, month: u32, day: u32, hour: i64) -> i64 {
        days_from_civil(year, month, day) * DAY + hour * 3600
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for days in (-800_000..800_000).step_by(997) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2026, 2), 28);
        assert_eq!(days_in_month(2100, 2), 28);
    }

    #[test]
    fn short_buckets_align_to_the_epoch() {
        let t = at(2026, 12, 2, 13) + 17 * 60 + 9;
        assert_eq!(
            bucket_start(Period::FiveMinutes, t, 1),
            at(2026, 12, 2, 13) + 15 * 60
        );
        assert_eq!(bucket_start(Period::Hour, t, 1), at(2026, 12, 2, 13));
        assert_eq!(bucket_start(Period::Day, t, 1), at(2026, 12, 2, 0));
        assert_eq!(
            bucket_end(Period::Day, at(2026, 12, 2, 0), 1),
            at(2026, 12, 3, 0)
        );
        // Before the epoch too (a clock set far back).
        assert_eq!(bucket_start(Period::Hour, -1, 1), -3600);
    }

    #[test]
    fn billing_months_run_from_the_billing_day() {
        // Day 1: calendar months.
        assert_eq!(
            bucket_start(Period::Month, at(2026, 12, 2, 5), 1),
            at(2026, 12, 1, 0)
        );
        assert_eq!(
            bucket_end(Period::Month, at(2026, 12, 1, 0), 1),
            at(2027, 1, 1, 0)
        );
        // Day 15: from the 15th to the 14th.
        assert_eq!(
            bucket_start(Period::Month, at(2026, 12, 14, 23), 15),
            at(2026, 11, 15, 0)
        );
        assert_eq!(
            bucket_start(Period::Month, at(2026, 12, 15, 0), 15),
            at(2026, 12, 15, 0)
        );
        assert_eq!(
            bucket_end(Period::Month, at(2026, 12, 15, 0), 15),
            at(2027, 1, 15, 0)
        );
        assert_eq!(
            bucket_start(Period::Month, at(2027, 1, 3, 0), 15),
            at(2026, 12, 15, 0)
        );
        // Day 31: in shorter months, their last day.
        assert_eq!(
            bucket_start(Period::Month, at(2026, 3, 1, 0), 31),
            at(2026, 2, 28, 0)
        );
        assert_eq!(
            bucket_end(Period::Month, at(2026, 2, 28, 0), 31),
            at(2026, 3, 31, 0)
        );
        assert_eq!(
            bucket_end(Period::Month, at(2026, 1, 31, 0), 31),
            at(2026, 2, 28, 0)
        );
        assert_eq!(
            bucket_start(Period::Month, at(2026, 4, 30, 12), 31),
            at(2026, 4, 30, 0)
        );
        assert_eq!(
            bucket_end(Period::Month, at(2026, 4, 30, 0), 31),
            at(2026, 5, 31, 0)
        );
        assert_eq!(
            bucket_start(Period::Month, at(2024, 2, 29, 1), 30),
            at(2024, 2, 29, 0)
        );
        // Every moment is in exactly the bucket that starts before it and ends after it.
        for billing_day in [1, 15, 28, 29, 30, 31] {
            let mut t = at(2023, 12, 20, 0);
            while t < at(2025, 3, 10, 0) {
                let start = bucket_start(Period::Month, t, billing_day);
                let end = bucket_end(Period::Month, start, billing_day);
                assert!(start <= t && t < end, "{billing_day}: {start} {t} {end}");
                assert_eq!(bucket_start(Period::Month, end, billing_day), end);
                t += 7 * 3600;
            }
        }
    }
}
