//! Where bytes go: the built-in destination classes and the `network` lines of the config file
//! (issue 15), and, in [`prices`], the `price` and `currency` lines and the cost arithmetic.
//!
//! ```text
//! network NAME CIDR [CIDR…]
//! ```
//!
//! It owns the parsing and the checks of the lines; which class or network a peer is in is
//! decided by the kernel (longest prefix wins; `host` from the loopback interface and the
//! host's own addresses), never here.
use std::{collections::HashMap, net::IpAddr};

use super::{At, ConfigError};

mod prefix;
pub mod prices;

pub use prefix::Prefix;
pub use prices::{Direction, Prices, DEFAULT_CURRENCY};

/// The classes every peer falls in when no named network holds it.
pub const BUILTIN_DESTINATIONS: [&str; 3] = ["host", "private", "internet"];

/// The most prefixes all `network` lines together may have (the kernel's prefix map).
pub const MAX_NAMED_PREFIXES: usize = 65_536;

/// The most `network` lines (each one a value of the metrics' `destination` label).
pub const MAX_NETWORKS: usize = 1_000;

/// The longest network name.
const MAX_NAME_LENGTH: usize = 32;

/// What a `network` line looks like, for the advice on a bad one.
const INSTEAD: &str = "`network NAME CIDR…`, e.g. `network vpc 10.0.0.0/16 fd00:10::/48`";

/// One `network` line: a name and its prefixes, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub name: String,
    pub prefixes: Vec<Prefix>,
}

/// The prefixes of the `private` class: RFC 1918, the shared address space of carrier-grade
/// NAT, link-local, IPv6 unique local and link-local addresses, and multicast and the limited
/// broadcast (mDNS, SSDP, DHCP never leave the link). Loopback is `host`.
#[must_use]
pub fn builtin_private_prefixes() -> Vec<Prefix> {
    [
        ("10.0.0.0", 8),
        ("172.16.0.0", 12),
        ("192.168.0.0", 16),
        ("100.64.0.0", 10),
        ("169.254.0.0", 16),
        ("224.0.0.0", 4),
        ("255.255.255.255", 32),
        ("fc00::", 7),
        ("fe80::", 10),
        ("ff00::", 8),
    ]
    .into_iter()
    .map(|(address, length)| Prefix {
        address: address.parse().expect("the private prefixes parse"),
        length,
    })
    .collect()
}

/// The `network` lines read so far, with what the checks of the next one need.
#[derive(Debug, Default)]
pub(super) struct NetworkLines {
    networks: Vec<Network>,
    /// Network name to its line.
    lines: HashMap<String, usize>,
    /// Prefix to the index of its network in `networks` and its line.
    prefixes: HashMap<(IpAddr, u8), (usize, usize)>,
    prefix_count: usize,
}

