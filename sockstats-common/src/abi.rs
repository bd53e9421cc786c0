//! The kernel object's ABI, written once: the names and shapes of its maps ([`map`]), its
//! global variables ([`globals`]), its programs ([`program`]), the fexit programs and the
//! argument positions they read ([`FEXIT_PROGRAMS`]) and the failure and event counters
//! ([`crate::Counter`]).
//!
//! Each list is a `macro_rules!` table (`for_each_map!`, `for_each_global!`,
//! `for_each_program!`, `for_each_fexit_program!`) that hands its entries to a macro of the
//! caller's. The kernel programs (`sockstats-ebpf`) declare their maps, globals and fexit
//! programs from the tables; this module turns the same tables into the constants the daemon
//! uses; and a test of the daemon (`kernel::abi_check`) parses the built object and checks
//! that everything here is in it, with these sizes. Change a table, and both sides change.
//!
//! Nothing here may need `std`: the kernel crate is `no_std` for bpfel-unknown-none.
mod counters;
mod fexit;
mod globals_table;
mod maps;
mod programs;

pub use counters::Counter;
pub use fexit::{FExitBody, FExitProgram, FEXIT_PROGRAMS};
pub use globals_table::{globals, GlobalSpec, GLOBALS};
pub use maps::{map, MapKind, MapSpec};
pub use programs::{program, ProgramKind, ProgramSpec};
