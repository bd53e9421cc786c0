//! The `history` op's reply as the daemon holds it: a query's [`Answer`] with its keys named
//! once. It serializes to exactly the JSON of [`HistoryReply`] (a unit test compares the two)
//! without a `String` and a map entry per (bucket, key): three years of days of 1,000 labels
//! are 1.1 million of those (docs/benchmarks.md, "The usage history").
use serde::{ser::SerializeMap as _, ser::SerializeSeq as _, ser::SerializeStruct as _};
use serde::{Serialize, Serializer};
use sockstats_common::protocol::{HistoryBucket, HistoryBy, HistoryCounts, HistoryReply, Period};

use crate::{
    history::{
        calendar,
        query::{Answer, Bucket},
        rfc3339,
        samples::UNKNOWN_OWNER,
    },
    sys::owners,
};

/// A `history` reply: buckets oldest first, each with (index into `names`, tx, rx) in name
/// order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryAnswer {
    pub period: Period,
    pub by: HistoryBy,
    billing_day: u8,
    /// What the buckets' sums are named, sorted and unique.
    names: Vec<String>,
    buckets: Vec<Bucket>,
    pub recorded_until: Option<String>,
}

impl HistoryAnswer {
    /// The reply of `answer`, keys named for `by` (uids as user names, and the sums of two
    /// uids of one name added).
    #[must_use]
    pub fn new(
        answer: Answer,
        period: Period,
        by: HistoryBy,
        billing_day: u8,
        recorded_until: Option<String>,
    ) -> Self {
        let (names, buckets) = if by == HistoryBy::Uid {
            user_named(answer)
        } else {
            (answer.keys, answer.buckets)
        };
        Self {
            period,
            by,
            billing_day,
            names,
            buckets,
            recorded_until,
        }
    }

    /// (day, key) sums in all buckets.
    #[must_use]
    pub fn sums(&self) -> usize {
        self.buckets.iter().map(|(_, sums)| sums.len()).sum()
    }

    /// The same reply as the protocol's type (what a client decodes).
    #[must_use]
    pub fn to_reply(&self) -> HistoryReply {
        HistoryReply {
            period: self.period,
            by: self.by,
            buckets: self
                .buckets
                .iter()
                .map(|(start, sums)| HistoryBucket {
                    start: rfc3339(*start),
                    end: self.end(*start),
                    stats: sums
                        .iter()
                        .map(|&(name, tx_bytes, rx_bytes)| {
                            (
                                self.names[name].clone(),
                                HistoryCounts { tx_bytes, rx_bytes },
                            )
                        })
                        .collect(),
                })
                .collect(),
            recorded_until: self.recorded_until.clone(),
        }
    }

    fn end(&self, start: i64) -> String {
        rfc3339(calendar::bucket_end(self.period, start, self.billing_day))
    }
}

/// `answer` with uid keys replaced by user names, sorted and unique, and each bucket's sums
/// re-indexed to them in name order (two uids can share a name: their sums are added).
fn user_named(answer: Answer) -> (Vec<String>, Vec<Bucket>) {
    let user_names: Vec<String> = answer
        .keys
        .iter()
        .map(|key| match key.parse() {
            Ok(uid) if key != UNKNOWN_OWNER => owners::user_name(uid),
            _ => key.clone(),
        })
        .collect();
    let mut names = user_names.clone();
    names.sort_unstable();
    names.dedup();
    let index_of: Vec<usize> = user_names
        .iter()
        .map(|name| names.binary_search(name).expect("every name is in names"))
        .collect();
    let buckets = answer
        .buckets
        .into_iter()
        .map(|(start, sums)| {
            let mut renamed: Vec<(usize, i64, i64)> = Vec::with_capacity(sums.len());
            let mut sorted: Vec<(usize, i64, i64)> = sums
                .into_iter()
                .map(|(key, tx, rx)| (index_of[key], tx, rx))
                .collect();
            sorted.sort_by_key(|&(name, ..)| name);
            for (name, tx, rx) in sorted {
                match renamed.last_mut() {
                    Some(last) if last.0 == name => {
                        last.1 = last.1.saturating_add(tx);
                        last.2 = last.2.saturating_add(rx);
                    }
                    _ => renamed.push((name, tx, rx)),
                }
            }
            (start, renamed)
        })
        .collect();
    (names, buckets)
}

