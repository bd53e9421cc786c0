//! Empty on the host. The kernel programs are the `sockstats-ebpf` binary target (src/main.rs),
//! built for bpfel-unknown-none by sockstats-daemon's build.rs; this library target only lets
//! that crate declare a build-dependency on this one, so cargo rebuilds it when they change.
#![no_std]
