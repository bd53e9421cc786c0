//! The `sockstats` CLI: presentation ([`format`], shared with the client library), the live
//! view ([`watch`]) and `sockstats run` ([`run`]).
pub use sockstats_common::text as format;
pub mod args;
pub mod history;
pub mod plot;
pub mod run;
pub mod watch;
