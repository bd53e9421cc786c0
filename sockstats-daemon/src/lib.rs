//! sockstats userspace: the daemon (`sockstatsd`) and the CLI (`sockstats`).
//!
//! Pure logic (label registry, attribution arithmetic, parsing) lives in modules that tests can
//! use without root; everything that touches the kernel is in [`kernel`], [`sys`] and [`daemon`]; the protocol's
//! operations in [`ops`] reach the kernel through [`kernel::Kernel`], so they are tested without root.
pub mod attribution;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod destinations;
pub mod grouping;
pub mod history;
pub mod interfaces;
pub mod kernel;
pub mod labels;
pub mod man;
pub mod metrics;
pub mod ops;
pub mod otlp;
pub mod peers;
pub mod rules;
pub mod state_file;
#[expect(
    unsafe_code,
    reason = "the one module of raw system calls, in safe wrappers"
)]
pub mod sys;
pub mod workloads;
