//! The destination of a packet: `host` for the loopback interface, else the class or named
//! network of its remote address (the destination of an outgoing packet, the source of an
//! incoming one), looked up in the daemon's prefix trie once per socket and change of remote
//! address: the socket's state remembers the last address and its destination.
use aya_ebpf::{maps::lpm_trie::Key, programs::SkBuffContext};
use sockstats_common::{
    SocketState, DESTINATION_HOST, DESTINATION_INTERNET, DESTINATION_UNKNOWN, LOOPBACK_IFINDEX,
};

use crate::{counters, maps::DESTINATIONS, sockets::Direction};

/// The remote address of the packet as 16 bytes (IPv4 as `::ffff:a.b.c.d`); `None` when its
/// header cannot be read.
#[inline(always)]
fn remote_of(ctx: &SkBuffContext, direction: Direction) -> Option<[u8; 16]> {
    let first = ctx.load::<u8>(0).ok()?;
    match first >> 4 {
        4 => {
            // IPv4 header: source at 12, destination at 16.
            let offset = match direction {
                Direction::Tx => 16,
                Direction::Rx => 12,
            };
            let v4 = ctx.load::<[u8; 4]>(offset).ok()?;
            let mut mapped = [0u8; 16];
            mapped[10] = 0xff;
            mapped[11] = 0xff;
            mapped[12..].copy_from_slice(&v4);
            Some(mapped)
        }
        6 => {
            // IPv6 header: source at 8, destination at 24.
            let offset = match direction {
                Direction::Tx => 24,
                Direction::Rx => 8,
            };
            ctx.load::<[u8; 16]>(offset).ok()
        }
        _ => None,
    }
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

/// The prefix trie's destination of `address` (no prefix: the internet).
#[inline(always)]
fn look_up(address: [u8; 16]) -> u32 {
    let key = Key::new(128, address);
    DESTINATIONS
        .get(&key)
        .copied()
        .unwrap_or(DESTINATION_INTERNET)
}

/// The destination of the packet `ctx` of the socket with state `state`.
///
/// `CAS` (Linux 5.12+): the last address and its destination are remembered in the state
/// under a sequence count that a writer claims with `cmpxchg`; a reader takes them only if the
/// count was even, not 0, and the same before and after its read, so it never uses an address
/// of one write with the destination of another. Without `CAS` every packet off the loopback
/// interface looks its address up.
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
    if ifindex == LOOPBACK_IFINDEX {
        return DESTINATION_HOST;
    }
    let Some(address) = remote_of(ctx, direction) else {
        return DESTINATION_UNKNOWN;
    };
    if !CAS {
        return look_up(address);
    }
    let remote = words(&address);
    // SAFETY: field projections of the caller's pointer; the loads are in program order (x86-64
    // keeps loads in order, and volatile ones are not reordered by the compiler).
    unsafe {
        let sequence = &raw mut (*state).remote_sequence;
        let before = core::ptr::read_volatile(sequence);
        if before != 0 && before & 1 == 0 {
            let cached = core::ptr::read_volatile(&raw const (*state).remote);
            let destination = core::ptr::read_volatile(&raw const (*state).remote_destination);
            if cached == remote && core::ptr::read_volatile(sequence) == before {
                return destination;
            }
        }
        let destination = look_up(address);
        if before & 1 == 0 && counters::compare_exchange(sequence, before, before + 1) {
            core::ptr::write_volatile(&raw mut (*state).remote, remote);
            core::ptr::write_volatile(&raw mut (*state).remote_destination, destination);
            // A full barrier (lock add): the writes above are visible before the count is even.
            counters::atomic_add(sequence, 1);
        }
        destination
    }
}
