//! The destination workloads, between the two namespaces of the [`Topology`] over its veth
//! pair (never loopback, whose packets are `host` without a lookup): sockets made afresh in the
//! namespaces by threads of the bench (so in its accounted cgroup), the sender's in one, the
//! receiver's in the other.
use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
};

use anyhow::{Context as _, Result};

use super::topology::{Side, Topology, RECEIVER_ADDRESSES, SENDER_ADDRESSES};
use crate::{
    sockets,
    workload::{measure, udp_flood, Timing},
};

/// The size of each datagram.
pub const DATAGRAM_BYTES: usize = 64;

/// A workload of the destination section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// A connected UDP socket sending to one peer: its remote never changes.
    UdpSamePeer,
    /// An unconnected UDP socket sending to two peers in different prefixes in turn: the
    /// remote changes with every datagram.
    UdpAlternatingPeers,
    /// Short TCP connections over the veth, one after another: a new socket each.
    TcpConnect,
}

impl Workload {
    pub const ALL: [Workload; 3] = [
        Workload::UdpSamePeer,
        Workload::UdpAlternatingPeers,
        Workload::TcpConnect,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Workload::UdpSamePeer => "udp_same_peer",
            Workload::UdpAlternatingPeers => "udp_alternating_peers",
            Workload::TcpConnect => "tcp_connect",
        }
    }

    #[must_use]
    pub fn unit(self) -> &'static str {
        match self {
            Workload::UdpSamePeer | Workload::UdpAlternatingPeers => "datagrams/s",
            Workload::TcpConnect => "connections/s",
        }
    }

    /// Runs the workload once on fresh sockets: a warm-up, then the measurement; returns the
    /// units per second of the measurement.
    pub fn run(self, topology: &Topology, timing: Timing) -> Result<f64> {
        match self {
            Workload::UdpSamePeer => udp_same_peer(topology, timing),
            Workload::UdpAlternatingPeers => udp_alternating_peers(topology, timing),
            Workload::TcpConnect => tcp_connect(topology, timing),
        }
    }
}

fn udp_in(topology: &Topology, side: Side, address: Ipv4Addr) -> Result<UdpSocket> {
    topology.run_in(side, move || {
        UdpSocket::bind((address, 0)).with_context(|| format!("bind a UDP socket to {address}"))
    })
}

/// A connected pair: the sender at the first sender address, the receiver at the first
/// receiver address, each connected to the other.
fn udp_same_peer(topology: &Topology, timing: Timing) -> Result<f64> {
    let receiver = udp_in(topology, Side::Receiver, RECEIVER_ADDRESSES[0])?;
    let sender = udp_in(topology, Side::Sender, SENDER_ADDRESSES[0])?;
    sender.connect(receiver.local_addr()?)?;
    receiver.connect(sender.local_addr()?)?;
    udp_flood(sender, None, receiver, DATAGRAM_BYTES, timing)
}

/// An unconnected sender (any address) sending to both receiver addresses in turn, each from
/// the sender address of its prefix; one unconnected receiver on both.
fn udp_alternating_peers(topology: &Topology, timing: Timing) -> Result<f64> {
    let receiver = udp_in(topology, Side::Receiver, Ipv4Addr::UNSPECIFIED)?;
    let port = receiver.local_addr()?.port();
    let sender = udp_in(topology, Side::Sender, Ipv4Addr::UNSPECIFIED)?;
    let targets = RECEIVER_ADDRESSES
        .iter()
        .map(|&address| SocketAddr::from((address, port)))
        .collect();
    udp_flood(sender, Some(targets), receiver, DATAGRAM_BYTES, timing)
}

/// Connections from the sender's namespace to a listener at the first receiver address, one
/// at a time (connect, accept, one byte each way, reset on close); returns connections per
/// second.
fn tcp_connect(topology: &Topology, timing: Timing) -> Result<f64> {
    let listener = topology.run_in(Side::Receiver, || {
        TcpListener::bind((RECEIVER_ADDRESSES[0], 0)).context("bind the listener")
    })?;
    let address = listener.local_addr()?;
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
        // The client sockets are made by this thread, so in the sender's namespace.
        topology.spawn_in(Side::Sender, move || {
            while !stop.load(Ordering::Relaxed) {
                drop(sockets::connect_once(&listener, address)?);
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })?
    };
    let rate = measure(&done, timing);
    stop.store(true, Ordering::Relaxed);
    worker.join().expect("connection thread")?;
    Ok(rate)
}
