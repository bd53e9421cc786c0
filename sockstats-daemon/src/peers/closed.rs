//! The peers of the sockets that closed since the daemon started, per label, in bounded memory:
//! at most [`MAX_PEERS_PER_LABEL`] peers a label and [`MAX_PEERS`] in all. When a label's table
//! is full, its smaller half is folded into the label's `(other)` totals (their bytes and how
//! many peers were folded), so nothing is dropped, only no longer told apart. A peer folded
//! once starts again from zero if it comes back; its earlier bytes stay in `(other)`.
use std::collections::{BTreeMap, HashMap};

use sockstats_common::{ClosedSocket, Totals, PEERS_ONE, PEERS_SEVERAL};

use super::Peer;

/// Peers kept per label before the smaller half is folded into `(other)`.
pub const MAX_PEERS_PER_LABEL: usize = 1024;
/// Peers kept over all labels before every label's table is halved.
pub const MAX_PEERS: usize = 65_536;

/// What one peer's closed sockets moved, and how many there were.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerTotals {
    pub payload: Totals,
    pub sockets: u64,
}

impl PeerTotals {
    fn add(&mut self, payload: Totals, sockets: u64) {
        self.payload.add(payload);
        self.sockets += sockets;
    }

    fn bytes(&self) -> u64 {
        self.payload.tx_bytes.saturating_add(self.payload.rx_bytes)
    }
}

/// One label's closed sockets, by peer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelPeers {
    pub peers: HashMap<Peer, PeerTotals>,
    /// Peers folded out of `peers`: their bytes and sockets.
    pub other: PeerTotals,
    /// How many peers were folded into `other`.
    pub other_peers: u64,
    /// Sockets that had several peers (unconnected UDP): not one peer's.
    pub several: PeerTotals,
    /// Sockets whose peer the kernel did not see (no packet the programs saw).
    pub unknown: PeerTotals,
}

impl LabelPeers {
    /// Folds all but the largest `keep` peers into `other`.
    fn fold_to(&mut self, keep: usize) {
        if self.peers.len() <= keep {
            return;
        }
        let mut by_size: Vec<(Peer, PeerTotals)> = self.peers.drain().collect();
        by_size.sort_by(|a, b| b.1.bytes().cmp(&a.1.bytes()).then_with(|| a.0.cmp(&b.0)));
        for (_, totals) in by_size.drain(keep..) {
            self.other.add(totals.payload, totals.sockets);
            self.other_peers += 1;
        }
        self.peers = by_size.into_iter().collect();
    }
}

/// The closed sockets' peers of every label (by label id).
#[derive(Debug, Default)]
pub struct ClosedPeers {
    labels: BTreeMap<u32, LabelPeers>,
    /// Peers kept over all labels.
    kept: usize,
}

impl ClosedPeers {
    /// Adds what closed sockets left.
    pub fn add(&mut self, closed: &[ClosedSocket]) {
        for socket in closed {
            let label = self.labels.entry(socket.label).or_default();
            match socket.peers {
                PEERS_ONE => {
                    let peer = Peer {
                        address: socket.remote,
                        port: socket.remote_port,
                    };
                    let totals = label.peers.entry(peer).or_insert_with(|| {
                        self.kept += 1;
                        PeerTotals::default()
                    });
                    totals.add(socket.payload, 1);
                    if label.peers.len() > MAX_PEERS_PER_LABEL {
                        let before = label.peers.len();
                        label.fold_to(MAX_PEERS_PER_LABEL / 2);
                        self.kept -= before - label.peers.len();
                    }
                }
                PEERS_SEVERAL => label.several.add(socket.payload, 1),
                _ => label.unknown.add(socket.payload, 1),
            }
        }
        if self.kept > MAX_PEERS {
            for label in self.labels.values_mut() {
                label.fold_to(label.peers.len() / 2);
            }
            self.kept = self.labels.values().map(|label| label.peers.len()).sum();
        }
    }

    /// The table of label `id` (empty if none of its sockets closed).
    #[must_use]
    pub fn label(&self, id: u32) -> LabelPeers {
        self.labels.get(&id).cloned().unwrap_or_default()
    }

    /// Peers kept over all labels.
    #[must_use]
    pub fn kept(&self) -> usize {
        self.kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed(label: u32, host: u8, port: u16, tx: u64, rx: u64) -> ClosedSocket {
        let mut remote = [0u8; 16];
        remote[10] = 0xff;
        remote[11] = 0xff;
        remote[15] = host;
        ClosedSocket {
            label,
            remote_port: port,
            peers: PEERS_ONE,
            remote,
            payload: Totals::new(tx, rx),
        }
    }

    fn total(label: &LabelPeers) -> Totals {
        let mut sum = label.other.payload;
        for totals in label.peers.values() {
            sum.add(totals.payload);
        }
        sum.add(label.several.payload);
        sum.add(label.unknown.payload);
        sum
    }

    #[test]
    fn closed_sockets_add_up_per_label_and_peer() {
        let mut table = ClosedPeers::default();
        table.add(&[
            closed(1, 2, 443, 100, 1000),
            closed(1, 2, 443, 5, 50),
            closed(1, 3, 80, 7, 0),
            closed(2, 2, 443, 1, 1),
            ClosedSocket {
                peers: PEERS_SEVERAL,
                ..closed(1, 0, 0, 9, 9)
            },
            ClosedSocket {
                peers: sockstats_common::PEERS_NONE,
                ..closed(1, 0, 0, 4, 0)
            },
        ]);
        let web = table.label(1);
        let first = web.peers[&Peer {
            address: closed(0, 2, 0, 0, 0).remote,
            port: 443,
        }];
        assert_eq!(first.payload, Totals::new(105, 1050));
        assert_eq!(first.sockets, 2);
        assert_eq!(web.peers.len(), 2);
        assert_eq!(web.several.payload, Totals::new(9, 9));
        assert_eq!(web.unknown.payload, Totals::new(4, 0));
        assert_eq!(table.label(2).peers.len(), 1);
        assert_eq!(table.label(7), LabelPeers::default());
        assert_eq!(table.kept(), 3);
    }

    #[test]
    fn a_full_label_folds_its_smaller_half_into_other_and_loses_nothing() {
        let mut table = ClosedPeers::default();
        let mut expected = Totals::default();
        let sockets: Vec<ClosedSocket> = (0..=MAX_PEERS_PER_LABEL)
            .map(|n| {
                let port = u16::try_from(n + 1).unwrap();
                let socket = closed(1, 9, port, u64::from(port), 1);
                expected.add(socket.payload);
                socket
            })
            .collect();
        table.add(&sockets);
        let web = table.label(1);
        assert_eq!(web.peers.len(), MAX_PEERS_PER_LABEL / 2);
        assert_eq!(web.other_peers, (MAX_PEERS_PER_LABEL / 2 + 1) as u64);
        assert_eq!(total(&web), expected);
        // The largest peers are the ones kept.
        let smallest_kept = web.peers.keys().map(|peer| peer.port).min().unwrap();
        assert_eq!(usize::from(smallest_kept), MAX_PEERS_PER_LABEL / 2 + 2);
        assert_eq!(table.kept(), MAX_PEERS_PER_LABEL / 2);
    }
}
