//! One peer: a remote address and port, as the kernel recorded it (16 bytes, IPv4 as
//! `::ffff:a.b.c.d`).
use std::{
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
};

/// A remote address and port (0: the protocol has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    pub address: [u8; 16],
    pub port: u16,
}

impl Peer {
    /// The address, IPv4 for a v4-mapped one.
    #[must_use]
    pub fn ip(&self) -> IpAddr {
        Ipv6Addr::from(self.address).to_canonical()
    }
}

/// `198.51.100.2:443`, `[2001:db8::2]:443`; without `:port` when the port is 0.
impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == 0 {
            return write!(f, "{}", self.ip());
        }
        write!(f, "{}", SocketAddr::new(self.ip(), self.port))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn peers_are_written_as_addresses_with_ports() {
        let v4 = Peer {
            address: Ipv4Addr::new(198, 51, 100, 2).to_ipv6_mapped().octets(),
            port: 443,
        };
        assert_eq!(v4.to_string(), "198.51.100.2:443");
        let v6 = Peer {
            address: "2001:db8::2".parse::<Ipv6Addr>().unwrap().octets(),
            port: 53,
        };
        assert_eq!(v6.to_string(), "[2001:db8::2]:53");
        let no_port = Peer { port: 0, ..v6 };
        assert_eq!(no_port.to_string(), "2001:db8::2");
    }
}
