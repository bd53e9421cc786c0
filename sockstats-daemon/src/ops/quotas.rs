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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use sockstats_common::protocol::{HistoryQuery, Period, QuotaState, QuotaThreshold};

    use super::*;
    use crate::{
        daemon::tasks::history_recorder::record_now, history::clock::FakeClock,
        ops::testing::Fixture,
    };

    #[test]
    fn answers_each_quota_as_history_has_it_and_the_metric_agrees() {
        let test = Fixture::with_info(|info| {
            info.config = crate::config::parse(
                "quota web day 1KB warn=50%\nquota * interface=lo hour 1GB",
                Path::new("test.conf"),
            )
            .unwrap();
        });
        assert!(matches!(quotas(&test.daemon), Err(Refusal::NoHistory)));
        let clock = FakeClock::at(1_764_633_600 + 7200); // 2025-12-02T02:00:00Z
        let history = test.with_history(&clock);
        let web = test
            .daemon
            .with_core(|core| core.labels.get_or_create("web").unwrap());
        record_now(&test.daemon, &history).unwrap();
        test.add_payload(web, 2, 400, 200);
        clock.advance(60);
        let recorded = record_now(&test.daemon, &history).unwrap();
        assert_eq!(recorded.crossings.len(), 1);
        assert_eq!(recorded.crossings[0].threshold, QuotaThreshold::Warn);

        let reply = quotas(&test.daemon).unwrap();
        let [web_quota, lo_quota] = &reply.quotas[..] else {
            panic!("{reply:?}");
        };
        let day = crate::ops::history::history(
            &test.daemon,
            &HistoryQuery {
                period: Period::Day,
                labels: vec!["web".to_owned()],
                ..HistoryQuery::default()
            },
        )
        .unwrap()
        .to_reply();
        let counts = &day.buckets[0].stats["web"];
        assert_eq!(
            web_quota.used_bytes,
            u64::try_from(counts.tx_bytes + counts.rx_bytes).unwrap()
        );
        assert_eq!(web_quota.used_bytes, 600);
        assert_eq!(
            (web_quota.limit_bytes, web_quota.state),
            (1000, QuotaState::Warn)
        );
        assert!((web_quota.used_ratio - 0.6).abs() < 1e-9);
        assert_eq!(web_quota.period_start, "2025-12-02T00:00:00Z");
        assert_eq!(web_quota.period_end, "2025-12-03T00:00:00Z");
        let fired = web_quota.last_fired.as_ref().unwrap();
        assert_eq!(
            (fired.threshold, fired.at.as_str()),
            (QuotaThreshold::Warn, "2025-12-02T02:01:00Z")
        );
        // The fixture's interface 2 is eth0: nothing on lo.
        assert_eq!(
            (lo_quota.label.as_str(), lo_quota.interface.as_str()),
            ("*", "lo")
        );
        assert_eq!((lo_quota.used_bytes, lo_quota.state), (0, QuotaState::Ok));
        assert!(lo_quota.last_fired.is_none());
        assert_eq!(
            reply.recorded_until.as_deref(),
            Some("2025-12-02T02:01:00Z")
        );

        let exported = crate::metrics::collect::collect(&test.daemon).unwrap();
        let ratios: Vec<(&str, f64)> = exported
            .health
            .quotas
            .iter()
            .map(|quota| (quota.quota.as_str(), quota.ratio))
            .collect();
        assert_eq!(
            ratios,
            [
                ("quota web day 1KB warn=50%", web_quota.used_ratio),
                ("quota * interface=lo hour 1GB", 0.0)
            ]
        );
    }
}
