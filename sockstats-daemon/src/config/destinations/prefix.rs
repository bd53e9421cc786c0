//! One IPv4 or IPv6 prefix of a `network` line (`10.0.0.0/16`, `2001:db8::/32`, a bare address
//! for one host): parsing, normalising and refusing. It does not know networks or classes.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use super::super::{At, ConfigError};

/// What a prefix looks like, for the advice on a malformed one.
const INSTEAD: &str =
    "a prefix like `10.0.0.0/16` or `2001:db8::/32` (a bare address is one host: /32 or /128)";

/// An IPv4 or IPv6 prefix with its host bits 0 (the network address), as the kernel's
/// longest-prefix match takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefix {
    pub address: IpAddr,
    /// Leading bits that must match: 0–32 for IPv4, 0–128 for IPv6.
    pub length: u8,
}

impl Prefix {
    /// The longest length of a prefix of `address`'s family.
    #[must_use]
    pub const fn max_length(address: IpAddr) -> u8 {
        match address {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        }
    }

    /// The prefix of `length` bits that holds `address`: its host bits cleared.
    /// `length` must be at most [`Prefix::max_length`].
    #[must_use]
    pub fn containing(address: IpAddr, length: u8) -> Self {
        let address = match address {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(
                u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(length)).unwrap_or(0),
            )),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(length)).unwrap_or(0),
            )),
        };
        Self { address, length }
    }

    /// The `(address, length)` pair, for maps keyed by prefix.
    pub(super) const fn key(&self) -> (IpAddr, u8) {
        (self.address, self.length)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.length)
    }
}

/// Parses one prefix of a `network` line, refusing what the kernel could not match as written.
pub(super) fn prefix(at: &At<'_>, text: &str) -> Result<Prefix, ConfigError> {
    let (address, length) = match text.split_once('/') {
        Some((address, length)) => (address, Some(length)),
        None => (text, None),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| at.refuse(format!("{text:?} is not an IPv4 or IPv6 prefix"), INSTEAD))?;
    let max = Prefix::max_length(address);
    let family = match address {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    };
    let length = match length {
        None => max,
        Some(length) => length
            .bytes()
            .all(|byte| byte.is_ascii_digit())
            .then(|| length.parse::<u8>().ok())
            .flatten()
            .filter(|length| *length <= max)
            .ok_or_else(|| {
                at.refuse(
                    format!("{text:?} has no prefix length from 0 to {max}"),
                    &format!("an {family} prefix length from 0 to {max} after the `/`"),
                )
            })?,
    };
    let prefix = Prefix::containing(address, length);
    if prefix.address != address {
        return Err(at.refuse(
            format!("{text:?} has host bits set"),
            &format!("the network address `{prefix}`"),
        ));
    }
    if let Some(v4) = v4_mapped(&prefix) {
        return Err(at.refuse(
            format!(
                "{text:?} is a v4-mapped IPv6 prefix, and v4-mapped peers are classified as IPv4"
            ),
            &format!("the IPv4 prefix `{v4}`"),
        ));
    }
    Ok(prefix)
}

