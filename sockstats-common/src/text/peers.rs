//! The `sockstats get --peers` table.
use std::fmt::Write as _;

use super::{bytes_cell, largest_first, table};
use crate::protocol::{ByteCounts, GetPeersReply, LabelPeers};

fn label_total(rows: &LabelPeers) -> (u64, u64) {
    let mut tx = rows.other.tx_bytes;
    let mut rx = rows.other.rx_bytes;
    for peer in &rows.peers {
        tx = tx.saturating_add(peer.tx_bytes);
        rx = rx.saturating_add(peer.rx_bytes);
    }
    for rest in [rows.several_peers, rows.unknown_peer, rows.not_attributed] {
        tx = tx.saturating_add(rest.tx_bytes);
        rx = rx.saturating_add(rest.rx_bytes);
    }
    (tx, rx)
}

/// One row per label and peer, largest first, then the label's rows in parentheses (those
/// with bytes); labels by total payload, largest first, labels without any left out.
#[must_use]
pub fn peers_table(reply: &GetPeersReply, exact: bool) -> String {
    let mut rows = Vec::new();
    for (label, peers) in largest_first(&reply.stats, label_total) {
        if label_total(peers) == (0, 0) {
            continue;
        }
        for peer in &peers.peers {
            rows.push(vec![
                label.clone(),
                peer.peer.clone(),
                bytes_cell(peer.tx_bytes, exact),
                bytes_cell(peer.rx_bytes, exact),
                peer.live_sockets.to_string(),
                peer.closed_sockets.to_string(),
            ]);
        }
        let other = ByteCounts {
            tx_bytes: peers.other.tx_bytes,
            rx_bytes: peers.other.rx_bytes,
        };
        let other_name = format!("(other: {} peers)", peers.other.peers);
        for (name, counts) in [
            (other_name.as_str(), other),
            ("(several peers)", peers.several_peers),
            ("(unknown peer)", peers.unknown_peer),
            ("(not attributed)", peers.not_attributed),
        ] {
            if counts.tx_bytes == 0 && counts.rx_bytes == 0 {
                continue;
            }
            rows.push(vec![
                label.clone(),
                name.to_owned(),
                bytes_cell(counts.tx_bytes, exact),
                bytes_cell(counts.rx_bytes, exact),
                String::new(),
                String::new(),
            ]);
        }
    }
    let mut out = table(&["LABEL", "PEER", "TX", "RX", "LIVE", "CLOSED"], 2, &rows);
    let _ = writeln!(out, "covers {}", reply.covers);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{OtherPeers, PeerCounts};

    #[test]
    fn peers_then_the_rest_per_label() {
        let mut reply = GetPeersReply {
            top: 1,
            covers: "everything".to_owned(),
            ..GetPeersReply::default()
        };
        reply.stats.insert(
            "web".to_owned(),
            LabelPeers {
                peers: vec![PeerCounts {
                    peer: "198.51.100.2:443".to_owned(),
                    tx_bytes: 100,
                    rx_bytes: 2000,
                    live_sockets: 1,
                    closed_sockets: 3,
                }],
                other: OtherPeers {
                    tx_bytes: 5,
                    rx_bytes: 6,
                    peers: 2,
                },
                not_attributed: ByteCounts {
                    tx_bytes: 7,
                    rx_bytes: 0,
                },
                ..LabelPeers::default()
            },
        );
        reply.stats.insert("idle".to_owned(), LabelPeers::default());
        let text = peers_table(&reply, true);
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|line| line.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["LABEL", "PEER", "TX", "RX", "LIVE", "CLOSED"]);
        assert_eq!(
            lines[1],
            ["web", "198.51.100.2:443", "100", "2000", "1", "3"]
        );
        assert_eq!(lines[2], ["web", "(other:", "2", "peers)", "5", "6"]);
        assert_eq!(lines[3], ["web", "(not", "attributed)", "7", "0"]);
        assert_eq!(lines[4][0], "covers");
        assert_eq!(lines.len(), 5);
    }
}
