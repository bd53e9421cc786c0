//! The failure and event counters of the kernel programs: one table gives each its slot in
//! the `COUNTERS` map and its stable name, so the enum, [`Counter::COUNT`], [`Counter::ALL`] and
//! [`Counter::name`] cannot disagree.

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $variant:ident = $slot:literal => $name:literal; )*) => {
        /// Slots of the `COUNTERS` map. Every way the kernel side can fail to account a byte
        /// has one.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Counter {
            $( $(#[doc = $doc])* $variant = $slot, )*
        }

        impl Counter {
            /// Every counter, in slot order: `ALL[i] as u32 == i`.
            pub const ALL: [Counter; Self::COUNT as usize] = [$(Counter::$variant),*];
            /// Number of slots in the `COUNTERS` map.
            #[expect(clippy::cast_possible_truncation, reason = "a handful of counters")]
            pub const COUNT: u32 = [$($slot),*].len() as u32;

            /// Stable `snake_case` name, used by `status` and metrics.
            #[must_use]
            pub const fn name(self) -> &'static str {
                match self {
                    $( Counter::$variant => $name, )*
                }
            }
        }
    };
}

counters! {
    /// Times a socket's state could not be made (socket storage refused it, or the cookie-keyed map of kernels before 5.11 was full); its bytes went to the overflow bucket.
    SocketsMapFull = 0 => "sockets_map_full";
    /// Payload bytes sent that no account could take (no state, or the accounts were full).
    OverflowTxBytes = 1 => "overflow_tx_bytes";
    /// Payload bytes received that no account could take.
    OverflowRxBytes = 2 => "overflow_rx_bytes";
    /// Times a (label, interface) account could not be made: [`ACCOUNTS_MAP`](crate::ACCOUNTS_MAP) was full.
    AccountsFull = 3 => "accounts_full";
    /// Sockets whose state `cgroup/sock_create` made.
    SocketsCreated = 4 => "sockets_created";
    /// Sockets whose state was made on first traffic (accepted, or older than the programs).
    SocketsCreatedLazily = 5 => "sockets_created_lazily";
    /// Sockets a process closed (`cgroup/sock_release`).
    SocketsReleased = 6 => "sockets_released";
    /// Relabels whose bytes began moving between accounts (bumped before the move). While it differs from [`Counter::MovesFinished`] a move is in flight; the daemon uses the pair to take snapshots no move interleaves with.
    MovesStarted = 7 => "relabel_moves_started";
    /// Packets of sockets that had already used [`INTERFACE_SLOTS`](crate::INTERFACE_SLOTS) other interfaces (their bytes are charged to the "other" interface).
    InterfaceSlotsFull = 8 => "interface_slots_full";
    /// IP-layer bytes sent that no account could take.
    OverflowWireTxBytes = 9 => "overflow_wire_tx_bytes";
    /// IP-layer bytes received that no account could take.
    OverflowWireRxBytes = 10 => "overflow_wire_rx_bytes";
    /// IP-layer bytes of packets without a full socket (request and `TIME_WAIT` sockets, kernel control sockets' RSTs), and, before 5.11, of sockets whose state is gone.
    UntrackedWireBytes = 11 => "untracked_wire_bytes";
    /// Before 5.11 only: cookie-keyed states deleted when TCP moved a socket no process holds to `TCP_CLOSE` (kernel sockets, connections dropped from a closing listener's accept queue).
    DeletedAtClose = 12 => "deleted_at_close";
    /// Times an owner account could not be made: [`OWNER_ACCOUNTS_MAP`](crate::OWNER_ACCOUNTS_MAP) was full.
    OwnerAccountsFull = 13 => "owner_accounts_full";
    /// Payload bytes sent by sockets whose owner had no account (they are in the label accounts, not in any owner's).
    OwnerOverflowTxBytes = 14 => "owner_overflow_tx_bytes";
    /// Payload bytes received by sockets whose owner had no account.
    OwnerOverflowRxBytes = 15 => "owner_overflow_rx_bytes";
    /// Sockets a rule (uid or cgroup) labeled.
    SocketsLabeledByRule = 16 => "sockets_labeled_by_rule";
    /// Times a rule's label waited for the socket's next operation because another one was in flight.
    RuleLabelsDeferred = 17 => "rule_labels_deferred";
    /// Sends and receives of sockets that had no cookie yet, seen by the fexit fallback on kernels before 5.12 (where tracing programs cannot make one) with cookie-keyed state; their bytes went to the overflow bucket.
    NoCookie = 18 => "no_cookie";
    /// Relabels of sockets (by the daemon or a rule) that switched the label.
    Relabels = 19 => "relabels";
    /// Relabel attempts that found another operation in flight on the socket and were retried.
    RelabelsBusy = 20 => "relabels_busy";
    /// Relabels whose bytes finished moving (bumped after the move).
    MovesFinished = 21 => "relabel_moves_finished";
    /// Closed TCP sockets whose final counters found [`VALIDATION_MAP`](crate::VALIDATION_MAP) full.
    ValidationFull = 22 => "validation_full";
    /// Closed TCP sockets whose final counters went into [`VALIDATION_MAP`](crate::VALIDATION_MAP).
    ValidatedClosed = 23 => "validated_closed_sockets";
    /// Closed sockets whose final bytes and peer found [`CLOSED_SOCKETS_MAP`](crate::CLOSED_SOCKETS_MAP) full (the daemon reads it several times a second): their bytes stay in the totals, only not under their peer in `get --peers`.
    ClosedSocketsLost = 24 => "closed_sockets_lost";
}

// The slots are 0, 1, 2, … in table order, so a `[u64; COUNT]` read from the map pairs with
// `ALL` by position.
const _: () = {
    let mut slot = 0;
    while slot < Counter::ALL.len() {
        assert!(
            Counter::ALL[slot] as usize == slot,
            "counter slots must be 0, 1, 2, … in order"
        );
        slot += 1;
    }
};
