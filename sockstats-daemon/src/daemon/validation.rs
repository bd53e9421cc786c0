//! Validation: per-label bytes from the kernel's own TCP counters (`tcp_info`), an independent
//! check of the payload counts of `get`.
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
    protocol::{encode_ok, ByteCounts, ValidationReply},
    Counter, Totals,
};

use super::{state::Daemon, views};
use crate::sys::sock_diag;

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

/// Answers `get_validation`.
pub fn get_validation(daemon: &Daemon) -> Result<String, String> {
    let closed_covered = daemon.info.validate_closed;
    // A socket can appear twice in a dump that races socket churn: one entry per cookie.
    let dumped: HashMap<u64, sock_diag::TcpCounters> = sock_diag::dump_tcp()
        .map_err(|error| format!("cannot dump TCP sockets over sock_diag: {error}"))?
        .into_iter()
        .filter(|s| !(closed_covered && s.state == TCP_CLOSE))
        .map(|s| (s.cookie, s))
        .collect();
    let labels: HashMap<u64, u32> = views::live_sockets(daemon)?
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
    let (closed, closed_tcp_sockets) = {
        let kernel = daemon.kernel.lock().expect("kernel lock");
        let closed = kernel
            .validation()
            .map_err(|error| format!("cannot read the closed sockets' counters: {error}"))?;
        let counters = kernel
            .counters()
            .map_err(|error| format!("cannot read the kernel's counters: {error}"))?;
        (closed, counters[Counter::ValidatedClosed as usize])
    };
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
    let registry = daemon.registry.lock().expect("registry lock");
    reply
        .stats
        .insert("unlabeled".to_owned(), ByteCounts::default());
    for (_, name) in registry.iter() {
        reply.stats.insert(name.to_owned(), ByteCounts::default());
    }
    for (label, totals) in by_label {
        reply.stats.insert(
            views::label_name(&registry, label),
            ByteCounts {
                tx_bytes: totals.tx_bytes,
                rx_bytes: totals.rx_bytes,
            },
        );
    }
    Ok(encode_ok(&reply))
}
