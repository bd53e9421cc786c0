//! The `history` op's reply, written by hand as the query's buckets come: byte for byte what
//! [`encode_ok`] writes for the [`HistoryReply`] it stands for (unit tests compare the two),
//! without a `String` and a map entry per (bucket, key) and serde's steps per entry. Three
//! years of days of 1,000 labels are 1.1 million entries, 54 MiB (docs/benchmarks.md, "The
//! usage history").
//!
//! [`encode_ok`]: sockstats_common::protocol::encode_ok
use serde::{Serialize, Serializer};
use sockstats_common::protocol::{HistoryBy, HistoryReply, Period};

use crate::{
    history::{calendar, query::Bucket, rfc3339, samples::UNKNOWN_OWNER},
    sys::owners,
};

/// A `history` reply: the JSON object of a [`HistoryReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryLine {
    object: String,
}

/// What a reply is about, written before and after its buckets.
#[derive(Debug, Clone)]
pub struct ReplyFrame {
    pub period: Period,
    pub by: HistoryBy,
    /// Where months start (for each bucket's end).
    pub billing_day: u8,
    /// When the daemon last recorded (RFC 3339).
    pub recorded_until: Option<String>,
}

impl HistoryLine {
    /// The reply of `buckets` (as [`crate::history::query::each_bucket`] gives them) summed
    /// under `keys`, named for `frame.by`: uids as user names, the sums of two uids of one
    /// name added.
    #[must_use]
    pub fn write(
        frame: &ReplyFrame,
        keys: &[String],
        buckets: impl Iterator<Item = Bucket>,
    ) -> Self {
        let naming = Naming::new(keys, frame.by);
        // `"name":{"tx_bytes":` of every name, escaped once.
        let prefixes: Vec<String> = naming
            .names
            .iter()
            .map(|name| json(name) + ":{\"tx_bytes\":")
            .collect();
        let mut out = String::new();
        out.push_str("{\"period\":");
        out.push_str(&json(&frame.period));
        out.push_str(",\"by\":");
        out.push_str(&json(&frame.by));
        out.push_str(",\"buckets\":[");
        let mut number = itoa::Buffer::new();
        for (index, (start, sums)) in buckets.enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str("{\"start\":");
            out.push_str(&json(&rfc3339(start)));
            out.push_str(",\"end\":");
            let end = calendar::bucket_end(frame.period, start, frame.billing_day);
            out.push_str(&json(&rfc3339(end)));
            out.push_str(",\"stats\":{");
            for (entry, (name, tx, rx)) in naming.rename(sums).into_iter().enumerate() {
                if entry > 0 {
                    out.push(',');
                }
                out.push_str(&prefixes[name]);
                out.push_str(number.format(tx));
                out.push_str(",\"rx_bytes\":");
                out.push_str(number.format(rx));
                out.push('}');
            }
            out.push_str("}}");
        }
        out.push_str("],\"recorded_until\":");
        out.push_str(&json(&frame.recorded_until));
        out.push('}');
        Self { object: out }
    }

    /// The reply line (newline included), `"ok":true` last.
    #[must_use]
    pub fn into_reply_line(self) -> String {
        let mut line = self.object;
        line.pop();
        line.push_str(",\"ok\":true}\n");
        line
    }

    /// The reply as a client decodes it.
    #[must_use]
    pub fn to_reply(&self) -> HistoryReply {
        serde_json::from_str(&self.object).expect("the line is a history reply")
    }
}

impl Serialize for HistoryLine {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::value::RawValue::from_string(self.object.clone())
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// `value` as JSON.
fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("names, times and enums serialize")
}

/// The names a reply's sums go under: the query's keys, or for uids their user names
/// (sorted and unique, with the key → name index).
struct Naming {
    names: Vec<String>,
    /// For each key, the index of its name (uids only).
    name_of_key: Option<Vec<usize>>,
}

impl Naming {
    fn new(keys: &[String], by: HistoryBy) -> Self {
        if by != HistoryBy::Uid {
            return Self {
                names: keys.to_vec(),
                name_of_key: None,
            };
        }
        let user_names: Vec<String> = keys
            .iter()
            .map(|key| match key.parse() {
                Ok(uid) if key != UNKNOWN_OWNER => owners::user_name(uid),
                _ => key.clone(),
            })
            .collect();
        let mut names = user_names.clone();
        names.sort_unstable();
        names.dedup();
        let name_of_key = user_names
            .iter()
            .map(|name| names.binary_search(name).expect("every name is in names"))
            .collect();
        Self {
            names,
            name_of_key: Some(name_of_key),
        }
    }

