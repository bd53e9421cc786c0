//! Validation: per-label bytes from the kernel's own TCP counters (`tcp_info` via `sock_diag`),
//! an independent check of the payload counts of `get`.
//!
//! Covered: TCP sockets that sockstats tracks (in the accounted cgroup subtree) and that live
//! in the daemon's network namespace: live ones through a `sock_diag` dump at query time, and,
//! with `--validate-closed`, closed ones through `sock_diag` destroy notifications received
//! while the daemon runs (the label comes from the socket's tombstone). Nothing is done for
//! validation until it is asked for: the dump runs per query, and the destroy subscription
//! (which makes the kernel build a message for every TCP socket it destroys, host-wide) only
//! exists with `--validate-closed`. Not covered: UDP (the kernel keeps no byte counters for it),
//! sockets in other network namespaces, and sockets destroyed while the daemon was down.
//!
//! Sockets the application closed but the kernel has not destroyed yet (`FIN_WAIT`, `LAST_ACK`,
//! a peer still draining) are in the dump, labeled through their tombstone; a socket is
//! counted once, from the dump or from its destroy notification, never both. Closed sockets
//! are missed when the kernel drops notifications (counted as `notifications_lost`) or when a
//! socket's tombstone was evicted before its notification came (`closed_without_label`, which
//! also counts every untracked socket).
//!
//! The kernel counts one more byte for the SYN in `bytes_acked` of the connecting side, and one
//! for a FIN in `bytes_acked` (sender) and `bytes_received` (receiver): after a transfer and a
//! close the kernel's numbers exceed the payload by at most 2 per socket in each direction.
//! `bytes_received` also counts bytes received but not yet read by the application.
use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::Arc,
};

use sockstats_common::{
    protocol::{encode_ok, ByteCounts, ValidationReply},
    Totals, UNLABELED_ID,
};

use super::{state::Daemon, views};
use crate::sys::sock_diag::{self, DestroyListener};

/// What `get_validation` covers, as the reply says it, with `--validate-closed`.
pub const COVERS: &str = "TCP sockets tracked by sockstats in the daemon's network namespace: \
    live ones (sock_diag dump now) and those destroyed while the daemon ran (sock_diag destroy \
    notifications). tx = tcp_info bytes_acked, rx = bytes_received; the kernel counts SYN and \
    FIN as one byte each. UDP is not covered.";

/// What `get_validation` covers without `--validate-closed`.
pub const COVERS_LIVE_ONLY: &str = "live TCP sockets tracked by sockstats in the daemon's \
    network namespace (sock_diag dump now); closed sockets are not covered (start sockstatsd \
    with --validate-closed for them). tx = tcp_info bytes_acked, rx = bytes_received; the \
    kernel counts the SYN as one byte. UDP is not covered.";

/// Answers `get_validation`.
pub fn get_validation(daemon: &Daemon) -> Result<String, String> {
    let snapshot = views::snapshot(daemon)?;
    // A socket can appear twice in a dump that races socket churn: one entry per cookie.
    let live: HashMap<u64, (u64, u64)> = sock_diag::dump_tcp()
        .map_err(|error| format!("cannot dump TCP sockets over sock_diag: {error}"))?
        .into_iter()
        .map(|s| (s.cookie, (s.bytes_acked, s.bytes_received)))
        .collect();
    // Sockets already folded (closed by the application) but not yet destroyed by the kernel
    // are still in the dump: their label comes from their tombstone.
    let folded_labels: HashMap<u64, u32> = {
        let kernel = daemon.kernel.lock().expect("kernel lock");
        live.keys()
            .filter(|cookie| !snapshot.is_live(**cookie))
            .filter_map(|cookie| kernel.released_label(*cookie).map(|label| (*cookie, label)))
            .collect()
    };
    let mut by_label: BTreeMap<u32, Totals> = BTreeMap::new();
    let mut live_tcp_sockets = 0;
    let closed = daemon.closed_tcp.lock().expect("closed tcp lock");
    for (cookie, (acked, received)) in &live {
        if closed.recent.contains(cookie) {
            continue; // destroyed since the dump: counted with the closed ones
        }
        let label = if snapshot.is_live(*cookie) {
            snapshot
                .socket_labels
                .get(cookie)
                .copied()
                .unwrap_or(UNLABELED_ID)
        } else if let Some(label) = folded_labels.get(cookie) {
            *label
        } else {
            continue; // not a socket sockstats accounts
        };
        live_tcp_sockets += 1;
        by_label
            .entry(label)
            .or_default()
            .add(Totals::new(*acked, *received));
    }
    for (label, totals) in &closed.by_label {
        by_label.entry(*label).or_default().add(*totals);
    }
    let mut reply = ValidationReply {
        live_tcp_sockets,
        closed_tcp_sockets: closed.sockets,
        covers: if daemon.info.validate_closed {
            COVERS
        } else {
            COVERS_LIVE_ONLY
        }
        .to_owned(),
        closed_covered: daemon.info.validate_closed,
        notifications_lost: closed.notifications_lost,
        closed_without_label: closed.without_tombstone,
        ..ValidationReply::default()
    };
    drop(closed);
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

/// Collects the final counters of destroyed TCP sockets, on a thread of its own with its own
/// handle on the tombstones (it never waits for the kernel-maps lock, so the kernel's
/// notification queue does not overflow behind a long query).
pub fn follow_destroyed_sockets(daemon: Arc<Daemon>, maps_dir: &Path) {
    let released = match crate::kernel::loader::open_released(maps_dir) {
        Ok(released) => released,
        Err(error) => {
            log::warn!("validation will not cover closed sockets: {error}");
            return;
        }
    };
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
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                daemon
                    .closed_tcp
                    .lock()
                    .expect("closed tcp lock")
                    .notifications_lost += 1;
                continue;
            }
            Err(error) => {
                log::warn!("sock_diag destroy notifications: {error}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let mut closed = daemon.closed_tcp.lock().expect("closed tcp lock");
        for socket in destroyed {
            match released.get(&socket.cookie, 0) {
                Ok(label) => closed.record(
                    socket.cookie,
                    label,
                    Totals::new(socket.bytes_acked, socket.bytes_received),
                ),
                // Not tracked by sockstats, or its tombstone was evicted already.
                Err(_) => closed.without_tombstone += 1,
            }
        }
    });
}
