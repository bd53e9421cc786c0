//! The running daemon: shared state, the Unix-socket server, rule syncing and the background
//! tasks. The protocol's operations are in [`crate::ops`].
pub mod metrics_server;
pub mod rule_sync;
pub mod run;
pub mod server;
pub mod shutdown;
pub mod socket_file;
pub mod state;
pub mod stats_log;
pub mod tasks;

pub use server::{serve, ServerLimits};
pub use state::Daemon;
