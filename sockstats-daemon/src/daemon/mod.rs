//! The running daemon: shared state, the Unix-socket server and request handling.
pub mod connection;
pub mod handler;
pub mod metrics_server;
pub mod refusal;
pub mod rule_ops;
pub mod server;
pub mod socket_file;
pub mod state;
pub mod stats_log;
pub mod validation;
pub mod views;

pub use server::{serve, ServerLimits};
pub use state::Daemon;
