//! `quotas`: each configured quota's use of its current period, read from the history file
//! ([`crate::history::quota`]) on a read-only connection of the request's own.
use sockstats_common::protocol::{QuotaFired, QuotaUse, QuotasReply};

use super::Refusal;
use crate::{daemon::state::Daemon, history::rfc3339};

/// The quotas, in config file order (none configured: an empty list).
pub fn quotas(daemon: &Daemon) -> Result<QuotasReply, Refusal> {
    let history = daemon.history().ok_or(Refusal::NoHistory)?;
    if history.quotas().is_empty() {
        return Ok(QuotasReply {
            quotas: Vec::new(),
            recorded_until: None,
        });
    }
    let (uses, recorded_until) = history.quota_uses().map_err(Refusal::History)?;
    Ok(QuotasReply {
        quotas: history
            .quotas()
            .iter()
            .zip(uses)
            .map(|(quota, usage)| QuotaUse {
                quota: quota.text.clone(),
                label: quota.label_name().to_owned(),
                interface: quota.interface_name(),
                metered: quota.metered,
                direction: quota.direction.name().to_owned(),
                period: quota.period,
                period_start: rfc3339(usage.period_start),
                period_end: rfc3339(usage.period_end),
                used_bytes: usage.used,
                limit_bytes: quota.limit,
                warn_percent: quota.warn_percent,
                used_ratio: usage.ratio(quota),
                state: usage.state(quota),
                last_fired: usage
                    .last_fired
                    .map(|(threshold, period_start, at)| QuotaFired {
                        threshold,
                        period_start: rfc3339(period_start),
                        at: rfc3339(at),
                    }),
            })
            .collect(),
        recorded_until: recorded_until.map(rfc3339),
    })
}