    /// A bucket's (key, tx, rx) in key order as (name, tx, rx) in name order, one per name.
    fn rename(&self, sums: Vec<(usize, i64, i64)>) -> Vec<(usize, i64, i64)> {
        let Some(name_of_key) = &self.name_of_key else {
            return sums;
        };
        let mut sorted: Vec<(usize, i64, i64)> = sums
            .into_iter()
            .map(|(key, tx, rx)| (name_of_key[key], tx, rx))
            .collect();
        sorted.sort_by_key(|&(name, ..)| name);
        let mut renamed: Vec<(usize, i64, i64)> = Vec::with_capacity(sorted.len());
        for (name, tx, rx) in sorted {
            match renamed.last_mut() {
                Some(last) if last.0 == name => {
                    last.1 = last.1.saturating_add(tx);
                    last.2 = last.2.saturating_add(rx);
                }
                _ => renamed.push((name, tx, rx)),
            }
        }
        renamed
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sockstats_common::protocol::{encode_ok, HistoryBucket, HistoryCounts};

    use super::*;

    /// The reply built the plain way: a map per bucket, names looked up per entry.
    fn expected(frame: &ReplyFrame, keys: &[String], buckets: &[Bucket]) -> HistoryReply {
        let name = |key: &str| match key.parse() {
            Ok(uid) if frame.by == HistoryBy::Uid && key != UNKNOWN_OWNER => owners::user_name(uid),
            _ => key.to_owned(),
        };
        HistoryReply {
            period: frame.period,
            by: frame.by,
            buckets: buckets
                .iter()
                .map(|(start, sums)| {
                    let mut stats: BTreeMap<String, HistoryCounts> = BTreeMap::new();
                    for &(key, tx, rx) in sums {
                        let counts = stats.entry(name(&keys[key])).or_default();
                        counts.tx_bytes = counts.tx_bytes.saturating_add(tx);
                        counts.rx_bytes = counts.rx_bytes.saturating_add(rx);
                    }
                    HistoryBucket {
                        start: rfc3339(*start),
                        end: rfc3339(calendar::bucket_end(
                            frame.period,
                            *start,
                            frame.billing_day,
                        )),
                        stats,
                    }
                })
                .collect(),
            recorded_until: frame.recorded_until.clone(),
        }
    }

    fn frame(period: Period, by: HistoryBy) -> ReplyFrame {
        ReplyFrame {
            period,
            by,
            billing_day: 15,
            recorded_until: Some("1970-02-10T00:00:00Z".to_owned()),
        }
    }

    fn assert_written_as_expected(frame: &ReplyFrame, keys: &[String], buckets: &[Bucket]) {
        let line = HistoryLine::write(frame, keys, buckets.iter().cloned());
        let expected = expected(frame, keys, buckets);
        assert_eq!(line.to_reply(), expected);
        assert_eq!(
            serde_json::to_string(&line).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        assert_eq!(line.into_reply_line(), encode_ok(&expected), "{frame:?}");
    }

    #[test]
    fn writes_the_line_of_the_protocols_reply() {
        let keys = ["0".to_owned(), "65534".to_owned(), "web".to_owned()];
        let buckets = [
            (86_400, vec![(0, 5, 6), (2, -7, 8)]),
            (2 * 86_400, vec![(1, i64::MAX, i64::MIN)]),
            (40 * 86_400, vec![(0, 1, 1), (1, 2, 2), (2, 3, 3)]),
        ];
        for by in [HistoryBy::Label, HistoryBy::Uid, HistoryBy::Interface] {
            for period in [Period::Day, Period::Month] {
                assert_written_as_expected(&frame(period, by), &keys, &buckets);
            }
        }
        let mut empty = frame(Period::Hour, HistoryBy::Label);
        empty.recorded_until = None;
        assert_written_as_expected(&empty, &[], &[]);
    }

    #[test]
    fn uids_of_one_user_name_are_added_in_name_order() {
        // Keys as the query sorts them. uid 4294967 has no user: it is named "uid 4294967",
        // as is the (non-numeric) key "uid 4294967"; root sorts after "(unknown owner)".
        let keys = [
            UNKNOWN_OWNER.to_owned(),
            "0".to_owned(),
            "4294967".to_owned(),
            "uid 4294967".to_owned(),
        ];
        let buckets = [(
            0,
            vec![(0, 1, 2), (1, 10, 20), (2, 100, 200), (3, 1000, 2000)],
        )];
        let frame = frame(Period::Hour, HistoryBy::Uid);
        assert_written_as_expected(&frame, &keys, &buckets);
        let reply = HistoryLine::write(&frame, &keys, buckets.iter().cloned()).to_reply();
        let stats = &reply.buckets[0].stats;
        assert_eq!(stats.len(), 3, "{stats:?}");
        assert_eq!(stats[&owners::user_name(0)].tx_bytes, 10);
        assert_eq!(
            stats["uid 4294967"],
            HistoryCounts {
                tx_bytes: 1100,
                rx_bytes: 2200
            }
        );
    }

    #[test]
    fn names_are_escaped_like_serde_escapes_them() {
        let keys = [
            "quote\"back\\slash".to_owned(),
            "tab\tnew\nline\u{1}é".to_owned(),
        ];
        let buckets = [(0, vec![(0, 1, -1), (1, 0, 7)])];
        assert_written_as_expected(&frame(Period::Day, HistoryBy::Cgroup), &keys, &buckets);
    }
}
