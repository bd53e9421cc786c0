//! The config files of the destination bench: `count` named IPv4 prefixes in `network` lines
//! (ten prefixes a line, `network bench0 …`), chosen so that the kernel's prefix trie is as
//! deep as it gets where the bench's traffic looks it up, and so that what the traffic
//! matches is known:
//!
//! - First the *siblings* of each receiver address ([`RECEIVER_ADDRESSES`]), longest first:
//!   for a length L the prefix that shares the address's first L − 1 bits and differs in bit
//!   L − 1. Each one branches the trie on the path of the receiver's address at one more bit,
//!   from bit 31 up to bit 7 (lengths 32 down to 8; 50 prefixes for both addresses), so the
//!   lookup of a receiver address walks a node per sibling and matches none of them: the
//!   sender's packets go to `internet`. The /31 siblings (from 10 prefixes on) hold the
//!   sender's addresses ([`SENDER_ADDRESSES`]): the receiver's packets come from `bench0`.
//! - The rest spread over the public IPv4 space: deterministic pseudo-random /16 to /28
//!   prefixes outside the reserved ranges and holding none of the bench's addresses, like a
//!   cloud provider's address list.
//!
//! It only writes text; the daemon parses it (`sockstatsd --config FILE`).
use std::{
    collections::HashSet,
    fmt::{self, Write as _},
    net::Ipv4Addr,
};

use super::topology::{RECEIVER_ADDRESSES, SENDER_ADDRESSES};

/// Prefixes per `network` line.
const PREFIXES_PER_NETWORK: usize = 10;
/// The shortest sibling: shorter ones would hold the other receiver address too (198 and 203
/// share their first 5 bits) or much of the internet.
const SHORTEST_SIBLING: u8 = 8;
/// The spread prefixes' lengths.
const SPREAD_LENGTHS: std::ops::RangeInclusive<u8> = 16..=28;
/// Ranges the spread prefixes stay out of: the private ones the daemon puts in the trie
/// itself, loopback, "this network", benchmarking, multicast and reserved.
const RESERVED: [(Ipv4Addr, u8); 9] = [
    (Ipv4Addr::UNSPECIFIED, 8),
    (Ipv4Addr::new(10, 0, 0, 0), 8),
    (Ipv4Addr::new(100, 64, 0, 0), 10),
    (Ipv4Addr::new(127, 0, 0, 0), 8),
    (Ipv4Addr::new(169, 254, 0, 0), 16),
    (Ipv4Addr::new(172, 16, 0, 0), 12),
    (Ipv4Addr::new(192, 168, 0, 0), 16),
    (Ipv4Addr::new(198, 18, 0, 0), 15),
    (Ipv4Addr::new(224, 0, 0, 0), 3),
];

/// An IPv4 prefix with its host bits 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub address: Ipv4Addr,
    pub length: u8,
}

/// The mask of the first `length` bits.
fn mask(length: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(length)).unwrap_or(0)
}

impl Prefix {
    /// The prefix of `length` bits that holds `address`.
    #[must_use]
    pub fn containing(address: Ipv4Addr, length: u8) -> Self {
        Self {
            address: Ipv4Addr::from(u32::from(address) & mask(length)),
            length,
        }
    }

    /// Does this prefix hold `address`?
    #[must_use]
    pub fn contains(self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.length) == u32::from(self.address)
    }

    /// The prefix of `length` bits that shares `address`'s first `length - 1` bits and differs
    /// in the last one.
    #[must_use]
    pub fn sibling(address: Ipv4Addr, length: u8) -> Self {
        let flipped = u32::from(address) ^ (1 << (32 - u32::from(length)));
        Self::containing(Ipv4Addr::from(flipped), length)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.length)
    }
}

/// splitmix64: a small deterministic generator, so that every run has the same prefixes.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Is `prefix` fit to be a spread prefix: public, and holding none of the bench's addresses?
fn spreadable(prefix: Prefix) -> bool {
    let reserved = RESERVED
        .iter()
        .any(|&(address, length)| Prefix { address, length }.contains(prefix.address));
    let holds_traffic = RECEIVER_ADDRESSES
        .iter()
        .chain(&SENDER_ADDRESSES)
        .any(|&address| prefix.contains(address));
    !reserved && !holds_traffic
}

/// The `count` named prefixes (see the module's documentation), in the order written.
#[must_use]
pub fn named_prefixes(count: usize) -> Vec<Prefix> {
    let siblings = (SHORTEST_SIBLING..=32)
        .rev()
        .flat_map(|length| {
            RECEIVER_ADDRESSES
                .iter()
                .map(move |&address| Prefix::sibling(address, length))
        })
        .take(count);
    let mut prefixes: Vec<Prefix> = siblings.collect();
    let mut seen: HashSet<Prefix> = prefixes.iter().copied().collect();
    let mut random = SplitMix(0x50c5_7a75);
    let lengths = u64::from(SPREAD_LENGTHS.end() - SPREAD_LENGTHS.start() + 1);
    while prefixes.len() < count {
        let value = random.next();
        #[expect(
            clippy::cast_possible_truncation,
            reason = "the low 32 bits, on purpose"
        )]
        let address = Ipv4Addr::from(value as u32);
        let length = SPREAD_LENGTHS.start()
            + u8::try_from((value >> 32) % lengths).expect("fewer than 256 lengths");
        let prefix = Prefix::containing(address, length);
        if spreadable(prefix) && seen.insert(prefix) {
            prefixes.push(prefix);
        }
    }
    prefixes
}

