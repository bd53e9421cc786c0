//! The payload hook logic shared by both hook sets: the `sock_send_length`/`sock_recv_length`
//! tracepoints (Linux 6.3+) and the fexit programs on the protocols' sendmsg/recvmsg (older
//! kernels). Both hand over the socket, the call's return value and, for receives, its flags;
//! what counts is decided here, once.
use crate::sockets::{self, Direction};

/// `MSG_PEEK`: a peek reads bytes without consuming them; they are counted when really read.
const MSG_PEEK: i32 = 2;

/// The low 32 bits of an argument register: the kernel's `int`.
#[expect(clippy::cast_possible_truncation, reason = "the argument is a C int")]
#[inline(always)]
pub fn c_int(register: u64) -> i32 {
    register as i32
}

/// A send on `sk` (a `struct sock *`) returned `ret`: count it if it moved bytes.
#[inline(always)]
pub fn on_send(sk: *const u8, ret: i32) {
    if let Ok(bytes) = u64::try_from(ret) {
        sockets::count_payload(sk, Direction::Tx, bytes);
    }
}

/// A receive on `sk` with `flags` returned `ret`: count it if it consumed bytes.
#[inline(always)]
pub fn on_recv(sk: *const u8, ret: i32, flags: i32) {
    if flags & MSG_PEEK != 0 {
        return;
    }
    if let Ok(bytes) = u64::try_from(ret) {
        sockets::count_payload(sk, Direction::Rx, bytes);
    }
}
