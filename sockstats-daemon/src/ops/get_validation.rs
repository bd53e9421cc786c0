//! `get_validation`: per-label bytes from the kernel's own TCP counters (`tcp_info`), an
//! independent check of the payload counts of `get`.
//!
//! Covered: TCP sockets that sockstats tracks (they have a socket state). Live ones of the
//! daemon's network namespace through a `sock_diag` dump at query time, labeled through the
//! live socket states; with `--validate-closed`, closed ones in every namespace: the kernel
//! adds each TCP socket's final `bytes_acked` and `bytes_received` to its label when it reaches
//! `TCP_CLOSE` (the `inet_sock_set_state` program is attached only then). Nothing is done for
//! validation until it is asked for: the dump runs per query, and the close hook only exists
//! with `--validate-closed`.
//!
//! A socket counts once: once it reached `TCP_CLOSE` (and was counted as closed) a dump that
//! still lists it leaves it out. The kernel counts one more byte for the SYN in `bytes_acked`
//! of the connecting side, and one for a FIN in `bytes_acked` (sender) and `bytes_received`
//! (receiver): after a transfer and a close the kernel's numbers exceed the payload by at most
//! 2 per socket in each direction. `bytes_received` also counts bytes received but not yet read
//! by the application.
use std::collections::{BTreeMap, HashMap};

use sockstats_common::{
    protocol::{ByteCounts, ValidationReply},
    Counter, Totals,
};

use super::{
    naming::{byte_counts, label_name},
    Refusal,
};
use crate::{daemon::state::Daemon, sys::sock_diag::TcpCounters};

/// `TCP_CLOSE` (`include/net/tcp_states.h`).
const TCP_CLOSE: u8 = 7;

/// What `get_validation` covers, as the reply says it, with `--validate-closed`.
pub const COVERS: &str = "TCP sockets tracked by sockstats: live ones of the daemon's network \
    namespace (sock_diag dump now) and, in every namespace, those that reached TCP_CLOSE while \
    the daemon ran with --validate-closed (their final counters, added by the kernel). tx = \
    tcp_info bytes_acked, rx = bytes_received; the kernel counts SYN and FIN as one byte each. \
    UDP is not covered.";

/// What `get_validation` covers without `--validate-closed`.
pub const COVERS_LIVE_ONLY: &str = "live TCP sockets tracked by sockstats in the daemon's \
    network namespace (sock_diag dump now); closed sockets are not covered (start sockstatsd \
    with --validate-closed for them). tx = tcp_info bytes_acked, rx = bytes_received; the \
    kernel counts the SYN as one byte. UDP is not covered.";

