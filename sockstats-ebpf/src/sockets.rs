//! What happens to a socket's state: made (at creation or on first traffic), owned, counted,
//! closed. Nothing is folded at close: the bytes are in the accounts already.
use aya_ebpf::{
    bindings::bpf_sock,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_get_socket_cookie,
    },
    programs::SockContext,
};
use aya_log_ebpf::warn;
use sockstats_common::{
    Counter, SocketState, DESTINATION_UNKNOWN, FLAG_EXPLICIT, FLAG_HELD, FLAG_OWNED,
    FLAG_RULE_PENDING,
};

use crate::{
    accounts::{self, Field},
    closed, counters,
    relabel::{self, begin, end},
    rules::{self, SeenBy, NO_RULE},
    scope,
    sock::{self, is_inet},
    state::{self, Missing, SocketRef},
};

#[derive(Clone, Copy)]
pub enum Direction {
    Tx,
    Rx,
}

/// The owner fields of the current task: (cgroup id, uid, tgid).
#[inline(always)]
pub fn current_owner() -> (u64, u32, u32) {
    // SAFETY: plain helper calls without arguments.
    let (pid_tgid, uid_gid, cgroup_id) = unsafe {
        (
            bpf_get_current_pid_tgid(),
            bpf_get_current_uid_gid(),
            bpf_get_current_cgroup_id(),
        )
    };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "uid is the low half, tgid the high half"
    )]
    (cgroup_id, uid_gid as u32, (pid_tgid >> 32) as u32)
}

/// A byte of the state's flags.
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
pub unsafe fn flag(state: *mut SocketState, index: usize) -> bool {
    // SAFETY: index < 4, inside the flags.
    unsafe {
        core::ptr::read_volatile((&raw const (*state).flags).cast::<u8>().add(index & 3)) != 0
    }
}

/// Sets or clears a byte of the state's flags.
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
pub unsafe fn set_flag(state: *mut SocketState, index: usize, on: bool) {
    // SAFETY: index < 4, inside the flags.
    unsafe {
        core::ptr::write_volatile(
            (&raw mut (*state).flags).cast::<u8>().add(index & 3),
            u8::from(on),
        );
    }
}

/// Makes the current task the owner of `state`: its owner account, the live-socket gauges
/// (when `held`: a process holds the socket, so `sock_release` will see it close) and the
/// rule that applies to it. Only called by an operation alone on the socket (or at creation).
///
/// # Safety
/// `state` must point at a socket's state.
#[inline(always)]
unsafe fn take_ownership(state: *mut SocketState, held: bool, seen_by: SeenBy) {
    let (cgroup_id, uid, tgid) = current_owner();
    // SAFETY: the caller's pointer.
    unsafe {
        (*state).cgroup_id = cgroup_id;
        (*state).uid = uid;
        (*state).tgid = tgid;
        let owner = accounts::owner_account_of(uid, cgroup_id, DESTINATION_UNKNOWN);
        (*state).owner_account = owner;
        if held && !flag(state, FLAG_HELD) {
            set_flag(state, FLAG_HELD, true);
            accounts::count_live(owner, (*state).current_label(), 1);
        }
        if !flag(state, FLAG_EXPLICIT) {
            let rule = rules::label_for(uid, seen_by);
            if rule != NO_RULE {
                (*state).rule_label = rule;
                set_flag(state, FLAG_RULE_PENDING, true);
            }
        }
        set_flag(state, FLAG_OWNED, true);
    }
}

/// Puts a pending rule's label on, if the caller is alone on the socket.
///
/// # Safety
/// `state` must point at a socket's state, inside [`begin`]/[`end`].
#[inline(always)]
unsafe fn apply_pending_rule(state: *mut SocketState) {
    // SAFETY: the caller's pointer.
    unsafe {
        if !flag(state, FLAG_RULE_PENDING) {
            return;
        }
        if flag(state, FLAG_EXPLICIT) {
            set_flag(state, FLAG_RULE_PENDING, false);
            return;
        }
        if relabel::try_switch(state, (*state).rule_label) {
            set_flag(state, FLAG_RULE_PENDING, false);
            counters::bump(Counter::SocketsLabeledByRule);
        } else {
            counters::bump(Counter::RuleLabelsDeferred);
        }
    }
}

fn overflow_of(direction: Direction) -> Counter {
    match direction {
        Direction::Tx => Counter::OverflowTxBytes,
        Direction::Rx => Counter::OverflowRxBytes,
    }
}

