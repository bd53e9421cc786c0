//! `get_interfaces`: each label's payload split by the interface its packets really used, and
//! the IP-layer (wire) bytes and packets per label and interface.
use std::collections::BTreeSet;

use sockstats_common::protocol::{GetInterfacesReply, WireCounts};

use super::{naming::named_totals, Refusal};
use crate::daemon::state::Daemon;

pub fn get_interfaces(daemon: &Daemon) -> Result<GetInterfacesReply, Refusal> {
    let named = named_totals(daemon)?;
    let (current_interface, host_links) = daemon.interfaces().host_links();
    let mut reply = GetInterfacesReply {
        current_interface,
        ..GetInterfacesReply::default()
    };
    let mut interface_names: BTreeSet<String> = host_links.into_iter().collect();
    for (label, by_interface) in named.by_interface() {
        let stats = reply.stats.entry(label.clone()).or_default();
        let wire = reply.wire.entry(label).or_default();
        for (name, counters) in by_interface {
            stats
                .tx_bytes_by_interface
                .insert(name.clone(), counters.payload.tx_bytes);
            stats
                .rx_bytes_by_interface
                .insert(name.clone(), counters.payload.rx_bytes);
            wire.insert(
                name.clone(),
                WireCounts {
                    tx_bytes: counters.wire_bytes.tx_bytes,
                    rx_bytes: counters.wire_bytes.rx_bytes,
                    tx_packets: counters.wire_packets.tx_packets,
                    rx_packets: counters.wire_packets.rx_packets,
                },
            );
            interface_names.insert(name);
        }
    }
    reply.interfaces = interface_names.into_iter().collect();
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use sockstats_common::{AccountKey, IfaceCounters, Totals, OTHER_IFINDEX};

    use super::*;
    use crate::ops::testing::{Fixture, HOST_NETNS};

    fn key(label: u32, netns_cookie: u64, ifindex: u32) -> AccountKey {
        AccountKey {
            label,
            netns_cookie,
            ifindex,
            ..AccountKey::default()
        }
    }

    #[test]
    fn splits_by_named_interface_across_namespaces() {
        let test = Fixture::new();
        test.daemon
            .with_core(|core| core.labels.get_or_create("web").unwrap());
        let mut counters = IfaceCounters {
            payload: Totals::new(5000, 70),
            ..IfaceCounters::default()
        };
        counters.wire_bytes = Totals::new(5264, 342);
        counters.wire_packets.tx_packets = 5;
        counters.wire_packets.rx_packets = 4;
        test.with_kernel(|kernel| {
            let accounts = &mut kernel.snapshot.accounts;
            accounts.insert(key(1, 7, 3), counters);
            accounts.insert(
                key(1, HOST_NETNS, 2),
                IfaceCounters {
                    payload: Totals::new(1, 2),
                    ..IfaceCounters::default()
                },
            );
            accounts.insert(
                key(1, 0, OTHER_IFINDEX),
                IfaceCounters {
                    payload: Totals::new(9, 0),
                    ..IfaceCounters::default()
                },
            );
            accounts.insert(
                key(0, 99, 4),
                IfaceCounters {
                    payload: Totals::new(0, 8),
                    ..IfaceCounters::default()
                },
            );
        });
        let reply = get_interfaces(&test.daemon).unwrap();
        let web = &reply.stats["web"];
        assert_eq!(web.tx_bytes_by_interface["veth1/blue"], 5000);
        assert_eq!(web.rx_bytes_by_interface["veth1/blue"], 70);
        assert_eq!(web.tx_bytes_by_interface["eth0"], 1);
        assert_eq!(web.tx_bytes_by_interface[":other"], 9);
        let wire = reply.wire["web"]["veth1/blue"];
        assert_eq!(
            (
                wire.tx_bytes,
                wire.rx_bytes,
                wire.tx_packets,
                wire.rx_packets
            ),
            (5264, 342, 5, 4)
        );
        assert_eq!(
            reply.stats["unlabeled"].rx_bytes_by_interface["if:4/netns:99"],
            8
        );
        assert_eq!(
            reply.interfaces,
            [":other", "eth0", "if:4/netns:99", "lo", "veth1/blue"]
        );
        assert_eq!(reply.current_interface.as_deref(), Some("eth0"));
        test.with_kernel(|kernel| kernel.fail_reads = true);
        let refused = get_interfaces(&test.daemon).unwrap_err();
        assert_eq!(
            refused.code(),
            sockstats_common::protocol::ErrorCode::Failed
        );
        assert!(
            refused
                .to_string()
                .starts_with("cannot read the kernel maps: "),
            "{refused}"
        );
    }
}
