//! `cgroup_skb` ingress/egress: which interface each socket's packets use, and their IP-layer
//! bytes and packets. Always lets the packet pass.
use aya_ebpf::{
    bindings::__sk_buff,
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_sk_fullsock},
    programs::SkBuffContext,
    Global,
};
use sockstats_common::{Counter, IfaceCounters, SocketEntry};

use crate::{
    counters::{self, atomic_add},
    slots,
    sockets::{self, Direction},
    totals,
};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// `TCP_ESTABLISHED` (`include/net/tcp_states.h`).
const TCP_ESTABLISHED: u32 = 1;

/// IP-layer length of all segments of a GSO/GRO packet: `skb->len` holds the headers once
/// (<https://elixir.bootlin.com/linux/v6.18/source/include/linux/skbuff.h>), each further
/// segment repeats them on the wire.
fn wire_size(ctx: &SkBuffContext, skb: *const __sk_buff) -> (u64, u64) {
    // SAFETY: `skb` is the program's context.
    let (len, segs) = unsafe { (u64::from((*skb).len), u64::from((*skb).gso_segs)) };
    if segs <= 1 {
        return (len, 1);
    }
    (len + (segs - 1) * header_len(ctx), segs)
}

/// Network plus transport header length of the packet (0 where it cannot be read).
fn header_len(ctx: &SkBuffContext) -> u64 {
    let Ok(first) = ctx.load::<u8>(0) else {
        return 0;
    };
    let (ip_len, protocol) = match first >> 4 {
        4 => (u64::from(first & 0x0f) * 4, ctx.load::<u8>(9).unwrap_or(0)),
        6 => (40, ctx.load::<u8>(6).unwrap_or(0)),
        _ => return 0,
    };
    let transport = match protocol {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "an IPv4 header is at most 60 bytes"
        )]
        IPPROTO_TCP => ctx
            .load::<u8>(ip_len as usize + 12)
            .map_or(0, |b| u64::from(b >> 4) * 4),
        IPPROTO_UDP => 8,
        _ => 0,
    };
    ip_len + transport
}

/// May a packet make the entry of its socket? Only for established TCP sockets: accepted
/// sockets never pass `sock_create`, and their first data arrives before any `recvmsg`. Never
/// for closing, `TIME_WAIT` or request sockets or listeners, whose release we would never see
/// (closed sockets' last packets are caught by their tombstone first).
fn may_create_entry(skb: *const __sk_buff) -> bool {
    // SAFETY: `skb` is the program's context.
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return false;
    }
    // SAFETY: `sk` is a non-NULL socket of the context.
    let sk = unsafe { bpf_sk_fullsock(sk) };
    if sk.is_null() {
        return false;
    }
    // SAFETY: `sk` is a full socket the verifier lets us read.
    let (protocol, state) = unsafe { ((*sk).protocol, (*sk).state) };
    protocol == u32::from(IPPROTO_TCP) && state == TCP_ESTABLISHED
}

/// The network namespace cookie every packet is charged to where `cgroup_skb` programs may
/// not call `bpf_get_netns_cookie` (it came to them after 6.12): the daemon's own namespace's
/// cookie, set at load time; 0 where they may, and the helper tells each packet's namespace.
/// A read-only global: the verifier never checks the branch not taken.
#[no_mangle]
static PACKET_NETNS_COOKIE: Global<u64> = Global::new(0);

/// The namespace cookie of the packet `skb`.
#[inline(always)]
fn netns_cookie_of(skb: *const __sk_buff) -> u64 {
    let fixed = PACKET_NETNS_COOKIE.load();
    if fixed != 0 {
        return fixed;
    }
    // SAFETY: a helper on the program's own context.
    unsafe { bpf_get_netns_cookie(skb.cast_mut().cast()) }
}

/// Records the interface and the IP-layer size of one packet of a socket. `CAS`: claim
/// interface slots with `cmpxchg` (BPF atomics beyond add need Linux 5.12; see
/// [`slots::slot_for`]).
#[inline(always)]
pub fn on_packet<const CAS: bool>(ctx: &SkBuffContext, direction: Direction) {
    let skb = ctx.skb.skb;
    // SAFETY: helpers on the program's own context.
    let (cookie, ifindex) = unsafe { (bpf_get_socket_cookie(skb.cast()), (*skb).ifindex) };
    let netns_cookie = netns_cookie_of(skb);
    let (bytes, packets) = wire_size(ctx, skb);
    let entry = match sockets::SOCKETS.get_ptr_mut(cookie) {
        Some(entry) => entry,
        // SAFETY: the label is copied out at once.
        None if let Some(label) = unsafe { sockets::RELEASED.get(cookie) }.copied() => {
            let mut wire = IfaceCounters::default();
            match direction {
                Direction::Tx => {
                    wire.wire_bytes.tx_bytes = bytes;
                    wire.wire_packets.tx_packets = packets;
                }
                Direction::Rx => {
                    wire.wire_bytes.rx_bytes = bytes;
                    wire.wire_packets.rx_packets = packets;
                }
            }
            totals::add_late_packet(ctx, label, netns_cookie, ifindex, &wire);
            return;
        }
        None if may_create_entry(skb) => {
            // Owner unknown here (softirq context): the first sendmsg/recvmsg fills it in.
            if let Some(entry) = sockets::entry_or_insert(cookie, &SocketEntry::default()) {
                entry
            } else {
                let overflow = match direction {
                    Direction::Tx => Counter::OverflowWireTxBytes,
                    Direction::Rx => Counter::OverflowWireRxBytes,
                };
                counters::add(overflow, bytes);
                return;
            }
        }
        None => {
            counters::add(Counter::UntrackedWireBytes, bytes);
            return;
        }
    };
    // SAFETY: `entry` points at a value of SOCKETS; slot indices are bounds-checked and the
    // adds atomic.
    unsafe {
        let slot = slots::slot_for::<CAS>(entry, netns_cookie, ifindex);
        let counters = slots::counters_of(entry, slot);
        match direction {
            Direction::Tx => {
                if (*entry).tx_slot != slot {
                    (*entry).tx_slot = slot;
                }
                atomic_add(&raw mut (*counters).wire_bytes.tx_bytes, bytes);
                atomic_add(&raw mut (*counters).wire_packets.tx_packets, packets);
            }
            Direction::Rx => {
                if (*entry).rx_slot != slot {
                    (*entry).rx_slot = slot;
                }
                atomic_add(&raw mut (*counters).wire_bytes.rx_bytes, bytes);
                atomic_add(&raw mut (*counters).wire_packets.rx_packets, packets);
            }
        }
    }
}
