//! The destination and the peer of a packet: its remote address and port (the destination of an
//! outgoing packet, the source of an incoming one); `host` on the loopback interface, else the
//! class or named network of the address, looked up in the daemon's prefix trie once per
//! socket and change of remote: the socket's state remembers the last address, port and
//! destination (also what `get --peers` shows of the socket).
use aya_ebpf::{maps::lpm_trie::Key, programs::SkBuffContext};
use sockstats_common::{
    SocketState, DESTINATION_HOST, DESTINATION_INTERNET, DESTINATION_UNKNOWN, LOOPBACK_IFINDEX,
};

use crate::{counters, maps::DESTINATIONS, sockets::Direction};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// `ETH_P_IP` and `ETH_P_IPV6` as `__sk_buff.protocol` holds them (network order).
const ETH_P_IP: u32 = 0x0800_u16.to_be() as u32;
const ETH_P_IPV6: u32 = 0x86dd_u16.to_be() as u32;

/// The port of the transport header at `at` of `header` (source first, destination second,
/// in network order), for `direction`'s remote end.
#[inline(always)]
fn port_at(header: &[u8], at: usize, direction: Direction) -> u16 {
    let at = match direction {
        Direction::Tx => at + 2,
        Direction::Rx => at,
    };
    match (header.get(at), header.get(at + 1)) {
        (Some(high), Some(low)) => u16::from_be_bytes([*high, *low]),
        _ => 0,
    }
}

/// The remote address (16 bytes, IPv4 as `::ffff:a.b.c.d`) and port (0 unless TCP or UDP) of
/// the packet, from one copy of its network header and the transport header's ports (every
/// IPv4 TCP or UDP packet has those 24 bytes, every IPv6 one 44); `None` when they cannot be
/// read.
#[inline(always)]
fn remote_of(ctx: &SkBuffContext, direction: Direction) -> Option<([u8; 16], u16)> {
    // SAFETY: `skb` is the program's context.
    let protocol = unsafe { (*ctx.skb.skb).protocol };
    if protocol == ETH_P_IP {
        let header = ctx.load::<[u8; 24]>(0).ok()?;
        let offset = match direction {
            Direction::Tx => 16,
            Direction::Rx => 12,
        };
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&header[offset..offset + 4]);
        let transport = usize::from(header[0] & 0x0f) * 4;
        let port = if header[9] != IPPROTO_TCP && header[9] != IPPROTO_UDP {
            0
        } else if transport == 20 {
            port_at(&header, 20, direction)
        } else {
            // IP options: the ports are further on.
            let ports = ctx.load::<[u8; 4]>(transport & 0x3f).ok()?;
            port_at(&ports, 0, direction)
        };
        return Some((mapped, port));
    }
    if protocol == ETH_P_IPV6 {
        let header = ctx.load::<[u8; 44]>(0).ok()?;
        let offset = match direction {
            Direction::Tx => 24,
            Direction::Rx => 8,
        };
        let mut address = [0u8; 16];
        address.copy_from_slice(&header[offset..offset + 16]);
        // Extension headers before TCP or UDP are not walked: such packets have no port.
        let port = if header[6] == IPPROTO_TCP || header[6] == IPPROTO_UDP {
            port_at(&header, 40, direction)
        } else {
            0
        };
        return Some((address, port));
    }
    None
}

/// The address as the two words [`SocketState::remote`] holds.
#[inline(always)]
fn words(address: &[u8; 16]) -> [u64; 2] {
    let mut low = [0u8; 8];
    let mut high = [0u8; 8];
    low.copy_from_slice(&address[..8]);
    high.copy_from_slice(&address[8..]);
    [u64::from_ne_bytes(low), u64::from_ne_bytes(high)]
}

/// The destination of `address` on `ifindex`: `host` on loopback, else the prefix trie's (no
/// prefix: the internet).
#[inline(always)]
fn classify(address: [u8; 16], ifindex: u32) -> u32 {
    if ifindex == LOOPBACK_IFINDEX {
        return DESTINATION_HOST;
    }
    let key = Key::new(128, address);
    DESTINATIONS
        .get(&key)
        .copied()
        .unwrap_or(DESTINATION_INTERNET)
}

/// The destination of the packet `ctx` of the socket with state `state`, remembering its
/// remote address and port in the state.
///
/// `CAS` (Linux 5.12+): the address, port and destination are remembered under a sequence
/// count that a writer claims with `cmpxchg` (odd while it writes, 2 more once it is done); a
/// reader takes them only if the count was even, not 0, and the same before and after its
/// read, so it never uses an address of one write with the destination of another. Without
/// `CAS` every packet off loopback looks its address up, and the address and port are stored
/// plainly, for the peers view only.
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
pub unsafe fn of_packet<const CAS: bool>(
    ctx: &SkBuffContext,
    state: *mut SocketState,
    direction: Direction,
    ifindex: u32,
) -> u32 {
    let Some((address, port)) = remote_of(ctx, direction) else {
        return if ifindex == LOOPBACK_IFINDEX {
            DESTINATION_HOST
        } else {
            DESTINATION_UNKNOWN
        };
    };
    let remote = words(&address);
    // SAFETY: field projections of the caller's pointer; the loads are in program order (x86-64
    // keeps loads in order, and volatile ones are not reordered by the compiler).
    unsafe {
        let sequence = &raw mut (*state).remote_sequence;
        let before = core::ptr::read_volatile(sequence);
        let cached = core::ptr::read_volatile(&raw const (*state).remote);
        let cached_port = core::ptr::read_volatile(&raw const (*state).remote_port);
        let same = cached == remote && cached_port == port;
        if !CAS {
            if !same || before == 0 {
                core::ptr::write_volatile(&raw mut (*state).remote, remote);
                core::ptr::write_volatile(&raw mut (*state).remote_port, port);
                counters::atomic_add(sequence, 2);
            }
            return classify(address, ifindex);
        }
        if before != 0 && before & 1 == 0 && same {
            let destination = core::ptr::read_volatile(&raw const (*state).remote_destination);
            if core::ptr::read_volatile(sequence) == before {
                return destination;
            }
        }
        let destination = classify(address, ifindex);
        if before & 1 == 0
            && !(same && before != 0)
            && counters::compare_exchange(sequence, before, before + 1)
        {
            core::ptr::write_volatile(&raw mut (*state).remote, remote);
            core::ptr::write_volatile(&raw mut (*state).remote_port, port);
            core::ptr::write_volatile(&raw mut (*state).remote_destination, destination);
            // A full barrier (lock add): the writes above are visible before the count is even.
            counters::atomic_add(sequence, 1);
        }
        destination
    }
}
