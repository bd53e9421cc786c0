//! Presentation for the `sockstats` CLI: human tables and byte units. No I/O here.
pub mod format;
pub mod watch;
