//! The two network namespaces of the destination workloads, linked by a veth pair that carries
//! two documentation prefixes, so that datagrams can go to two remote addresses in different
//! prefixes over a real (non-loopback) interface. Traffic never leaves them. They are deleted
//! when the [`Topology`] is dropped, also when a workload fails or panics.
use std::{fs::File, net::Ipv4Addr, process::Command, thread};

use anyhow::{bail, Context as _, Result};

use crate::sys;

/// The sending side's addresses, one per prefix.
pub const SENDER_ADDRESSES: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 1),
    Ipv4Addr::new(203, 0, 113, 1),
];
/// The receiving side's addresses, one per prefix, in the order of [`SENDER_ADDRESSES`].
pub const RECEIVER_ADDRESSES: [Ipv4Addr; 2] = [
    Ipv4Addr::new(198, 51, 100, 2),
    Ipv4Addr::new(203, 0, 113, 2),
];
/// The length of both prefixes of the link.
const LINK_PREFIX_LENGTH: u8 = 24;

/// Which namespace.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    Sender,
    Receiver,
}

/// Runs `ip ARGS…`; fails with its output.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("cannot run `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Two namespaces (`ssb<pid>s`, `ssb<pid>r`) and the veth pair between them.
pub struct Topology {
    /// The namespaces made so far (a half-made topology is removed too).
    namespaces: Vec<String>,
}

impl Topology {
    /// Makes the namespaces and the link: the sender's end has [`SENDER_ADDRESSES`], the
    /// receiver's [`RECEIVER_ADDRESSES`], each in its /24.
    pub fn new() -> Result<Self> {
        let pid = std::process::id();
        let mut topology = Self {
            namespaces: Vec::new(),
        };
        for tag in ["s", "r"] {
            let name = format!("ssb{pid}{tag}");
            ip(&["netns", "add", &name])?;
            topology.namespaces.push(name);
        }
        let (sender, receiver) = (
            topology.namespaces[0].clone(),
            topology.namespaces[1].clone(),
        );
        ip(&[
            "link", "add", "bench-tx", "netns", &sender, "type", "veth", "peer", "name",
            "bench-rx", "netns", &receiver,
        ])?;
        for (namespace, device, addresses) in [
            (&sender, "bench-tx", SENDER_ADDRESSES),
            (&receiver, "bench-rx", RECEIVER_ADDRESSES),
        ] {
            for address in addresses {
                let cidr = format!("{address}/{LINK_PREFIX_LENGTH}");
                ip(&["-n", namespace, "addr", "add", &cidr, "dev", device])?;
            }
            ip(&["-n", namespace, "link", "set", "lo", "up"])?;
            ip(&["-n", namespace, "link", "set", device, "up"])?;
        }
        Ok(topology)
    }

    fn name(&self, side: Side) -> &str {
        match side {
            Side::Sender => &self.namespaces[0],
            Side::Receiver => &self.namespaces[1],
        }
    }

    /// Runs `work` on a new thread inside `side`'s namespace (sockets it makes live there; the
    /// thread stays in the bench's cgroup, so sockstats accounts them). The thread ends with
    /// `work`.
    pub fn spawn_in<T: Send + 'static>(
        &self,
        side: Side,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<thread::JoinHandle<Result<T>>> {
        let path = format!("/run/netns/{}", self.name(side));
        let namespace = File::open(&path).with_context(|| format!("open {path}"))?;
        Ok(thread::spawn(move || {
            sys::enter_network_namespace(&namespace)
                .with_context(|| format!("cannot enter the network namespace {path}"))?;
            work()
        }))
    }

    /// Runs `work` inside `side`'s namespace and returns what it made (a socket, typically).
    pub fn run_in<T: Send + 'static>(
        &self,
        side: Side,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.spawn_in(side, work)?
            .join()
            .expect("a namespace thread panicked")
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and with it the other end.
        for name in self.namespaces.drain(..) {
            if let Err(error) = ip(&["netns", "del", &name]) {
                eprintln!("bench: warning: {error:#}; remove it with `ip netns del {name}`");
            }
        }
    }
}
