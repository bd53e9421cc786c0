//! `history` and `history_reset`: recorded usage from the history file
//! ([`crate::history`]), on a read-only connection of the request's own.
use sockstats_common::protocol::{HistoryBy, HistoryQuery, HistoryResetReply};

use super::{
    history_reply::{HistoryLine, ReplyFrame},
    Peer, Refusal,
};
use crate::{
    daemon::state::Daemon,
    destinations::UNKNOWN_DESTINATION,
    history::{
        query::{Group, Selection},
        rfc3339,
        store::DESTINATION_NOT_RECORDED,
        History,
    },
};

fn history_of(daemon: &Daemon) -> Result<&History, Refusal> {
    daemon
        .history()
        .map(AsRef::as_ref)
        .ok_or(Refusal::NoHistory)
}

/// The buckets of `query`, oldest first.
pub fn history(daemon: &Daemon, query: &HistoryQuery) -> Result<HistoryLine, Refusal> {
    let history = history_of(daemon)?;
    let dimension = match query.by {
        HistoryBy::Label | HistoryBy::Interface | HistoryBy::Destination => "label",
        HistoryBy::Uid => "uid",
        HistoryBy::Cgroup => "cgroup",
    };
    if dimension != "label"
        && (!query.labels.is_empty() || !query.interfaces.is_empty() || query.metered)
    {
        return Err(Refusal::HistoryOwnerFilter {
            by: query.by.name(),
        });
    }
    let names = &daemon.info().destinations;
    let known = |name: &str| {
        names.id(name).is_some() || [UNKNOWN_DESTINATION, DESTINATION_NOT_RECORDED].contains(&name)
    };
    if query.destinations.iter().any(|name| !known(name)) {
        // A network no longer configured (or named `#<id>` without its registry) is still
        // in the file: the file decides.
        let recorded = history.recorded_destinations().map_err(Refusal::History)?;
        if let Some(unknown) = query
            .destinations
            .iter()
            .find(|name| !known(name) && !recorded.contains(name))
        {
            return Err(Refusal::NoSuchDestination {
                name: unknown.clone(),
                known: names.all().join(", "),
            });
        }
    }
    let selection = Selection {
        period: query.period,
        dimension,
        group: match query.by {
            HistoryBy::Interface => Group::Interface,
            HistoryBy::Destination => Group::Destination,
            HistoryBy::Label | HistoryBy::Uid | HistoryBy::Cgroup => Group::Key,
        },
        keys: &query.labels,
        interfaces: &query.interfaces,
        destinations: &query.destinations,
        interface_globs: query.metered.then(|| history.metered().globs()),
        since: query.since,
        until: query.until,
    };
    history
        .query_streamed(&selection, |recorded_until, keys, buckets| {
            let frame = ReplyFrame {
                period: query.period,
                by: query.by,
                billing_day: history.billing_day(),
                recorded_until: recorded_until.map(rfc3339),
            };
            HistoryLine::write(&frame, keys, buckets)
        })
        .map_err(Refusal::History)
}

/// Forgets the recorded usage of `label`, or all of it (root only).
pub fn history_reset(
    daemon: &Daemon,
    peer: Peer,
    label: Option<&str>,
) -> Result<HistoryResetReply, Refusal> {
    peer.require_root("reset the usage history")?;
    let history = history_of(daemon)?;
    let deleted = history.reset(label).map_err(Refusal::History)?;
    log::info!(
        "usage history reset by uid {}: {} ({deleted} bucket rows)",
        peer.uid,
        label.map_or_else(
            || "every label".to_owned(),
            |label| format!("label {label:?}")
        )
    );
    Ok(HistoryResetReply {
        label: label.map(str::to_owned),
        rows_deleted: deleted as u64,
    })
}

#[cfg(test)]
mod tests {
    use sockstats_common::protocol::{HistoryCounts, HistoryReply, Period};

    use super::*;
    use crate::{
        daemon::tasks::history_recorder::record_now,
        history::clock::FakeClock,
        ops::testing::{peer, Fixture},
    };

    #[test]
    fn answers_buckets_per_key_from_the_recorded_kernel_totals() {
        let test = Fixture::new();
        let clock = FakeClock::at(1_764_633_600); // 2025-12-02T00:00:00Z
        let history = test.with_history(&clock);
        let web = test
            .daemon
            .with_core(|core| core.labels.get_or_create("web").unwrap());
        test.add_payload(web, 2, 100, 10);
        record_now(&test.daemon, &history).unwrap();
        clock.advance(3600);
        test.add_payload(web, 2, 1000, 1);
        test.add_payload(0, 2, 5, 5);
        record_now(&test.daemon, &history).unwrap();
        clock.advance(60);
        test.add_payload(web, 2, 7, 0);
        record_now(&test.daemon, &history).unwrap();

        let reply = history_reply(&test, &HistoryQuery::default());
        assert_eq!(reply.period, Period::Hour);
        assert_eq!(reply.buckets.len(), 1);
        let bucket = &reply.buckets[0];
        assert_eq!(
            (bucket.start.as_str(), bucket.end.as_str()),
            ("2025-12-02T01:00:00Z", "2025-12-02T02:00:00Z")
        );
        assert_eq!(
            bucket.stats["web"],
            HistoryCounts {
                tx_bytes: 1007,
                rx_bytes: 1
            }
        );
        assert_eq!(bucket.stats["unlabeled"].tx_bytes, 5);
        assert_eq!(
            reply.recorded_until.as_deref(),
            Some("2025-12-02T01:01:00Z")
        );

        let by_interface = history_reply(
            &test,
            &HistoryQuery {
                by: HistoryBy::Interface,
                period: Period::Day,
                labels: vec!["web".to_owned()],
                ..HistoryQuery::default()
            },
        );
        assert_eq!(by_interface.buckets[0].stats["eth0"].tx_bytes, 1007);
        assert_eq!(by_interface.buckets[0].end, "2025-12-03T00:00:00Z");
        let status = crate::ops::status::status(&test.daemon).history.unwrap();
        assert!(status.recording, "{status:?}");
    }

    fn history_reply(test: &Fixture, query: &HistoryQuery) -> HistoryReply {
        history(&test.daemon, query).unwrap().to_reply()
    }

    #[test]
    fn refusals_say_why() {
        let test = Fixture::new();
        let none = history(&test.daemon, &HistoryQuery::default()).unwrap_err();
        assert_eq!(none.to_string(), "this daemon keeps no usage history");
        let clock = FakeClock::at(0);
        test.with_history(&clock);
        let owner_filter = history(
            &test.daemon,
            &HistoryQuery {
                by: HistoryBy::Uid,
                interfaces: vec!["eth0".to_owned()],
                ..HistoryQuery::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            owner_filter.code(),
            sockstats_common::protocol::ErrorCode::BadRequest
        );
        let reset = history_reset(&test.daemon, peer(1000), None).unwrap_err();
        assert_eq!(
            reset.code(),
            sockstats_common::protocol::ErrorCode::NotPermitted
        );
        assert_eq!(
            history_reset(&test.daemon, peer(0), Some("web"))
                .unwrap()
                .rows_deleted,
            0
        );
    }
}