/// The network a named prefix is in: `bench<index / 10>`.
#[must_use]
pub fn network_of(index: usize) -> String {
    format!("bench{}", index / PREFIXES_PER_NETWORK)
}

/// A config file with `count` named prefixes, ten a `network` line (none for 0).
#[must_use]
pub fn config_text(count: usize) -> String {
    let mut text = format!(
        "# sockstats-bench: {count} named prefixes (bench/src/destinations/prefixes.rs says \
         which)\n"
    );
    for (line, chunk) in named_prefixes(count)
        .chunks(PREFIXES_PER_NETWORK)
        .enumerate()
    {
        let prefixes: Vec<String> = chunk.iter().map(ToString::to_string).collect();
        writeln!(
            text,
            "network {} {}",
            network_of(line * PREFIXES_PER_NETWORK),
            prefixes.join(" ")
        )
        .expect("writing to a String cannot fail");
    }
    text
}

/// The named network the prefixes of `count` put `address` in (`None`: no named prefix holds
/// it), by longest match as the kernel decides.
#[must_use]
pub fn network_holding(count: usize, address: Ipv4Addr) -> Option<String> {
    named_prefixes(count)
        .iter()
        .enumerate()
        .filter(|(_, prefix)| prefix.contains(address))
        .max_by_key(|(_, prefix)| prefix.length)
        .map(|(index, _)| network_of(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length of the prefix `a` and `b` share.
    fn common_bits(a: Ipv4Addr, b: Ipv4Addr) -> u32 {
        (u32::from(a) ^ u32::from(b)).leading_zeros()
    }

    #[test]
    fn siblings_share_all_bits_but_the_last() {
        let address = Ipv4Addr::new(198, 51, 100, 2);
        assert_eq!(Prefix::sibling(address, 32).to_string(), "198.51.100.3/32");
        assert_eq!(Prefix::sibling(address, 31).to_string(), "198.51.100.0/31");
        assert_eq!(Prefix::sibling(address, 8).to_string(), "199.0.0.0/8");
        for length in SHORTEST_SIBLING..=32 {
            let sibling = Prefix::sibling(address, length);
            assert!(!sibling.contains(address), "{sibling}");
            assert_eq!(
                common_bits(sibling.address, address),
                u32::from(length) - 1,
                "{sibling}"
            );
        }
    }

    #[test]
    fn each_count_gives_that_many_distinct_prefixes_with_host_bits_zero() {
        for count in [0, 1, 10, 50, 51, 1000] {
            let prefixes = named_prefixes(count);
            assert_eq!(prefixes.len(), count);
            let distinct: HashSet<Prefix> = prefixes.iter().copied().collect();
            assert_eq!(distinct.len(), count);
            for prefix in prefixes {
                assert_eq!(Prefix::containing(prefix.address, prefix.length), prefix);
            }
        }
    }

    #[test]
    fn the_sender_sends_to_no_named_prefix_and_receives_from_bench0() {
        for count in [0, 10, 1000] {
            for receiver in RECEIVER_ADDRESSES {
                assert_eq!(network_holding(count, receiver), None, "{count}");
            }
            for sender in SENDER_ADDRESSES {
                let expected = (count >= 10).then(|| "bench0".to_owned());
                assert_eq!(network_holding(count, sender), expected, "{count}");
            }
        }
    }

    #[test]
    fn with_1000_prefixes_the_trie_branches_at_every_bit_from_7_on_the_receivers_path() {
        let prefixes = named_prefixes(1000);
        for receiver in RECEIVER_ADDRESSES {
            let branch_bits: HashSet<u32> = prefixes
                .iter()
                .map(|p| common_bits(p.address, receiver).min(u32::from(p.length)))
                .collect();
            for bit in u32::from(SHORTEST_SIBLING) - 1..32 {
                assert!(
                    branch_bits.contains(&bit),
                    "{receiver}: no branch at bit {bit}"
                );
            }
        }
    }

    #[test]
    fn spread_prefixes_stay_out_of_reserved_ranges() {
        for prefix in &named_prefixes(1000)[50..] {
            assert!(SPREAD_LENGTHS.contains(&prefix.length), "{prefix}");
            assert!(spreadable(*prefix), "{prefix}");
        }
    }

    #[test]
    fn the_config_has_ten_prefixes_a_line_under_distinct_names() {
        assert_eq!(config_text(0).lines().count(), 1);
        let text = config_text(1000);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(lines.len(), 100);
        let names: HashSet<&str> = lines
            .iter()
            .map(|line| line.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(names.len(), 100);
        assert!(lines[0].starts_with("network bench0 198.51.100.3/32 203.0.113.3/32 "));
        let written: usize = lines
            .iter()
            .map(|line| line.split_whitespace().count() - 2)
            .sum();
        assert_eq!(written, 1000);
        assert_eq!(config_text(10).lines().skip(1).count(), 1);
    }
}
