//! One reading of everything sockstats exports: the per-label, per-route totals and the
//! daemon's health. The metrics endpoint renders it as Prometheus text, the OTLP exporter
//! ([`crate::otlp`]) as OTLP metrics: both show the same counters. The quotas' use (from the
//! history file) is the endpoint's only.
use std::collections::BTreeMap;

use sockstats_common::IfaceCounters;

use super::{Health, QuotaRatio};
use crate::{
    daemon::state::Daemon,
    ops::{
        naming::{self, NamedRoute},
        status::counters_by_name,
        Refusal,
    },
};

/// Label name → route (interface and destination names) → counters, and the health beside
/// them.
#[derive(Debug, Clone, Default)]
pub struct Exported {
    pub labels: BTreeMap<String, BTreeMap<NamedRoute, IfaceCounters>>,
    pub health: Health,
}

/// Reads the kernel's maps once and names everything (blocking: call it off the async
/// workers).
pub fn collect(daemon: &Daemon) -> Result<Exported, Refusal> {
    let named = naming::named_totals(daemon)?;
    let maps = daemon.with_core(|core| core.kernel.fill());
    let live_sockets = named.snapshot.live_sockets();
    let health = Health {
        counters: counters_by_name(named.snapshot.counters),
        maps,
        programs_attached: daemon
            .info()
            .programs
            .iter()
            .filter(|p| p.prog_id.is_some())
            .count(),
        programs_expected: daemon.info().programs.len(),
        live_sockets,
        overflow: named.snapshot.overflow(),
        wire_overflow: named.snapshot.wire_overflow(),
        quotas: quota_ratios(daemon),
    };
    Ok(Exported {
        labels: named.labels,
        health,
    })
}

/// Each quota's used ratio; none while the history cannot be read (`status` says why).
fn quota_ratios(daemon: &Daemon) -> Vec<QuotaRatio> {
    let Some(history) = daemon.history() else {
        return Vec::new();
    };
    if history.quotas().is_empty() {
        return Vec::new();
    }
    let Ok((uses, _)) = history.quota_uses() else {
        return Vec::new();
    };
    history
        .quotas()
        .iter()
        .zip(uses)
        .map(|(quota, usage)| QuotaRatio {
            quota: quota.text.clone(),
            label: quota.label_name().to_owned(),
            interface: quota.interface_name(),
            period: quota.period.name(),
            ratio: usage.ratio(quota),
        })
        .collect()
}
