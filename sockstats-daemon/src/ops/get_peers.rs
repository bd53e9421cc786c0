//! `get_peers`: the remote addresses and ports each label's payload went to and came from,
//! largest first: live sockets (their state remembers their peer) and the sockets closed since
//! the daemon started ([`crate::peers::ClosedPeers`]). The rows of a label add up to its totals:
//! peers beyond the top are one `other` row, and what no row can name is said in three more.
use std::collections::{BTreeMap, HashMap};

use sockstats_common::{
    protocol::{ByteCounts, GetPeersReply, LabelPeers, OtherPeers, PeerCounts},
    SocketRecord, Totals, PEERS_ONE, PEERS_SEVERAL,
};

use super::{
    naming::{byte_counts, label_name, live_sockets, snapshot},
    Refusal,
};
use crate::{attribution, daemon::state::Daemon, peers::Peer};

/// Peers shown per label unless asked for more or fewer.
pub const DEFAULT_TOP: u32 = 10;
/// The most peers a reply shows per label (the closed sockets' table keeps up to 1,024).
pub const MAX_TOP: u32 = 1000;

/// What covers the rows, in words.
const COVERS: &str = "payload of live sockets and of sockets closed since the daemon started, by the remote address and port of the socket's peer; \"several peers\" holds sockets that had more than one (unconnected UDP), \"unknown peer\" sockets that sent no packet the kernel saw the address of, \"not attributed\" the rest of the label's totals: sockets that closed under an earlier daemon, closing sockets the kernel's ring buffer had no room for (closed_sockets_lost), and kernel sockets";

/// One peer's live and closed sockets of one label.
#[derive(Debug, Clone, Copy, Default)]
struct Row {
    payload: Totals,
    live_sockets: u64,
    closed_sockets: u64,
}

impl Row {
    fn bytes(&self) -> u64 {
        self.payload.tx_bytes.saturating_add(self.payload.rx_bytes)
    }
}

/// What one label's sockets add to its rows.
#[derive(Debug, Default)]
struct Collected {
    peers: HashMap<Peer, Row>,
    other: Totals,
    other_peers: u64,
    several: Totals,
    unknown: Totals,
}

pub fn get_peers(daemon: &Daemon, label: Option<&str>, top: u32) -> Result<GetPeersReply, Refusal> {
    if top == 0 || top > MAX_TOP {
        return Err(Refusal::BadTop { top, max: MAX_TOP });
    }
    // Closed first, then live, then the totals, with the closed sockets' table held so the
    // reader task adds nothing in between: a socket is in one of the first two at most, and
    // every byte they hold is in the totals read after them.
    let closed = daemon.closed_peers();
    let live = live_sockets(daemon)?;
    let (snapshot, names) = snapshot(daemon)?;
    let mut wanted: BTreeMap<u32, String> = attribution::per_label(&snapshot)
        .keys()
        .map(|id| (*id, label_name(&names, *id)))
        .collect();
    for (id, name) in &names {
        wanted.insert(*id, name.clone());
    }
    if let Some(label) = label {
        wanted.retain(|_, name| name == label);
        if wanted.is_empty() {
            return Err(Refusal::NoSuchLabel {
                label: label.to_owned(),
            });
        }
    }
    let totals = attribution::per_label(&snapshot);
    let mut collected: BTreeMap<u32, Collected> = BTreeMap::new();
    add_live(&mut collected, &live);
    {
        for id in wanted.keys() {
            let table = closed.label(*id);
            let entry = collected.entry(*id).or_default();
            for (peer, totals) in table.peers {
                let row = entry.peers.entry(peer).or_default();
                row.payload.add(totals.payload);
                row.closed_sockets += totals.sockets;
            }
            entry.other.add(table.other.payload);
            entry.other_peers += table.other_peers;
            entry.several.add(table.several.payload);
            entry.unknown.add(table.unknown.payload);
        }
        drop(closed);
    }
    let mut reply = GetPeersReply {
        stats: BTreeMap::new(),
        top,
        covers: COVERS.to_owned(),
    };
    for (id, name) in wanted {
        let collected = collected.remove(&id).unwrap_or_default();
        let total = totals.get(&id).copied().unwrap_or_default();
        reply.stats.insert(name, label_rows(collected, total, top));
    }
    Ok(reply)
}

