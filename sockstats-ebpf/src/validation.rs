//! Validation of closed sockets: the kernel's own final TCP counters (`tcp_info`'s
//! `bytes_acked` and `bytes_received`), added per label when a TCP socket reaches `TCP_CLOSE`,
//! only while the daemon asks for it (`--validate-closed`).
use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_probe_read_kernel};
use sockstats_common::{Control, Counter, Totals};

use crate::{
    control,
    counters::{self, atomic_add},
    sock,
    state::{self, Missing, SocketRef},
};
use crate::{
    globals::{TCP_BYTES_ACKED_OFFSET, TCP_BYTES_RECEIVED_OFFSET},
    maps::VALIDATION,
};

// `TCP_BYTES_ACKED_OFFSET` and `TCP_BYTES_RECEIVED_OFFSET` (globals): offsets of `struct
// tcp_sock.bytes_acked` and `bytes_received` (from the kernel's BTF; 0 when unknown, and
// validation of closed sockets is then off).

/// Reads the `u64` at `offset` of `sk`.
#[inline(always)]
fn read_u64(sk: *const u8, offset: u32) -> u64 {
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "both counters are u64 fields of struct tcp_sock"
    )]
    let field = sk.wrapping_add(offset as usize).cast::<u64>();
    // SAFETY: probe reads cope with any address.
    unsafe { bpf_probe_read_kernel(field) }.unwrap_or(0)
}

/// A TCP socket `sk` reached `TCP_CLOSE`: its counters are final.
#[inline(always)]
pub fn on_tcp_close(sk: *const u8) {
    if control::get(Control::ValidateClosed) != 1 {
        return;
    }
    let (acked, received) = (
        TCP_BYTES_ACKED_OFFSET.load(),
        TCP_BYTES_RECEIVED_OFFSET.load(),
    );
    if acked == 0 || received == 0 || sk.is_null() || !sock::is_inet_sock(sk) {
        return;
    }
    let mut created = false;
    let socket = SocketRef {
        sk: sk.cast_mut().cast(),
        cookie: if state::by_cookie() {
            sock::socket_cookie(sk)
        } else {
            0
        },
    };
    let Some(state) = state::find(socket, Missing::Skip, &mut created) else {
        return;
    };
    // SAFETY: `state` points at the socket's state.
    let label = unsafe { (*state).current_label() };
    let totals = if let Some(totals) = VALIDATION.get_ptr_mut(label) {
        totals
    } else {
        let _ = VALIDATION.insert(label, Totals::default(), u64::from(BPF_NOEXIST));
        let Some(totals) = VALIDATION.get_ptr_mut(label) else {
            counters::bump(Counter::ValidationFull);
            return;
        };
        totals
    };
    // SAFETY: `totals` points at a value of VALIDATION; the adds are atomic.
    unsafe {
        atomic_add(&raw mut (*totals).tx_bytes, read_u64(sk, acked));
        atomic_add(&raw mut (*totals).rx_bytes, read_u64(sk, received));
    }
    counters::bump(Counter::ValidatedClosed);
}