pub fn get_validation(daemon: &Daemon) -> Result<ValidationReply, Refusal> {
    let closed_covered = daemon.info().validate_closed;
    // The dump and the reads below take the core lock apart: other requests go between.
    let dump = daemon.with_core(|core| core.kernel.live_tcp_counters());
    // A socket can appear twice in a dump that races socket churn: one entry per cookie.
    let dumped: HashMap<u64, TcpCounters> = dump
        .map_err(Refusal::DumpTcp)?
        .into_iter()
        .filter(|s| !(closed_covered && s.state == TCP_CLOSE))
        .map(|s| (s.cookie, s))
        .collect();
    let (records, closed, closed_tcp_sockets, label_names) = daemon.with_core(|core| {
        let records = core
            .kernel
            .live_socket_records()
            .map_err(Refusal::ListSockets)?;
        let closed = core
            .kernel
            .closed_tcp_counters()
            .map_err(Refusal::ReadClosedTcp)?;
        let counters = core.kernel.counters().map_err(Refusal::ReadCounters)?;
        Ok::<_, Refusal>((
            records,
            closed,
            counters[Counter::ValidatedClosed as usize],
            core.label_names(),
        ))
    })?;
    let labels: HashMap<u64, u32> = records
        .into_iter()
        .map(|record| (record.cookie, record.label))
        .collect();
    let mut by_label: BTreeMap<u32, Totals> = BTreeMap::new();
    let mut live_tcp_sockets = 0;
    for (cookie, counters) in &dumped {
        // Sockets without a state are not sockets sockstats accounts.
        let Some(label) = labels.get(cookie) else {
            continue;
        };
        live_tcp_sockets += 1;
        by_label
            .entry(*label)
            .or_default()
            .add(Totals::new(counters.bytes_acked, counters.bytes_received));
    }
    for (label, totals) in closed {
        by_label.entry(label).or_default().add(totals);
    }
    let mut reply = ValidationReply {
        live_tcp_sockets,
        closed_tcp_sockets,
        covers: if closed_covered {
            COVERS
        } else {
            COVERS_LIVE_ONLY
        }
        .to_owned(),
        closed_covered,
        ..ValidationReply::default()
    };
    reply
        .stats
        .insert("unlabeled".to_owned(), ByteCounts::default());
    for name in label_names.values() {
        reply.stats.insert(name.clone(), ByteCounts::default());
    }
    for (label, totals) in by_label {
        reply
            .stats
            .insert(label_name(&label_names, label), byte_counts(totals));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use sockstats_common::protocol::ErrorCode;

    use super::*;
    use crate::ops::testing::Fixture;

    fn tcp(cookie: u64, acked: u64, received: u64, state: u8) -> TcpCounters {
        TcpCounters {
            cookie,
            bytes_acked: acked,
            bytes_received: received,
            state,
        }
    }

    #[test]
    fn sums_tracked_live_sockets_and_closed_ones_per_label() {
        let test = Fixture::with_info(|info| info.validate_closed = true);
        test.daemon.with_core(|core| {
            core.labels.get_or_create("web").unwrap();
            core.labels.get_or_create("quiet").unwrap();
        });
        test.with_kernel(|kernel| {
            kernel.add_socket(1, 1, Totals::default());
            kernel.add_socket(2, 1, Totals::default());
            kernel.add_socket(3, 0, Totals::default());
            // 1 twice (a dump racing churn), 3 closed (counted by the kernel already), 4
            // untracked.
            kernel.live_tcp = vec![
                tcp(1, 101, 11, 1),
                tcp(1, 101, 11, 1),
                tcp(2, 50, 5, 1),
                tcp(3, 9, 9, TCP_CLOSE),
                tcp(4, 1000, 1000, 1),
            ];
            kernel.closed_tcp.insert(1, Totals::new(1000, 2));
            kernel.snapshot.counters[Counter::ValidatedClosed as usize] = 3;
        });
        let reply = get_validation(&test.daemon).unwrap();
        assert_eq!(reply.live_tcp_sockets, 2);
        assert_eq!(reply.closed_tcp_sockets, 3);
        assert!(reply.closed_covered);
        assert_eq!(reply.covers, COVERS);
        assert_eq!(
            reply.stats["web"],
            ByteCounts {
                tx_bytes: 1151,
                rx_bytes: 18
            }
        );
        assert_eq!(reply.stats["quiet"], ByteCounts::default());
        assert_eq!(reply.stats["unlabeled"], ByteCounts::default());
    }

    #[test]
    fn without_validate_closed_a_closing_socket_still_counts_live() {
        let test = Fixture::new();
        test.with_kernel(|kernel| {
            kernel.add_socket(3, 0, Totals::default());
            kernel.live_tcp = vec![tcp(3, 9, 8, TCP_CLOSE)];
        });
        let reply = get_validation(&test.daemon).unwrap();
        assert_eq!(reply.covers, COVERS_LIVE_ONLY);
        assert_eq!(
            reply.stats["unlabeled"],
            ByteCounts {
                tx_bytes: 9,
                rx_bytes: 8
            }
        );
        test.with_kernel(|kernel| kernel.fail_reads = true);
        let refused = get_validation(&test.daemon).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::Failed);
        assert!(
            refused
                .to_string()
                .starts_with("cannot dump TCP sockets over sock_diag: "),
            "{refused}"
        );
    }
}
