//! The prefix trie the kernel classifies remote addresses with: the `private` class's
//! prefixes, loopback as `host`, and every named network's prefixes under its id. The trie's
//! longest match wins, so a named network inside a private range (`network vpc 10.0.0.0/16`)
//! takes its addresses from `private`; an address nothing covers is `internet` (the kernel's
//! default). Where two entries have the same prefix, the later wins: a named network over a
//! class.
use std::net::IpAddr;

use sockstats_common::{
    DestinationPrefix, DESTINATION_HOST, DESTINATION_INTERNET, DESTINATION_PRIVATE,
};

use crate::config::destinations::{builtin_private_prefixes, Network, Prefix};

/// Loopback prefixes: their packets go over the loopback interface, which the kernel calls
/// `host` without a lookup; listed too so that the trie alone says the same.
const LOOPBACK: [(IpAddr, u8); 2] = [
    (IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 0)), 8),
    (IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 128),
];

/// The trie key of `prefix`: IPv4 as `::ffff:a.b.c.d/(96 + len)`, the form the kernel looks
/// IPv4 addresses up in.
#[must_use]
pub fn trie_key(address: IpAddr, length: u8) -> DestinationPrefix {
    match address {
        IpAddr::V4(v4) => DestinationPrefix {
            prefix_len: 96 + u32::from(length),
            address: v4.to_ipv6_mapped().octets(),
        },
        IpAddr::V6(v6) => DestinationPrefix {
            prefix_len: u32::from(length),
            address: v6.octets(),
        },
    }
}

/// Every entry of the trie for `networks` (ids from `id_of`, by network name).
pub fn prefixes(
    networks: &[Network],
    id_of: impl Fn(&str) -> u32,
) -> Vec<(DestinationPrefix, u32)> {
    let key = |prefix: &Prefix| trie_key(prefix.address, prefix.length);
    // Every IPv4 address is `internet` unless an IPv4 prefix says otherwise, so that a short
    // IPv6 network (`::/0`) does not take the v4-mapped range with it.
    let mut entries: Vec<(DestinationPrefix, u32)> = vec![(
        trie_key(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
        DESTINATION_INTERNET,
    )];
    entries.extend(
        LOOPBACK
            .iter()
            .map(|(address, length)| (trie_key(*address, *length), DESTINATION_HOST)),
    );
    entries.extend(
        builtin_private_prefixes()
            .iter()
            .map(|prefix| (key(prefix), DESTINATION_PRIVATE)),
    );
    for network in networks {
        let id = id_of(&network.name);
        entries.extend(network.prefixes.iter().map(|prefix| (key(prefix), id)));
    }
    entries
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn ipv4_prefixes_are_v4_mapped_with_96_more_bits() {
        let key = trie_key(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 16);
        assert_eq!(key.prefix_len, 112);
        assert_eq!(
            key.address[..12],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]
        );
        assert_eq!(key.address[12..], [10, 0, 0, 0]);
        let key = trie_key(IpAddr::V6("2001:db8::".parse::<Ipv6Addr>().unwrap()), 32);
        assert_eq!(key.prefix_len, 32);
        assert_eq!(key.address[..4], [0x20, 0x01, 0x0d, 0xb8]);
    }

    #[test]
    fn named_networks_follow_the_classes_under_their_ids() {
        let networks = vec![Network {
            name: "vpc".to_owned(),
            prefixes: vec![Prefix {
                address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
                length: 16,
            }],
        }];
        let entries = prefixes(&networks, |name| if name == "vpc" { 16 } else { 0 });
        let builtin = 1 + LOOPBACK.len() + builtin_private_prefixes().len();
        assert_eq!(entries.len(), builtin + 1);
        // IPv4 as a whole is the internet's (prefix ::ffff:0:0/96), then loopback is host.
        assert_eq!(
            entries[0],
            (
                trie_key(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
                DESTINATION_INTERNET
            )
        );
        assert_eq!(entries[0].0.prefix_len, 96);
        assert_eq!(entries[1].1, DESTINATION_HOST);
        assert!(entries[1 + LOOPBACK.len()..builtin]
            .iter()
            .all(|(_, id)| *id == DESTINATION_PRIVATE));
        assert_eq!(
            entries[builtin],
            (trie_key(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 16), 16)
        );
    }
}
