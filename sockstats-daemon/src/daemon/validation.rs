//! Validation: per-label bytes from the kernel's own TCP counters (`tcp_info` via `sock_diag`),
//! an independent check of the payload counts of `get`.
//!
//! Covered: TCP sockets that sockstats tracks (in the accounted cgroup subtree) and that live
//! in the daemon's network namespace: live ones through a `sock_diag` dump at query time, closed
//! ones through `sock_diag` destroy notifications received while the daemon runs (the label comes
//! from the socket's tombstone). Not covered: UDP (the kernel keeps no byte counters for it),
//! sockets in other network namespaces, and sockets destroyed while the daemon was down.
//!
//! The kernel counts one more byte for the SYN in `bytes_acked` of the connecting side, and one
//! for a FIN in `bytes_acked` (sender) and `bytes_received` (receiver): after a transfer and a
//! close the kernel's numbers exceed the payload by at most 2 per socket in each direction.
//! `bytes_received` also counts bytes received but not yet read by the application.
use std::sync::Arc;

use sockstats_common::{
    protocol::{encode_ok, ByteCounts, ValidationReply},
    Totals, UNLABELED_ID,
};

use super::{state::Daemon, views};
use crate::sys::sock_diag::{self, DestroyListener};

/// What `get_validation` covers, as the reply says it.
pub const COVERS: &str = "TCP sockets tracked by sockstats in the daemon's network namespace: \
    live ones (sock_diag dump now) and those destroyed while the daemon ran (sock_diag destroy \
    notifications). tx = tcp_info bytes_acked, rx = bytes_received; the kernel counts SYN and \
    FIN as one byte each. UDP is not covered.";

/// Answers `get_validation`.
pub fn get_validation(daemon: &Daemon) -> Result<String, String> {
    let snapshot = views::snapshot(daemon)?;
    let live = sock_diag::dump_tcp()
        .map_err(|error| format!("cannot dump TCP sockets over sock_diag: {error}"))?;
    let mut by_label: std::collections::BTreeMap<u32, Totals> = std::collections::BTreeMap::new();
    let mut live_tcp_sockets = 0;
    for socket in live {
        if !snapshot.sockets.contains_key(&socket.cookie) {
            continue; // not a socket sockstats accounts
        }
        live_tcp_sockets += 1;
        let label = snapshot
            .socket_labels
            .get(&socket.cookie)
            .copied()
            .unwrap_or(UNLABELED_ID);
        by_label
            .entry(label)
            .or_default()
            .add(Totals::new(socket.bytes_acked, socket.bytes_received));
    }
    let closed_tcp_sockets = {
        let closed = daemon.closed_tcp.lock().expect("closed tcp lock");
        for (label, totals) in &closed.by_label {
            by_label.entry(*label).or_default().add(*totals);
        }
        closed.sockets
    };
    let registry = daemon.registry.lock().expect("registry lock");
    let mut reply = ValidationReply {
        live_tcp_sockets,
        closed_tcp_sockets,
        covers: COVERS.to_owned(),
        ..ValidationReply::default()
    };
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

/// Collects the final counters of destroyed TCP sockets, on a thread of its own, for as long
/// as the daemon runs.
pub fn follow_destroyed_sockets(daemon: Arc<Daemon>) {
    let listener = match DestroyListener::open() {
        Ok(listener) => listener,
        Err(error) => {
            log::warn!("validation will not cover closed sockets: cannot subscribe to sock_diag destroy notifications: {error}");
            return;
        }
    };
    std::thread::spawn(move || loop {
        let destroyed = match listener.next() {
            Ok(destroyed) => destroyed,
            Err(error) => {
                log::warn!("sock_diag destroy notifications: {error}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        for socket in destroyed {
            let label = daemon
                .kernel
                .lock()
                .expect("kernel lock")
                .released_label(socket.cookie);
            let Some(label) = label else {
                continue; // not tracked by sockstats (or its tombstone is gone)
            };
            let mut closed = daemon.closed_tcp.lock().expect("closed tcp lock");
            closed
                .by_label
                .entry(label)
                .or_default()
                .add(Totals::new(socket.bytes_acked, socket.bytes_received));
            closed.sockets += 1;
        }
    });
}
