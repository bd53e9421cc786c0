//! The global variables of the kernel object: set by the daemon at load time, read-only in the
//! kernel, so the verifier drops the branches a kernel cannot take.

/// Hands every global of the kernel object to `$callback`: `NAME: type = initial value;`.
#[macro_export]
macro_rules! for_each_global {
    ($callback:ident) => {
        $callback! {
            /// (u64) id of the cgroup whose subtree is accounted.
            ROOT_CGROUP_ID: u64 = 0;
            /// (u32) depth of that cgroup below the cgroup2 mount; 0 = the whole host.
            ROOT_CGROUP_LEVEL: u32 = 0;
            /// (u32) 1 when tracing programs may call `bpf_get_current_ancestor_cgroup_id`
            /// (5.18+).
            TRACING_ANCESTOR_HELPER: u32 = 0;
            /// (u32) offset of `struct sock.sk_socket` (0 when unknown).
            SK_SOCKET_OFFSET: u32 = 0;
            /// (u32) offset of `struct socket.file` (0 when unknown).
            SOCKET_FILE_OFFSET: u32 = 0;
            /// (u32) offset of `skc_cookie` in `struct sock` before 5.12; 0 uses the helper.
            SOCK_COOKIE_OFFSET: u32 = 0;
            /// (u64) the namespace cookie every packet is charged to where `cgroup_skb`
            /// cannot ask; 0 where it can.
            PACKET_NETNS_COOKIE: u64 = 0;
            /// (u32) 1: per-socket state lives in the cookie-keyed hash (kernels before 5.11).
            STATE_BY_COOKIE: u32 = 0;
            /// (u32) capacity of the accounts (`--max-accounts`): ids at or above it are never
            /// made.
            MAX_ACCOUNTS: u32 = $crate::DEFAULT_MAX_ACCOUNTS;
            /// (u32) offset of `struct tcp_sock.bytes_acked` (0 when unknown).
            TCP_BYTES_ACKED_OFFSET: u32 = 0;
            /// (u32) offset of `struct tcp_sock.bytes_received` (0 when unknown).
            TCP_BYTES_RECEIVED_OFFSET: u32 = 0;
        }
    };
}

/// One global of the kernel object: its symbol and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalSpec {
    pub name: &'static str,
    pub size: usize,
}

macro_rules! global_names {
    ($( $(#[$doc:meta])* $name:ident: $type:ty = $initial:expr; )*) => {
        /// The names of the kernel object's globals (from `for_each_global!`), for
        /// `EbpfLoader::override_global`.
        pub mod globals {
            $( $(#[$doc])* pub const $name: &str = stringify!($name); )*
        }

        /// Every global of the kernel object with its size.
        pub const GLOBALS: &[GlobalSpec] = &[
            $( GlobalSpec { name: globals::$name, size: size_of::<$type>() } ),*
        ];
    };
}

for_each_global!(global_names);
