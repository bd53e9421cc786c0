//! The peers of each label: which remote addresses and ports its bytes went to and came from,
//! for `get --peers`. Live sockets say so themselves (their state remembers their peer); the
//! sockets that closed since the daemon started leave a record in a ring buffer
//! (`sock_release`), which [`ClosedPeers`] folds into a bounded table per label.
pub mod closed;
pub mod peer;

pub use closed::ClosedPeers;
pub use peer::Peer;