/// Adds `bytes` moved in `direction` by the socket `sk` (a `struct sock *` from a tracepoint
/// or fexit program) to its label's account of the interface and destination its packets
/// last used in that direction, and to its owner's account of that destination.
#[inline(always)]
pub fn count_payload(sk: *const u8, direction: Direction, bytes: u64) {
    if sk.is_null() || bytes == 0 || !sock::is_inet_sock(sk) {
        return;
    }
    let cookie = if state::by_cookie() {
        let cookie = sock::socket_cookie(sk);
        if cookie == 0 {
            // Only before 5.12, for a socket nothing asked the cookie of (see
            // `sock::socket_cookie`): counted, in the overflow bucket, never dropped.
            counters::bump(Counter::NoCookie);
            counters::add(overflow_of(direction), bytes);
            return;
        }
        cookie
    } else {
        0
    };
    let missing = if scope::current_task_in_scope() {
        Missing::Create
    } else {
        Missing::Skip
    };
    let mut created = false;
    let socket = SocketRef {
        sk: sk.cast_mut().cast(),
        cookie,
    };
    let Some(state) = state::find(socket, missing, &mut created) else {
        if missing == Missing::Create {
            counters::bump(Counter::SocketsMapFull);
            counters::add(overflow_of(direction), bytes);
        }
        return;
    };
    if created {
        counters::bump(Counter::SocketsCreatedLazily);
    }
    let field = match direction {
        Direction::Tx => Field::PayloadTx,
        Direction::Rx => Field::PayloadRx,
    };
    // SAFETY: `state` points at the socket's state; begin/end bracket the operation.
    unsafe {
        let mut parity = begin(state);
        let slot = relabel::ready_slot(
            state,
            match direction {
                Direction::Tx => (*state).tx_slot,
                Direction::Rx => (*state).rx_slot,
            },
        );
        let owner = if flag(state, FLAG_OWNED) {
            relabel::slot_owner_account(state, slot)
        } else if relabel::alone(state) {
            // Sockets older than the daemon and accepted ones: the first task that moves
            // bytes on them owns them.
            take_ownership(state, sock::held_by_a_process(sk), SeenBy::TracingProgram);
            relabel::slot_owner_account(state, slot)
        } else {
            let (cgroup_id, uid, _) = current_owner();
            accounts::owner_account_of(uid, cgroup_id, relabel::slot_destination(state, slot))
        };
        if flag(state, FLAG_RULE_PENDING) {
            apply_pending_rule(state);
            parity = core::ptr::read_volatile(&raw const (*state).generation) & 1;
        }
        // Payload in the overflow bucket is in no owner's account either, so that every
        // grouping covers the same bytes.
        if relabel::count(state, slot, parity, field, bytes, 0) {
            accounts::add_owner_payload(owner, field, bytes);
        }
        end(state);
    }
}

/// The cookie of a cgroup/sock program's inet socket (`None` for other families).
fn inet_cookie(ctx: &SockContext) -> Option<u64> {
    // SAFETY: `ctx.sock` is the program's context, a valid `struct bpf_sock`.
    let family = unsafe { (*ctx.sock).family };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "address families fit in u16"
    )]
    if !is_inet(family as u16) {
        return None;
    }
    // SAFETY: cgroup/sock programs may ask for their socket's cookie.
    Some(unsafe { bpf_get_socket_cookie(ctx.sock.cast::<bpf_sock>().cast()) })
}

/// `cgroup/sock_create`: make the state of a new inet socket, owned by the current task and
/// labeled by the rules.
pub fn on_create(ctx: &SockContext) {
    let Some(cookie) = inet_cookie(ctx) else {
        return;
    };
    let mut created = false;
    let socket = SocketRef {
        sk: ctx.sock.cast(),
        cookie,
    };
    let Some(state) = state::find(socket, Missing::Create, &mut created) else {
        // The socket's bytes will go to the overflow bucket.
        counters::bump(Counter::SocketsMapFull);
        warn!(
            ctx,
            "sockstats: no state for socket {}: its bytes go to the overflow bucket", cookie
        );
        return;
    };
    counters::bump(Counter::SocketsCreated);
    // SAFETY: a socket being created is used by nobody else yet.
    unsafe {
        // Sockets made here are user sockets: `sock_release` sees them close.
        take_ownership(state, true, SeenBy::CgroupProgram);
        if flag(state, FLAG_RULE_PENDING) {
            // No bytes yet: the label is put on directly.
            let rule = (*state).rule_label;
            accounts::move_live((*state).current_label(), u64::MAX);
            accounts::move_live(rule, 1);
            (*state).label = [rule, rule];
            set_flag(state, FLAG_RULE_PENDING, false);
            counters::bump(Counter::SocketsLabeledByRule);
        }
    }
}

/// `cgroup/sock_release`: the socket leaves the live-socket gauges, leaves its peer and payload
/// for `get --peers` (and, in the cookie-keyed layout, its state goes). Its bytes stay in the accounts, and its last packets still find
/// the socket storage, which lives until the kernel frees the socket.
pub fn on_release(ctx: &SockContext) {
    let Some(cookie) = inet_cookie(ctx) else {
        return;
    };
    let mut created = false;
    let socket = SocketRef {
        sk: ctx.sock.cast(),
        cookie,
    };
    if let Some(state) = state::find(socket, Missing::Skip, &mut created) {
        // SAFETY: `state` points at the socket's state.
        unsafe {
            if flag(state, FLAG_HELD) {
                set_flag(state, FLAG_HELD, false);
                accounts::count_live((*state).owner_account, (*state).current_label(), u64::MAX);
            }
            // No send or receive comes after the release: the payload is final.
            closed::report(state);
        }
    }
    counters::bump(Counter::SocketsReleased);
    state::forget(cookie);
}

/// `tp_btf/inet_sock_set_state` into `TCP_CLOSE`, before 5.11 only: the backstop that deletes
/// cookie-keyed states the release hook never sees (kernel sockets, accepted connections
/// dropped with their listener). Sockets a process still holds are left to `sock_release`.
pub fn on_tcp_close(sk: *const u8) {
    if !state::by_cookie() || sk.is_null() || !sock::is_inet_sock(sk) || sock::held_by_a_process(sk)
    {
        return;
    }
    let cookie = sock::socket_cookie(sk);
    if cookie == 0 {
        return;
    }
    let mut created = false;
    let socket = SocketRef {
        sk: sk.cast_mut().cast(),
        cookie,
    };
    if state::find(socket, Missing::Skip, &mut created).is_some() {
        state::forget(cookie);
        counters::bump(Counter::DeletedAtClose);
    }
}
