//! The shapes of the usage history ops (`history`, `history_reset`) and of the history's
//! health in `status` and `debug_info` (docs/protocol.md, `history`).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The length of one history bucket.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum Period {
    /// Five minutes, aligned to the Unix epoch (so to the hour and the UTC day).
    #[serde(rename = "5min")]
    FiveMinutes,
    /// One hour, aligned to the Unix epoch.
    #[default]
    #[serde(rename = "hour")]
    Hour,
    /// One UTC day.
    #[serde(rename = "day")]
    Day,
    /// One billing month: from the configured billing day (the 1st unless set) at 00:00 UTC to
    /// the same day of the next month.
    #[serde(rename = "month")]
    Month,
}

impl Period {
    /// Every period, finest first.
    pub const ALL: [Period; 4] = [
        Period::FiveMinutes,
        Period::Hour,
        Period::Day,
        Period::Month,
    ];

    /// The period as written on the wire, in the config file and in the database.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Period::FiveMinutes => "5min",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// The period written as [`Period::name`] does.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|period| period.name() == name)
    }
}

/// What the keys of a history reply are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryBy {
    /// Label names (`unlabeled` included), all interfaces together.
    #[default]
    Label,
    /// Interface names, all labels together.
    Interface,
    /// The uid of the task that made the socket, as a user name (`uid <N>` without one).
    Uid,
    /// The cgroup v2 path of the task that made the socket.
    Cgroup,
    /// Destination classes and named networks (`host`, `private`, `internet`, the config's
    /// `network` names, `:unknown`), all labels and interfaces together.
    Destination,
}

impl HistoryBy {
    /// As written on the wire.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            HistoryBy::Label => "label",
            HistoryBy::Interface => "interface",
            HistoryBy::Uid => "uid",
            HistoryBy::Cgroup => "cgroup",
            HistoryBy::Destination => "destination",
        }
    }
}

/// What a `history` request asks for. Times are Unix seconds; a bucket is in the answer when
/// it starts at or after `since` and before `until`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// The bucket length.
    #[serde(default)]
    pub period: Period,
    /// The keys of each bucket's stats.
    #[serde(default)]
    pub by: HistoryBy,
    /// Only these labels (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Only these interfaces (all when empty). Not with `by` uid or cgroup: the kernel keeps
    /// owners' bytes without their interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    /// Only these destinations (classes or named networks; all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
    /// Only metered interfaces (the config file's `metered` globs). Not with `by` uid or cgroup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub metered: bool,
    /// Buckets that start at or after this time (Unix seconds); all when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    /// Buckets that start before this time (Unix seconds); all when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
}

/// Payload bytes of one key in one bucket. Signed: relabeling a live socket moves the bytes
/// it had moved under its old label to the new one, so the old label's bucket of that moment
/// can hold less than nothing (the sum over buckets is still the label's total).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryCounts {
    /// Payload bytes sent.
    pub tx_bytes: i64,
    /// Payload bytes received.
    pub rx_bytes: i64,
}

/// One bucket of a history reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryBucket {
    /// When the bucket starts, RFC 3339 in UTC.
    pub start: String,
    /// When the next bucket starts, RFC 3339 in UTC.
    pub end: String,
    /// Bytes per key (label, interface, user or cgroup, by the request's `by`); keys with no
    /// bytes in the bucket are left out.
    pub stats: BTreeMap<String, HistoryCounts>,
}

/// Reply to `history`: buckets oldest first, only those with bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryReply {
    /// The bucket length asked for.
    pub period: Period,
    /// The keys asked for.
    #[serde(default)]
    pub by: HistoryBy,
    /// The buckets, oldest first.
    pub buckets: Vec<HistoryBucket>,
    /// When the daemon last recorded (RFC 3339): bytes moved since are not in any bucket yet.
    #[serde(default)]
    pub recorded_until: Option<String>,
}

/// Reply to `history_reset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResetReply {
    /// The label whose history was forgotten, or `None` for all of it.
    pub label: Option<String>,
    /// Bucket rows deleted.
    pub rows_deleted: u64,
}

/// The history's health, in `status` and `debug_info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryStatus {
    /// The database file.
    pub path: String,
    /// True while the last recording went into the database.
    pub recording: bool,
    /// What is wrong and what to do, while recording fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the daemon last recorded (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_until: Option<String>,
    /// Seconds between recordings.
    pub interval_seconds: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_named_as_the_config_and_the_wire_write_them() {
        for period in Period::ALL {
            assert_eq!(Period::from_name(period.name()), Some(period));
            assert_eq!(
                serde_json::to_value(period).unwrap(),
                serde_json::Value::String(period.name().to_owned())
            );
        }
        assert_eq!(Period::from_name("week"), None);
    }

    #[test]
    fn a_bare_query_is_hourly_by_label() {
        let query: HistoryQuery = serde_json::from_str("{}").unwrap();
        assert_eq!(query, HistoryQuery::default());
        assert_eq!(query.period, Period::Hour);
        assert_eq!(
            serde_json::to_string(&query).unwrap(),
            r#"{"period":"hour","by":"label"}"#
        );
    }
}
