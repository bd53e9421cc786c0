//! The shapes of the `quotas` op: each configured quota's use of its current period
//! (docs/protocol.md, `quotas`; the config file's `quota` lines).
use serde::{Deserialize, Serialize};

use super::Period;

/// A quota's two thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaThreshold {
    /// The warning fraction of the limit (`warn=N%`, 80 % unless set).
    Warn,
    /// The limit itself.
    Limit,
}

impl QuotaThreshold {
    /// As written on the wire, in the database and in `SOCKSTATS_THRESHOLD`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            QuotaThreshold::Warn => "warn",
            QuotaThreshold::Limit => "limit",
        }
    }

    /// The threshold written as [`QuotaThreshold::name`] does.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [QuotaThreshold::Warn, QuotaThreshold::Limit]
            .into_iter()
            .find(|threshold| threshold.name() == name)
    }
}

/// Where a quota's use stands against its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaState {
    /// Below the warning threshold.
    Ok,
    /// At or over the warning threshold, below the limit.
    Warn,
    /// At or over the limit (nothing is blocked: sockstats only counts).
    Over,
}

/// The last time a quota's threshold fired (its command ran, or would have without one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaFired {
    /// Which threshold.
    pub threshold: QuotaThreshold,
    /// The start of the period it fired in (RFC 3339).
    pub period_start: String,
    /// When (RFC 3339).
    pub at: String,
}

/// One quota's use of its current period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaUse {
    /// The quota's config line, words joined by one space: its name.
    pub quota: String,
    /// The label, or `*` for every label together.
    pub label: String,
    /// The interface name or glob, or `*` for every interface.
    pub interface: String,
    /// Only metered interfaces count.
    pub metered: bool,
    /// `tx`, `rx` or `both`.
    pub direction: String,
    /// Hour, day or billing month.
    pub period: Period,
    /// The current period's start (RFC 3339).
    pub period_start: String,
    /// Its end (RFC 3339): the next period's start.
    pub period_end: String,
    /// Payload bytes recorded in the current period (as `history` has them).
    pub used_bytes: u64,
    /// The limit in bytes.
    pub limit_bytes: u64,
    /// The warning threshold, percent of the limit.
    pub warn_percent: u8,
    /// `used_bytes / limit_bytes`.
    pub used_ratio: f64,
    /// Where the use stands.
    pub state: QuotaState,
    /// The latest firing of any period, if any.
    pub last_fired: Option<QuotaFired>,
}

/// Reply of `quotas`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotasReply {
    /// In config file order.
    pub quotas: Vec<QuotaUse>,
    /// When the history was last recorded (RFC 3339): the uses are as of then.
    pub recorded_until: Option<String>,
}