impl NetworkLines {
    /// Parses the arguments of a `network` line and checks it against the lines before.
    pub(super) fn add(&mut self, at: &At<'_>, arguments: &[&str]) -> Result<(), ConfigError> {
        let Some((name, cidrs)) = arguments.split_first() else {
            return Err(at.refuse("network names nothing".to_owned(), INSTEAD));
        };
        check_name(at, name)?;
        if let Some(first) = self.lines.get(*name) {
            return Err(at.refuse(
                format!("network {name:?} is defined already on line {first}"),
                &format!("all of {name:?}'s prefixes on line {first}, or another name"),
            ));
        }
        if cidrs.is_empty() {
            return Err(at.refuse(format!("network {name:?} has no prefix"), INSTEAD));
        }
        if self.networks.len() == MAX_NETWORKS {
            return Err(at.refuse(
                format!(
                    "network {name:?} is network {} of at most {MAX_NETWORKS}",
                    MAX_NETWORKS + 1
                ),
                "fewer networks (one network may have many prefixes)",
            ));
        }
        let count = self.prefix_count + cidrs.len();
        if count > MAX_NAMED_PREFIXES {
            return Err(at.refuse(
                format!(
                    "network {name:?} brings the named prefixes to {count}, more than the {MAX_NAMED_PREFIXES} sockstats can hold"
                ),
                "fewer prefixes (neighbouring prefixes of one network merge into a shorter one)",
            ));
        }
        let index = self.networks.len();
        let mut prefixes = Vec::with_capacity(cidrs.len());
        for cidr in cidrs {
            let prefix = prefix::prefix(at, cidr)?;
            if let Some(&(other, line)) = self.prefixes.get(&prefix.key()) {
                let reason = if other == index {
                    format!("{prefix} is twice in network {name:?}")
                } else {
                    format!(
                        "{prefix} of network {name:?} is in network {:?} already (line {line})",
                        self.networks[other].name
                    )
                };
                return Err(at.refuse(reason, "each prefix once, in one network"));
            }
            self.prefixes.insert(prefix.key(), (index, at.number));
            prefixes.push(prefix);
        }
        self.prefix_count = count;
        self.lines.insert((*name).to_owned(), at.number);
        self.networks.push(Network {
            name: (*name).to_owned(),
            prefixes,
        });
        Ok(())
    }

    /// Is `name` a built-in class or a network of the lines read?
    pub(super) fn is_destination(&self, name: &str) -> bool {
        BUILTIN_DESTINATIONS.contains(&name) || self.lines.contains_key(name)
    }

    /// The built-in classes and the networks, in file order: the destinations a price may name.
    pub(super) fn destinations(&self) -> Vec<&str> {
        BUILTIN_DESTINATIONS
            .into_iter()
            .chain(self.networks.iter().map(|network| network.name.as_str()))
            .collect()
    }

    pub(super) fn into_networks(self) -> Vec<Network> {
        self.networks
    }
}

