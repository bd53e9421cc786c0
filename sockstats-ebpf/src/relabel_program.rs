//! The daemon's relabel requests: `setsockopt(fd, SOL_SOCKSTATS, SO_SOCKSTATS_LABEL,
//! &RelabelRequest)` on a socket it was handed. Only a request with the daemon's secret is
//! taken; everyone else's `SOL_SOCKSTATS` goes on to the kernel, which knows no such level
//! (`ENOPROTOOPT`).
use aya_ebpf::programs::SockoptContext;
use sockstats_common::{
    Control, RelabelRequest, FLAG_EXPLICIT, FLAG_RULE_PENDING, SOL_SOCKSTATS, SO_SOCKSTATS_LABEL,
};

use crate::{
    control,
    relabel::{begin, end, try_switch},
    sockets::set_flag,
    state::{self, Missing, SocketRef},
};

/// Pass the call on to the next program and the kernel.
const PASS: i32 = 1;
/// Refuse the call (`EPERM`): the daemon retries, as another operation was in flight.
const BUSY: i32 = 0;

pub fn on_setsockopt(ctx: &SockoptContext) -> i32 {
    let opt = ctx.sockopt;
    // SAFETY: `opt` is the program's context.
    let (level, optname) = unsafe { ((*opt).level, (*opt).optname) };
    if level != SOL_SOCKSTATS || optname != SO_SOCKSTATS_LABEL {
        return PASS;
    }
    // SAFETY: the context's buffer bounds, checked before the read as the verifier demands.
    let request = unsafe {
        let start = (*opt).__bindgen_anon_2.optval.cast::<u8>();
        let end = (*opt).__bindgen_anon_3.optval_end.cast::<u8>();
        if start.is_null() || start.wrapping_add(size_of::<RelabelRequest>()) > end {
            return PASS;
        }
        core::ptr::read_unaligned(start.cast::<RelabelRequest>())
    };
    let token = control::get(Control::Token);
    if token == 0 || request.token != token {
        return PASS;
    }
    // SAFETY: the context's socket, a full socket.
    let sk = unsafe { (*opt).__bindgen_anon_1.sk };
    let mut created = false;
    let socket = SocketRef {
        sk: sk.cast(),
        cookie: request.cookie,
    };
    let Some(state) = state::find(socket, Missing::Create, &mut created) else {
        return BUSY;
    };
    // SAFETY: `state` points at the socket's state; begin/end bracket the operation.
    let done = unsafe {
        let _ = begin(state);
        let done = try_switch(state, request.label);
        if done {
            set_flag(state, FLAG_EXPLICIT, true);
            set_flag(state, FLAG_RULE_PENDING, false);
        }
        end(state);
        done
    };
    if !done {
        return BUSY;
    }
    // SAFETY: the context's `optlen`: -1 keeps the kernel's own handler out.
    unsafe { (*opt).optlen = -1 };
    PASS
}