impl Serialize for HistoryAnswer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Field for field what `#[derive(Serialize)]` writes for `HistoryReply`.
        let mut reply = serializer.serialize_struct("HistoryReply", 4)?;
        reply.serialize_field("period", &self.period)?;
        reply.serialize_field("by", &self.by)?;
        reply.serialize_field("buckets", &Buckets(self))?;
        reply.serialize_field("recorded_until", &self.recorded_until)?;
        reply.end()
    }
}

/// The `buckets` array of a [`HistoryAnswer`].
struct Buckets<'a>(&'a HistoryAnswer);

impl Serialize for Buckets<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let answer = self.0;
        let mut buckets = serializer.serialize_seq(Some(answer.buckets.len()))?;
        for (start, sums) in &answer.buckets {
            buckets.serialize_element(&BucketOf {
                start: rfc3339(*start),
                end: answer.end(*start),
                stats: Stats {
                    names: &answer.names,
                    sums,
                },
            })?;
        }
        buckets.end()
    }
}

/// One bucket, as [`HistoryBucket`] writes it.
#[derive(Serialize)]
#[serde(rename = "HistoryBucket")]
struct BucketOf<'a> {
    start: String,
    end: String,
    stats: Stats<'a>,
}

/// A bucket's `stats` map: name → counts, in name order like the `BTreeMap` it stands for.
struct Stats<'a> {
    names: &'a [String],
    sums: &'a [(usize, i64, i64)],
}

impl Serialize for Stats<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut stats = serializer.serialize_map(Some(self.sums.len()))?;
        for &(name, tx_bytes, rx_bytes) in self.sums {
            stats.serialize_entry(&self.names[name], &HistoryCounts { tx_bytes, rx_bytes })?;
        }
        stats.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Answer {
        Answer {
            keys: vec!["0".to_owned(), "65534".to_owned(), "web".to_owned()],
            buckets: vec![
                (86_400, vec![(0, 5, 6), (2, -7, 8)]),
                (2 * 86_400, vec![(1, i64::MAX, i64::MIN)]),
                (40 * 86_400, vec![(0, 1, 1), (1, 2, 2), (2, 3, 3)]),
            ],
        }
    }

    #[test]
    fn writes_the_json_of_the_protocols_reply() {
        for by in [HistoryBy::Label, HistoryBy::Uid, HistoryBy::Interface] {
            for period in [Period::Day, Period::Month] {
                let reply = HistoryAnswer::new(
                    answer(),
                    period,
                    by,
                    15,
                    Some("1970-02-10T00:00:00Z".to_owned()),
                );
                let protocol = reply.to_reply();
                assert_eq!(
                    serde_json::to_string(&reply).unwrap(),
                    serde_json::to_string(&protocol).unwrap(),
                    "{by:?} {period:?}"
                );
                assert_eq!(reply.sums(), 6);
            }
        }
        let empty = HistoryAnswer::new(Answer::default(), Period::Hour, HistoryBy::Label, 1, None);
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            serde_json::to_string(&empty.to_reply()).unwrap()
        );
    }

    #[test]
    fn uids_of_one_user_name_are_added_in_name_order() {
        // Keys as the query sorts them. uid 4294967 has no user: it is named "uid 4294967",
        // as is the (non-numeric) key "uid 4294967"; root sorts after "(unknown owner)".
        let answer = Answer {
            keys: vec![
                UNKNOWN_OWNER.to_owned(),
                "0".to_owned(),
                "4294967".to_owned(),
                "uid 4294967".to_owned(),
            ],
            buckets: vec![(
                0,
                vec![(0, 1, 2), (1, 10, 20), (2, 100, 200), (3, 1000, 2000)],
            )],
        };
        let reply = HistoryAnswer::new(answer, Period::Hour, HistoryBy::Uid, 1, None);
        let protocol = reply.to_reply();
        let stats = &protocol.buckets[0].stats;
        assert_eq!(stats.len(), 3, "{stats:?}");
        assert_eq!(
            stats[UNKNOWN_OWNER],
            HistoryCounts {
                tx_bytes: 1,
                rx_bytes: 2
            }
        );
        assert_eq!(stats[&owners::user_name(0)].tx_bytes, 10);
        assert_eq!(
            stats["uid 4294967"],
            HistoryCounts {
                tx_bytes: 1100,
                rx_bytes: 2200
            }
        );
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            serde_json::to_string(&protocol).unwrap()
        );
    }
}
