//! `cgroup_skb` ingress/egress: which interface and destination each socket's packets use, and
//! their IP-layer bytes and packets. Always lets the packet pass.
use aya_ebpf::{
    bindings::__sk_buff,
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie, bpf_sk_fullsock},
    programs::SkBuffContext,
};
use sockstats_common::Counter;

use crate::globals::PACKET_NETNS_COOKIE;
use crate::{
    accounts::Field,
    counters, destinations,
    relabel::{self, begin, end},
    slots,
    sockets::Direction,
    state::{self, Missing, SocketRef},
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

// `PACKET_NETNS_COOKIE` (a global) is the network namespace cookie every packet
// is charged to where `cgroup_skb` programs may not call `bpf_get_netns_cookie` (it came
// to them after 6.12): the daemon's own namespace's cookie; 0 where they may, and the helper
// tells each packet's namespace. A read-only global: the verifier never checks the branch not
// taken.

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
    let (bytes, packets) = wire_size(ctx, skb);
    // SAFETY: `skb` is the program's context.
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    // SAFETY: `sk` is checked for NULL first; the helper takes the context's socket.
    let full = if sk.is_null() {
        sk
    } else {
        unsafe { bpf_sk_fullsock(sk) }
    };
    if full.is_null() {
        // No socket, or a request or TIME_WAIT socket: no state of its own.
        counters::add(Counter::UntrackedWireBytes, bytes);
        return;
    }
    let (cookie, missing) = if state::by_cookie() {
        // SAFETY: a helper on the program's own context.
        let cookie = unsafe { bpf_get_socket_cookie(skb.cast()) };
        // SAFETY: `full` is a full socket the verifier lets us read.
        let (protocol, tcp_state) = unsafe { ((*full).protocol, (*full).state) };
        // A cookie-keyed state made here must be one a release (or the TCP_CLOSE backstop)
        // removes: established TCP only (accepted sockets, whose data comes before any recv).
        let may_create = protocol == u32::from(IPPROTO_TCP) && tcp_state == TCP_ESTABLISHED;
        (
            cookie,
            if may_create {
                Missing::Create
            } else {
                Missing::Skip
            },
        )
    } else {
        // Socket storage goes with the socket: any full socket may have one.
        (0, Missing::Create)
    };
    let mut created = false;
    let socket = SocketRef {
        sk: full.cast(),
        cookie,
    };
    let Some(state) = state::find(socket, missing, &mut created) else {
        let counter = if missing == Missing::Create {
            counters::bump(Counter::SocketsMapFull);
            match direction {
                Direction::Tx => Counter::OverflowWireTxBytes,
                Direction::Rx => Counter::OverflowWireRxBytes,
            }
        } else {
            Counter::UntrackedWireBytes
        };
        counters::add(counter, bytes);
        return;
    };
    if created {
        counters::bump(Counter::SocketsCreatedLazily);
    }
    // SAFETY: the ifindex is a field of the context.
    let ifindex = unsafe { (*skb).ifindex };
    let netns_cookie = netns_cookie_of(skb);
    // SAFETY: `state` points at the socket's state; begin/end bracket the operation.
    unsafe {
        let parity = begin(state);
        let destination = destinations::of_packet::<CAS>(ctx, state, direction, ifindex);
        let slot = slots::slot_for::<CAS>(state, netns_cookie, ifindex, destination);
        let field = match direction {
            Direction::Tx => {
                if (*state).tx_slot != slot {
                    (*state).tx_slot = slot;
                }
                Field::WireTx
            }
            Direction::Rx => {
                if (*state).rx_slot != slot {
                    (*state).rx_slot = slot;
                }
                Field::WireRx
            }
        };
        let _ = relabel::count(state, slot, parity, field, bytes, packets);
        end(state);
    }
}
