//! Spans: a run of buckets of one series kept as one row of `usage_span` once no recording
//! adds to it any more (docs/history.md, "The schema"). A query over three years of days then
//! reads a row per 32 days of a series, not one per day: what makes `history --period day
//! --since 3y` over 1,000 labels fast (issue 14).
//!
//! A span's buckets are a JSON array (so `sqlite3` reads them with `json_each`): element `i`
//! is bucket `i` of the span, `0` when the series had no row for it, else `[tx, rx]` (payload)
//! or `[wire_tx, wire_rx]` (wire). Trailing empty buckets are left out.
use sockstats_common::protocol::Period;

/// The seconds of one bucket of `period`; months are calendar months (none).
#[must_use]
pub const fn bucket_seconds(period: Period) -> Option<i64> {
    match period {
        Period::FiveMinutes => Some(300),
        Period::Hour => Some(3600),
        Period::Day => Some(86_400),
        Period::Month => None,
    }
}

/// Buckets a span of `period` holds: an hour of 5-minute buckets, a day of hours, 32 days.
/// Months are never packed (a series has 12 of them a year).
#[must_use]
pub const fn buckets_per_span(period: Period) -> Option<i64> {
    match period {
        Period::FiveMinutes => Some(12),
        Period::Hour => Some(24),
        Period::Day => Some(32),
        Period::Month => None,
    }
}

/// The periods whose buckets are packed into spans.
pub const PACKED: [Period; 3] = [Period::FiveMinutes, Period::Hour, Period::Day];

/// Where the bucket of `period` starting at `start` is: its span's start and its index in it.
/// Spans are aligned to the Unix epoch. `None` for months.
#[must_use]
pub fn locate(period: Period, start: i64) -> Option<(i64, usize)> {
    let bucket = bucket_seconds(period)?;
    let span = bucket * buckets_per_span(period)?;
    let span_start = start.div_euclid(span) * span;
    let index = usize::try_from((start - span_start) / bucket).expect("0 ≤ index < span");
    Some((span_start, index))
}

/// The start of bucket `index` of the span of `period` starting at `span_start`.
#[must_use]
pub fn bucket_start(period: Period, span_start: i64, index: usize) -> i64 {
    let bucket = bucket_seconds(period).expect("months are not packed");
    span_start + bucket * i64::try_from(index).expect("a span's index fits")
}

/// The JSON array of `buckets` (index → the pair, `None` for no row), trailing `None`s left out.
#[must_use]
pub fn encode(buckets: &[Option<[i64; 2]>]) -> String {
    let used = buckets
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |last| last + 1);
    let mut text = String::with_capacity(2 + used * 24);
    text.push('[');
    for (index, bucket) in buckets[..used].iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        match bucket {
            None => text.push('0'),
            Some([a, b]) => {
                use std::fmt::Write;
                write!(text, "[{a},{b}]").expect("writing to a String");
            }
        }
    }
    text.push(']');
    text
}

/// Why a span's text is not what [`encode`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a span's buckets are not a JSON array of 0 and [a, b] at byte {at}")]
pub struct Malformed {
    pub at: usize,
}

/// Calls `each(index, [a, b])` for every bucket [`encode`] wrote into `text`.
pub fn decode(text: &[u8], mut each: impl FnMut(usize, [i64; 2])) -> Result<(), Malformed> {
    let mut reader = Reader { text, at: 0 };
    reader.expect(b'[')?;
    if reader.peek() == Some(b']') {
        return Ok(());
    }
    let mut index = 0;
    loop {
        if reader.peek() == Some(b'[') {
            reader.at += 1;
            let a = reader.integer()?;
            reader.expect(b',')?;
            let b = reader.integer()?;
            reader.expect(b']')?;
            each(index, [a, b]);
        } else {
            reader.expect(b'0')?;
        }
        index += 1;
        match reader.next()? {
            b',' => {}
            b']' if reader.at == text.len() => return Ok(()),
            _ => return Err(reader.malformed()),
        }
    }
}

/// A cursor over a span's text: only what [`encode`] writes, no whitespace.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn malformed(&self) -> Malformed {
        Malformed { at: self.at }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn next(&mut self) -> Result<u8, Malformed> {
        let byte = self.peek().ok_or_else(|| self.malformed())?;
        self.at += 1;
        Ok(byte)
    }

    fn expect(&mut self, wanted: u8) -> Result<(), Malformed> {
        if self.peek() == Some(wanted) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.malformed())
        }
    }

    /// A decimal i64, `-` allowed.
    fn integer(&mut self) -> Result<i64, Malformed> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let digits_start = self.at;
        let mut value: i64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            // Accumulated negative, so that i64::MIN is read too.
            value = value
                .checked_mul(10)
                .and_then(|value| value.checked_sub(i64::from(digit - b'0')))
                .ok_or_else(|| self.malformed())?;
            self.at += 1;
        }
        if self.at == digits_start {
            return Err(self.malformed());
        }
        if negative {
            Ok(value)
        } else {
            value.checked_neg().ok_or_else(|| self.malformed())
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn any_pair_of_integers_round_trips(a: i64, b: i64, gap in 0usize..3) {
            let mut buckets = vec![None; gap];
            buckets.push(Some([a, b]));
            prop_assert_eq!(decoded(&encode(&buckets)).unwrap(), [(gap, [a, b])]);
        }
    }

    fn decoded(text: &str) -> Result<Vec<(usize, [i64; 2])>, Malformed> {
        let mut buckets = Vec::new();
        decode(text.as_bytes(), |index, pair| buckets.push((index, pair)))?;
        Ok(buckets)
    }

    #[test]
    fn buckets_round_trip_with_gaps_signs_and_extremes() {
        let buckets = [
            None,
            Some([1, 2]),
            Some([-5, 0]),
            None,
            Some([i64::MAX, i64::MIN]),
            None,
        ];
        let text = encode(&buckets);
        assert_eq!(
            text,
            format!("[0,[1,2],[-5,0],0,[{},{}]]", i64::MAX, i64::MIN)
        );
        assert_eq!(
            decoded(&text).unwrap(),
            [(1, [1, 2]), (2, [-5, 0]), (4, [i64::MAX, i64::MIN])]
        );
        assert_eq!(encode(&[None, None]), "[]");
        assert_eq!(decoded("[]").unwrap(), []);
    }

    #[test]
    fn what_encode_never_writes_is_refused() {
        for text in [
            "",
            "[",
            "[0",
            "[0,]",
            "[1]",
            "[[1]]",
            "[[1,2]",
            "[[1,2]]x",
            "[ 0]",
            "[[1,-]]",
            "[[99999999999999999999,1]]",
        ] {
            assert!(decoded(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn spans_are_aligned_runs_of_buckets() {
        let day = 86_400;
        assert_eq!(locate(Period::Day, 0), Some((0, 0)));
        assert_eq!(locate(Period::Day, 33 * day), Some((32 * day, 1)));
        assert_eq!(locate(Period::Day, -day), Some((-32 * day, 31)));
        assert_eq!(locate(Period::FiveMinutes, 3600 + 600), Some((3600, 2)));
        assert_eq!(locate(Period::Hour, day + 23 * 3600), Some((day, 23)));
        assert_eq!(locate(Period::Month, 0), None);
        assert_eq!(bucket_start(Period::Hour, day, 23), day + 23 * 3600);
    }
}
