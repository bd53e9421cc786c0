//! The running daemon: shared state, the Unix-socket server and its connections, the
//! background tasks and their shutdown. The protocol's operations are in [`crate::ops`], rules
//! and their syncing in [`crate::rules`], the metrics and their server in [`crate::metrics`].
pub mod args;
pub mod run;
pub mod server;
pub mod shutdown;
pub mod state;
pub mod tasks;

pub use server::{serve, ServerLimits};
pub use state::Daemon;
