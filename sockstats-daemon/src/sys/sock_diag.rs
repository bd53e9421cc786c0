//! The kernel's own TCP counters over `sock_diag` (`NETLINK_SOCK_DIAG`): `tcp_info`'s
//! `bytes_acked` and `bytes_received` per socket cookie, for the live sockets of the calling
//! thread's network namespace (a dump).
use std::io;

use netlink_packet_sock_diag::{
    inet::{nlas::Nla, ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags},
    SockDiagMessage, AF_INET, AF_INET6, IPPROTO_TCP,
};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use super::netlink_io;

/// One TCP socket's counters as the kernel keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpCounters {
    pub cookie: u64,
    /// Bytes the peer acknowledged (`tcpi_bytes_acked`; the SYN and FIN count one each).
    pub bytes_acked: u64,
    /// Bytes received in sequence (`tcpi_bytes_received`; a FIN counts one).
    pub bytes_received: u64,
    /// The TCP state (`TCP_CLOSE` = 7).
    pub state: u8,
}

/// The kernel's cookie, written as two native-endian u32 halves, low half first.
fn cookie(bytes: [u8; 8]) -> u64 {
    let low = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let high = u32::from_ne_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    u64::from(low) | (u64::from(high) << 32)
}

fn counters_of(response: &InetResponse) -> Option<TcpCounters> {
    response.nlas.iter().find_map(|nla| match nla {
        Nla::TcpInfo(info) => Some(TcpCounters {
            cookie: cookie(response.header.socket_id.cookie),
            bytes_acked: info.bytes_acked,
            bytes_received: info.bytes_received,
            state: response.header.state,
        }),
        _ => None,
    })
}

/// The TCP counters among the `sock_diag` messages of `replies`.
fn tcp_counters(replies: Vec<SockDiagMessage>) -> impl Iterator<Item = TcpCounters> {
    replies.into_iter().filter_map(|reply| match reply {
        SockDiagMessage::InetResponse(response) => counters_of(&response),
        _ => None,
    })
}

/// The counters of every TCP socket (IPv4 and IPv6, all states) of this network namespace.
pub fn dump_tcp() -> io::Result<Vec<TcpCounters>> {
    let mut all = Vec::new();
    for (family, socket_id) in [
        (AF_INET, SocketId::new_v4()),
        (AF_INET6, SocketId::new_v6()),
    ] {
        let request = SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::INFO,
            states: StateFlags::all(),
            socket_id,
        });
        all.extend(tcp_counters(netlink_io::dump(NETLINK_SOCK_DIAG, &request)?));
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_two_native_halves() {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&0x0000_1001_u32.to_ne_bytes());
        bytes[4..].copy_from_slice(&0x2_u32.to_ne_bytes());
        assert_eq!(cookie(bytes), 0x2_0000_1001);
    }
}
