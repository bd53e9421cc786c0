//! What a `struct sock *` handed to a tracing program tells about itself: its family, its
//! cookie, whether a process holds it. BTF-checked loads where the verifier allows them.
use crate::globals::{SK_SOCKET_OFFSET, SOCKET_FILE_OFFSET, SOCK_COOKIE_OFFSET};
use aya_ebpf::helpers::{bpf_get_socket_cookie, bpf_probe_read_kernel};

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// Offset of `skc_family` in `struct sock` (inside `struct sock_common`, which starts it):
/// after `skc_addrpair` (8 bytes), `skc_hash` (4) and `skc_portpair` (4). This layout has not
/// changed since Linux 3.x: <https://elixir.bootlin.com/linux/v6.18/source/include/net/sock.h>
const SKC_FAMILY_OFFSET: usize = 16;

pub fn is_inet(family: u16) -> bool {
    family == AF_INET || family == AF_INET6
}

/// The address family of the `struct sock *` `sk`.
#[inline(always)]
fn family_of(sk: *const u8) -> u16 {
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "skc_family is a u16 at a 2-aligned offset of an aligned struct sock"
    )]
    let family_ptr = sk.wrapping_add(SKC_FAMILY_OFFSET).cast::<u16>();
    // SAFETY: `sk` is a BTF-typed `struct sock *` argument (tp_btf/fexit): the verifier checks
    // this read against the kernel's BTF and makes it a fault-safe load (`BPF_PROBE_MEM`),
    // without the cost of a bpf_probe_read_kernel helper call.
    unsafe { core::ptr::read_volatile(family_ptr) }
}

/// Is the `struct sock *` `sk` an `AF_INET`/`AF_INET6` socket?
#[inline(always)]
pub fn is_inet_sock(sk: *const u8) -> bool {
    is_inet(family_of(sk))
}

/// Is the `struct sock *` `sk` an `AF_INET` socket?
#[inline(always)]
pub fn is_ipv4_sock(sk: *const u8) -> bool {
    family_of(sk) == AF_INET
}

// `SOCK_COOKIE_OFFSET` (a global): the offset of `sk_cookie` (`__sk_common.skc_cookie`) in
// `struct sock`, read from the kernel's BTF by the daemon when tracing programs may not call
// `bpf_get_socket_cookie` (before 5.12); 0 when they may. A read-only global: the verifier sees
// it as a constant and never checks the branch not taken, so the helper call does not stop the
// program loading on 5.10.

/// The cookie of the `struct sock *` `sk` handed to a tracing program; 0 if it has none yet.
///
/// With the helper (Linux 5.12+) a socket without a cookie gets one. Before, the field is
/// read as it is: the cookie is made when something first asks for it, and the cgroup
/// programs ask for every socket in the accounted subtree (at creation, or at its first
/// packet for accepted sockets), before its first send or receive returns.
#[inline(always)]
pub fn socket_cookie(sk: *const u8) -> u64 {
    let offset = SOCK_COOKIE_OFFSET.load();
    if offset == 0 {
        // SAFETY: `sk` is the tracing program's valid socket pointer.
        return unsafe { bpf_get_socket_cookie(sk.cast_mut().cast()) };
    }
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "skc_cookie is an atomic64_t, 8-aligned in an aligned struct sock"
    )]
    let cookie_ptr = sk.wrapping_add(offset as usize).cast::<u64>();
    // SAFETY: probe_read copes with any address.
    unsafe { bpf_probe_read_kernel(cookie_ptr) }.unwrap_or(0)
}

// `SK_SOCKET_OFFSET` and `SOCKET_FILE_OFFSET` (globals): offsets of `struct sock.sk_socket` and
// `struct socket.file` (from the kernel's BTF; 0 when unknown).

/// Does a process hold `sk` open (it has a `struct socket` with a file)? Then `sock_release`
/// will see it close.
#[inline(always)]
pub fn held_by_a_process(sk: *const u8) -> bool {
    let (sk_socket, file) = (SK_SOCKET_OFFSET.load(), SOCKET_FILE_OFFSET.load());
    if sk_socket == 0 || file == 0 {
        return false;
    }
    // SAFETY: probe reads cope with any address (and alignment); `sk` is the tracepoint's
    // socket, and both offsets come from the kernel's BTF.
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "pointer fields are 8-aligned in BTF"
    )]
    let socket =
        unsafe { bpf_probe_read_kernel(sk.wrapping_add(sk_socket as usize).cast::<u64>()) };
    let Ok(socket) = socket else {
        return false;
    };
    if socket == 0 {
        return false;
    }
    let socket = socket as *const u8;
    // SAFETY: as above.
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "pointer fields are 8-aligned in BTF"
    )]
    let file = unsafe { bpf_probe_read_kernel(socket.wrapping_add(file as usize).cast::<u64>()) };
    file.is_ok_and(|file| file != 0)
}