/// Adds the live sockets' payload to the rows of their labels (not of those released already,
/// which TCP is still closing: their closed-socket record has their bytes).
fn add_live(collected: &mut BTreeMap<u32, Collected>, live: &[SocketRecord]) {
    for record in live.iter().filter(|record| record.released == 0) {
        let entry = collected.entry(record.label).or_default();
        match record.peers {
            PEERS_ONE => {
                let row = entry
                    .peers
                    .entry(Peer {
                        address: record.remote,
                        port: record.remote_port,
                    })
                    .or_default();
                row.payload.add(record.payload);
                row.live_sockets += u64::from(record.held);
            }
            PEERS_SEVERAL => entry.several.add(record.payload),
            _ => entry.unknown.add(record.payload),
        }
    }
}

/// A label's rows: its `top` peers, the rest, and what its totals hold beyond them.
fn label_rows(collected: Collected, total: Totals, top: u32) -> LabelPeers {
    let mut rows: Vec<(Peer, Row)> = collected.peers.into_iter().collect();
    rows.sort_by(|a, b| b.1.bytes().cmp(&a.1.bytes()).then_with(|| a.0.cmp(&b.0)));
    let mut other = collected.other;
    let mut other_peers = collected.other_peers;
    let shown = rows.len().min(top as usize);
    for (_, row) in rows.drain(shown..) {
        other.add(row.payload);
        other_peers += 1;
    }
    let mut attributed = other;
    attributed.add(collected.several);
    attributed.add(collected.unknown);
    for (_, row) in &rows {
        attributed.add(row.payload);
    }
    LabelPeers {
        peers: rows
            .into_iter()
            .map(|(peer, row)| PeerCounts {
                peer: peer.to_string(),
                tx_bytes: row.payload.tx_bytes,
                rx_bytes: row.payload.rx_bytes,
                live_sockets: row.live_sockets,
                closed_sockets: row.closed_sockets,
            })
            .collect(),
        other: OtherPeers {
            tx_bytes: other.tx_bytes,
            rx_bytes: other.rx_bytes,
            peers: other_peers,
        },
        several_peers: byte_counts(collected.several),
        unknown_peer: byte_counts(collected.unknown),
        not_attributed: ByteCounts {
            tx_bytes: total.tx_bytes.saturating_sub(attributed.tx_bytes),
            rx_bytes: total.rx_bytes.saturating_sub(attributed.rx_bytes),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use sockstats_common::{protocol::ErrorCode, ClosedSocket};

    use super::*;
    use crate::{kernel::fake::FakeSocket, ops::testing::Fixture};

    fn address(host: u8) -> [u8; 16] {
        Ipv4Addr::new(198, 51, 100, host).to_ipv6_mapped().octets()
    }

    fn fixture() -> Fixture {
        let test = Fixture::new();
        test.daemon
            .with_core(|core| core.labels.get_or_create("web").unwrap());
        test.with_kernel(|kernel| {
            for (cookie, host, tx, rx) in [(1, 2, 1000, 10), (2, 3, 50, 5), (3, 2, 7, 0)] {
                kernel.sockets.insert(
                    cookie,
                    FakeSocket {
                        label: 1,
                        payload: Totals::new(tx, rx),
                        remote: address(host),
                        remote_port: 443,
                        peers: PEERS_ONE,
                        ..FakeSocket::default()
                    },
                );
            }
            kernel.sockets.insert(
                4,
                FakeSocket {
                    label: 1,
                    payload: Totals::new(9, 9),
                    peers: PEERS_SEVERAL,
                    ..FakeSocket::default()
                },
            );
            // Closed since the daemon started: one to a live socket's peer, one to another.
            kernel.closed = vec![
                ClosedSocket {
                    label: 1,
                    remote_port: 443,
                    peers: PEERS_ONE,
                    remote: address(3),
                    payload: Totals::new(2000, 20),
                },
                ClosedSocket {
                    label: 1,
                    remote_port: 80,
                    peers: PEERS_ONE,
                    remote: address(4),
                    payload: Totals::new(1, 1),
                },
            ];
            // Closed before the daemon started: only in the totals.
            kernel.snapshot.accounts.insert(
                sockstats_common::AccountKey {
                    label: 1,
                    ..sockstats_common::AccountKey::default()
                },
                sockstats_common::IfaceCounters {
                    payload: Totals::new(2000 + 1 + 300, 20 + 1 + 30),
                    ..sockstats_common::IfaceCounters::default()
                },
            );
        });
        test
    }

    #[test]
    fn live_and_closed_sockets_add_up_per_peer_and_the_rows_to_the_totals() {
        let test = fixture();
        let reply = get_peers(&test.daemon, Some("web"), 10).unwrap();
        let web = &reply.stats["web"];
        let rows: Vec<(&str, u64, u64, u64, u64)> = web
            .peers
            .iter()
            .map(|p| {
                (
                    p.peer.as_str(),
                    p.tx_bytes,
                    p.rx_bytes,
                    p.live_sockets,
                    p.closed_sockets,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("198.51.100.3:443", 2050, 25, 1, 1),
                ("198.51.100.2:443", 1007, 10, 2, 0),
                ("198.51.100.4:80", 1, 1, 0, 1),
            ]
        );
        assert_eq!(
            (web.several_peers.tx_bytes, web.several_peers.rx_bytes),
            (9, 9)
        );
        assert_eq!(
            (web.not_attributed.tx_bytes, web.not_attributed.rx_bytes),
            (300, 30)
        );
        assert_eq!(web.other.peers, 0);
        assert_eq!(reply.stats.len(), 1);
        // The closed records were taken into the daemon's table: a second reply sees them too.
        let again = get_peers(&test.daemon, Some("web"), 10).unwrap();
        assert_eq!(again.stats["web"].peers.len(), 3);
    }

    #[test]
    fn a_released_socket_still_listed_is_counted_once_from_its_closed_record() {
        let test = fixture();
        // Socket 2 (peer .3, 50/5) was released while TCP finishes closing: the kernel left its
        // closed record, and the iterator still lists it.
        test.with_kernel(|kernel| {
            kernel.sockets.get_mut(&2).unwrap().released = true;
            kernel.closed.push(ClosedSocket {
                label: 1,
                remote_port: 443,
                peers: PEERS_ONE,
                remote: address(3),
                payload: Totals::new(50, 5),
            });
        });
        let reply = get_peers(&test.daemon, Some("web"), 10).unwrap();
        let third = &reply.stats["web"].peers[0];
        assert_eq!(third.peer, "198.51.100.3:443");
        assert_eq!(
            (
                third.tx_bytes,
                third.rx_bytes,
                third.live_sockets,
                third.closed_sockets
            ),
            (2050, 25, 0, 2)
        );
    }

    #[test]
    fn peers_beyond_the_top_are_one_other_row() {
        let test = fixture();
        let reply = get_peers(&test.daemon, Some("web"), 1).unwrap();
        let web = &reply.stats["web"];
        assert_eq!(web.peers.len(), 1);
        assert_eq!(web.peers[0].peer, "198.51.100.3:443");
        assert_eq!(
            (web.other.tx_bytes, web.other.rx_bytes, web.other.peers),
            (1008, 11, 2)
        );
        assert_eq!(
            (web.not_attributed.tx_bytes, web.not_attributed.rx_bytes),
            (300, 30)
        );
    }

    #[test]
    fn bad_tops_and_unknown_labels_are_refused() {
        let test = fixture();
        for top in [0, MAX_TOP + 1] {
            let refusal = get_peers(&test.daemon, None, top).unwrap_err();
            assert_eq!(refusal.code(), ErrorCode::BadRequest);
            assert!(refusal.to_string().contains("--top"), "{refusal}");
        }
        let refusal = get_peers(&test.daemon, Some("nope"), 10).unwrap_err();
        assert_eq!(refusal.code(), ErrorCode::NotFound);
        assert!(
            refusal.to_string().contains("sockstats labels"),
            "{refusal}"
        );
        // Without a label: every label, unlabeled included.
        let all = get_peers(&test.daemon, None, 10).unwrap();
        assert!(all.stats.contains_key("unlabeled") && all.stats.contains_key("web"));
    }
}