/// The IPv4 prefix a prefix inside `::ffff:0:0/96` stands for, if it is one.
fn v4_mapped(prefix: &Prefix) -> Option<Prefix> {
    let IpAddr::V6(v6) = prefix.address else {
        return None;
    };
    let v4 = v6.to_ipv4_mapped()?;
    let length = prefix.length.checked_sub(96)?;
    Some(Prefix {
        address: IpAddr::V4(v4),
        length,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parsed(text: &str) -> Result<Prefix, String> {
        let at = At {
            path: Path::new("/etc/sockstats/sockstats.conf"),
            number: 3,
            line: "",
        };
        prefix(&at, text).map_err(|error| error.to_string())
    }

    fn shown(text: &str) -> String {
        parsed(text).unwrap().to_string()
    }

    #[test]
    fn reads_and_normalises_prefixes() {
        assert_eq!(
            parsed("10.0.0.0/16").unwrap(),
            Prefix {
                address: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
                length: 16
            }
        );
        assert_eq!(shown("192.0.2.7"), "192.0.2.7/32");
        assert_eq!(shown("0.0.0.0/0"), "0.0.0.0/0");
        assert_eq!(shown("203.0.113.255/32"), "203.0.113.255/32");
        assert_eq!(shown("2001:0db8:0000::/32"), "2001:db8::/32");
        assert_eq!(shown("2001:db8::1"), "2001:db8::1/128");
        assert_eq!(shown("::/0"), "::/0");
        assert_eq!(shown("fd00:10::/48"), "fd00:10::/48");
        // Shorter than /96, so it holds more than the v4-mapped block: not a v4-mapped prefix.
        assert_eq!(shown("::/80"), "::/80");
    }

    #[test]
    fn clears_host_bits_for_any_length() {
        let address: IpAddr = "255.255.255.255".parse().unwrap();
        assert_eq!(Prefix::containing(address, 0).to_string(), "0.0.0.0/0");
        assert_eq!(
            Prefix::containing(address, 12).to_string(),
            "255.240.0.0/12"
        );
        assert_eq!(
            Prefix::containing(address, 32).to_string(),
            "255.255.255.255/32"
        );
        let address: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap();
        assert_eq!(Prefix::containing(address, 0).to_string(), "::/0");
        assert_eq!(Prefix::containing(address, 7).to_string(), "fe00::/7");
        assert_eq!(Prefix::containing(address, 128).address, address);
    }

    #[test]
    fn refuses_malformed_prefixes() {
        let instead = "write a prefix like `10.0.0.0/16` or `2001:db8::/32` (a bare address is one host: /32 or /128) instead";
        for bad in [
            "10.0.0/8",
            "10.0.0.256/32",
            "010.0.0.0/8",
            "vpc",
            "[2001:db8::]/32",
            "fe80::1%eth0",
            "",
        ] {
            assert_eq!(
                parsed(bad).unwrap_err(),
                format!(
                    "/etc/sockstats/sockstats.conf:3: {bad:?} is not an IPv4 or IPv6 prefix; {instead}"
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_lengths_out_of_range() {
        assert_eq!(
            parsed("10.0.0.0/33").unwrap_err(),
            "/etc/sockstats/sockstats.conf:3: \"10.0.0.0/33\" has no prefix length from 0 to 32; write an IPv4 prefix length from 0 to 32 after the `/` instead"
        );
        assert_eq!(
            parsed("2001:db8::/129").unwrap_err(),
            "/etc/sockstats/sockstats.conf:3: \"2001:db8::/129\" has no prefix length from 0 to 128; write an IPv6 prefix length from 0 to 128 after the `/` instead"
        );
        for bad in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/x",
            "10.0.0.0/8/8",
        ] {
            assert!(
                parsed(bad)
                    .unwrap_err()
                    .contains("has no prefix length from 0 to 32; write an IPv4 prefix length"),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_host_bits_with_the_network_address() {
        assert_eq!(
            parsed("10.0.0.1/16").unwrap_err(),
            "/etc/sockstats/sockstats.conf:3: \"10.0.0.1/16\" has host bits set; write the network address `10.0.0.0/16` instead"
        );
        assert_eq!(
            parsed("2001:db8::1/32").unwrap_err(),
            "/etc/sockstats/sockstats.conf:3: \"2001:db8::1/32\" has host bits set; write the network address `2001:db8::/32` instead"
        );
    }

    #[test]
    fn refuses_v4_mapped_prefixes_with_the_ipv4_one() {
        assert_eq!(
            parsed("::ffff:10.0.0.0/104").unwrap_err(),
            "/etc/sockstats/sockstats.conf:3: \"::ffff:10.0.0.0/104\" is a v4-mapped IPv6 prefix, and v4-mapped peers are classified as IPv4; write the IPv4 prefix `10.0.0.0/8` instead"
        );
        assert!(parsed("::ffff:192.0.2.1")
            .unwrap_err()
            .ends_with("write the IPv4 prefix `192.0.2.1/32` instead"));
        assert!(parsed("::ffff:0:0/96")
            .unwrap_err()
            .ends_with("write the IPv4 prefix `0.0.0.0/0` instead"));
    }
}
