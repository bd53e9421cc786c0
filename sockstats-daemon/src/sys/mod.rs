//! Every raw syscall of the daemon, in small safe wrappers: the rest of the code is safe.
pub mod bpf_batch;
pub mod bpf_link;
pub mod bpf_syscall;
pub mod bpffs;
pub mod fd_passing;
pub mod kernel_logs;
pub mod memlock;
pub mod netlink;
pub mod netlink_io;
pub mod netns;
pub mod owners;
pub mod relabel;
pub mod sk_storage;
pub mod sock_diag;
pub mod socket_info;