/// Refuses a network name that is not 1–32 of `[a-z0-9_.-]` starting with a letter, or that is
/// a built-in class.
fn check_name(at: &At<'_>, name: &str) -> Result<(), ConfigError> {
    const NAME: &str = "a network name of 1 to 32 characters from a-z, 0-9, `_`, `.` and `-`, starting with a letter, e.g. `vpc` or `office-lan`";
    if BUILTIN_DESTINATIONS.contains(&name) {
        return Err(at.refuse(
            format!("{name:?} is a built-in destination class"),
            "another name for the network (host, private and internet are built in)",
        ));
    }
    let reason = if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        format!("network name {name:?} does not start with a letter from a-z")
    } else if let Some((position, c)) = name
        .chars()
        .enumerate()
        .find(|&(_, c)| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'))
    {
        format!("network name {name:?} has {c:?} at position {position}")
    } else if name.len() > MAX_NAME_LENGTH {
        // ASCII only by now: bytes are characters.
        format!("network name {name:?} is longer than {MAX_NAME_LENGTH} characters")
    } else {
        return Ok(());
    };
    Err(at.refuse(reason, NAME))
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;
    use crate::config::{
        tests::{parsed, refusal},
        Config,
    };

    fn prefixes(network: &Network) -> Vec<String> {
        network.prefixes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn reads_network_lines() {
        let config = parsed(
            "network vpc 10.0.0.0/16 fd00:10::/48   # the VPC\n\
             network s3 52.216.0.0/15 3.5.0.0/19\n\
             network office-lan.2_b 192.0.2.7 2001:db8::1\n\
             network catch-all 0.0.0.0/0 ::/0 10.0.0.0/8\n",
        )
        .unwrap();
        let names: Vec<&str> = config
            .networks
            .iter()
            .map(|network| network.name.as_str())
            .collect();
        assert_eq!(names, ["vpc", "s3", "office-lan.2_b", "catch-all"]);
        assert_eq!(
            prefixes(&config.networks[0]),
            ["10.0.0.0/16", "fd00:10::/48"]
        );
        assert_eq!(
            prefixes(&config.networks[1]),
            ["52.216.0.0/15", "3.5.0.0/19"]
        );
        assert_eq!(
            prefixes(&config.networks[2]),
            ["192.0.2.7/32", "2001:db8::1/128"]
        );
        assert_eq!(
            prefixes(&config.networks[3]),
            ["0.0.0.0/0", "::/0", "10.0.0.0/8"]
        );
        assert_eq!(parsed("").unwrap().networks, Config::default().networks);
        assert!(Config::default().networks.is_empty());
    }

    #[test]
    fn the_private_class_is_the_documented_list() {
        let shown: Vec<String> = builtin_private_prefixes()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "100.64.0.0/10",
                "169.254.0.0/16",
                "224.0.0.0/4",
                "255.255.255.255/32",
                "fc00::/7",
                "fe80::/10",
                "ff00::/8"
            ]
        );
        // Each is a network address, as a `network` line would have to write it.
        for prefix in builtin_private_prefixes() {
            assert_eq!(Prefix::containing(prefix.address, prefix.length), prefix);
        }
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        for prefix in &shown {
            assert!(
                readme.contains(&format!("`{prefix}`")),
                "README lacks {prefix}"
            );
        }
    }

    #[test]
    fn refuses_bad_names() {
        let instead = "write a network name of 1 to 32 characters from a-z, 0-9, `_`, `.` and `-`, starting with a letter, e.g. `vpc` or `office-lan` instead";
        for (line, reason) in [
            (
                "network VPC 10.0.0.0/8",
                "network name \"VPC\" does not start with a letter from a-z",
            ),
            (
                "network 3rd 10.0.0.0/8",
                "network name \"3rd\" does not start with a letter from a-z",
            ),
            (
                "network :other 10.0.0.0/8",
                "network name \":other\" does not start with a letter from a-z",
            ),
            (
                "network my/vpc 10.0.0.0/8",
                "network name \"my/vpc\" has '/' at position 2",
            ),
            (
                "network vpcé 10.0.0.0/8",
                "network name \"vpcé\" has 'é' at position 3",
            ),
            (
                "network a23456789012345678901234567890123 10.0.0.0/8",
                "network name \"a23456789012345678901234567890123\" is longer than 32 characters",
            ),
        ] {
            assert_eq!(
                refusal(line),
                format!("/etc/sockstats/sockstats.conf:1: {reason}; {instead}"),
                "{line}"
            );
        }
        assert_eq!(
            parsed("network a2345678901234567890123456789012 10.0.0.0/8")
                .unwrap()
                .networks[0]
                .name
                .len(),
            32
        );
        for builtin in BUILTIN_DESTINATIONS {
            assert_eq!(
                refusal(&format!("\nnetwork {builtin} 10.0.0.0/8")),
                format!("/etc/sockstats/sockstats.conf:2: \"{builtin}\" is a built-in destination class; write another name for the network (host, private and internet are built in) instead")
            );
        }
    }

    #[test]
    fn refuses_lines_without_a_name_or_a_prefix() {
        assert_eq!(
            refusal("network"),
            "/etc/sockstats/sockstats.conf:1: network names nothing; write `network NAME CIDR…`, e.g. `network vpc 10.0.0.0/16 fd00:10::/48` instead"
        );
        assert_eq!(
            refusal("network vpc  # later"),
            "/etc/sockstats/sockstats.conf:1: network \"vpc\" has no prefix; write `network NAME CIDR…`, e.g. `network vpc 10.0.0.0/16 fd00:10::/48` instead"
        );
    }

    #[test]
    fn refuses_bad_prefixes_naming_the_line() {
        assert_eq!(
            refusal("network vpc 10.0.0.0/16\nnetwork lan 10.1.0.1/16"),
            "/etc/sockstats/sockstats.conf:2: \"10.1.0.1/16\" has host bits set; write the network address `10.1.0.0/16` instead"
        );
        assert_eq!(
            refusal("network vpc 10.0.0.0/16 fd00::/129"),
            "/etc/sockstats/sockstats.conf:1: \"fd00::/129\" has no prefix length from 0 to 128; write an IPv6 prefix length from 0 to 128 after the `/` instead"
        );
        assert_eq!(
            refusal("network vpc 10.0.0/16"),
            "/etc/sockstats/sockstats.conf:1: \"10.0.0/16\" is not an IPv4 or IPv6 prefix; write a prefix like `10.0.0.0/16` or `2001:db8::/32` (a bare address is one host: /32 or /128) instead"
        );
        assert_eq!(
            refusal("network vpc ::ffff:10.0.0.0/112"),
            "/etc/sockstats/sockstats.conf:1: \"::ffff:10.0.0.0/112\" is a v4-mapped IPv6 prefix, and v4-mapped peers are classified as IPv4; write the IPv4 prefix `10.0.0.0/16` instead"
        );
    }

    #[test]
    fn refuses_a_name_twice() {
        assert_eq!(
            refusal("network vpc 10.0.0.0/16\n# more\nnetwork vpc 10.1.0.0/16"),
            "/etc/sockstats/sockstats.conf:3: network \"vpc\" is defined already on line 1; write all of \"vpc\"'s prefixes on line 1, or another name instead"
        );
    }

    #[test]
    fn refuses_a_prefix_twice() {
        assert_eq!(
            refusal("network vpc 10.0.0.0/16\nnetwork lan 192.0.2.0/24 10.0.0.0/16"),
            "/etc/sockstats/sockstats.conf:2: 10.0.0.0/16 of network \"lan\" is in network \"vpc\" already (line 1); write each prefix once, in one network instead"
        );
        assert_eq!(
            refusal("network vpc 2001:db8::/32 2001:0db8:0::/32"),
            "/etc/sockstats/sockstats.conf:1: 2001:db8::/32 is twice in network \"vpc\"; write each prefix once, in one network instead"
        );
        // Nested prefixes are not the same prefix: the longest one wins in the kernel.
        let config =
            parsed("network vpc 10.0.0.0/16\nnetwork subnet 10.0.1.0/24 10.0.0.0/17").unwrap();
        assert_eq!(config.networks.len(), 2);
    }

    #[test]
    fn refuses_more_networks_than_the_kernel_holds() {
        let mut text = String::new();
        for n in 0..MAX_NETWORKS {
            writeln!(text, "network n{n} 10.{}.{}.0/24", n / 256, n % 256).unwrap();
        }
        assert_eq!(parsed(&text).unwrap().networks.len(), MAX_NETWORKS);
        text.push_str("network one-more 192.0.2.0/24\n");
        assert_eq!(
            refusal(&text),
            "/etc/sockstats/sockstats.conf:1001: network \"one-more\" is network 1001 of at most 1000; write fewer networks (one network may have many prefixes) instead"
        );
    }

    #[test]
    fn refuses_more_prefixes_than_the_kernel_holds() {
        let hosts = |network: u32, count: u32| {
            (0..count)
                .map(|n| std::net::Ipv4Addr::from((network << 24) + n).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let full = format!(
            "network a {}\nnetwork b {}\n",
            hosts(10, 65_000),
            hosts(11, 536)
        );
        let config = parsed(&full).unwrap();
        let count: usize = config.networks.iter().map(|n| n.prefixes.len()).sum();
        assert_eq!(count, MAX_NAMED_PREFIXES);
        assert_eq!(
            refusal(&format!("{full}network c 192.0.2.0/24 198.51.100.0/24")),
            "/etc/sockstats/sockstats.conf:3: network \"c\" brings the named prefixes to 65538, more than the 65536 sockstats can hold; write fewer prefixes (neighbouring prefixes of one network merge into a shorter one) instead"
        );
    }
}
