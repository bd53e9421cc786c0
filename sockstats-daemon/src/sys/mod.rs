//! Every raw syscall of the daemon, in small safe wrappers: the rest of the code is safe. This
//! is the only module of the daemon allowed `unsafe` (the crates deny `unsafe_code`).
pub mod bpf_batch;
pub mod bpf_link;
pub mod bpf_probe;
pub mod bpf_syscall;
pub mod bpffs;
pub mod btf_mapping;
pub mod child;
pub mod fd_passing;
pub mod kernel_logs;
pub mod malloc;
pub mod memlock;
pub mod netlink;
pub mod netlink_io;
pub mod netns;
pub mod owners;
pub mod relabel;
pub mod signal_forwarding;
pub mod sk_storage;
pub mod sock_diag;
pub mod socket_info;
