//! Network namespaces and veth pairs that a test creates (and always removes), so that traffic
//! over real interfaces never leaves this machine.
use std::{
    fs::File,
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsFd,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    thread,
};

use nix::sched::{setns, CloneFlags};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Runs `ip ARGS…`, panicking with its output if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A named network namespace (`ip netns add`), deleted on drop with everything in it.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    /// Creates `sst<pid>-<n><tag>` with its loopback up.
    #[must_use]
    pub fn new(tag: &str) -> Self {
        let name = format!(
            "sst{}-{}{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        let netns = Self { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// Runs `ip -n NAME ARGS…`.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip(&full);
    }

    /// Runs `work` on a thread inside this namespace: sockets it makes live here.
    pub fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let file = File::open(format!("/run/netns/{}", self.name)).expect("open namespace");
        thread::spawn(move || {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
            work()
        })
        .join()
        .expect("namespace thread")
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its interfaces and the veth peers outside it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Connects `a` and `b` with a veth pair: `a_name` in `a` with `a_addr`, `b_name` in `b` with
/// `b_addr` (CIDR notation), both up.
pub fn veth(a: &TestNetns, a_name: &str, a_addr: &str, b: &TestNetns, b_name: &str, b_addr: &str) {
    ip(&[
        "link", "add", a_name, "netns", &a.name, "type", "veth", "peer", "name", b_name, "netns",
        &b.name,
    ]);
    a.ip(&["addr", "add", a_addr, "dev", a_name]);
    b.ip(&["addr", "add", b_addr, "dev", b_name]);
    a.ip(&["link", "set", a_name, "up"]);
    b.ip(&["link", "set", b_name, "up"]);
}

/// A client namespace linked by veth to three namespaces, one per kind of destination, with
/// IPv4 and IPv6 on every link (the client's address ends in `::1`/`.1`, the peer's in
/// `::2`/`.2`); the client's loopback stands in for `host`:
///
/// | namespace | stands in for | IPv4 | IPv6 |
/// |---|---|---|---|
/// | `internet` | the internet (documentation ranges) | `198.51.100.0/24` | `2001:db8:5::/64` |
/// | `private` | a private network | `10.77.0.0/24` | `fd00:77::/64` |
/// | `named` | a network a config file names (`network NAME 10.88.0.0/16 2001:db8:88::/48`) | `10.88.0.0/24` | `2001:db8:88::/64` |
pub struct Topology {
    pub client: TestNetns,
    pub internet: TestNetns,
    pub private: TestNetns,
    pub named: TestNetns,
}

impl Topology {
    /// Makes the four namespaces and their links (all removed on drop).
    #[must_use]
    pub fn new() -> Self {
        let topology = Self {
            client: TestNetns::new("c"),
            internet: TestNetns::new("i"),
            private: TestNetns::new("p"),
            named: TestNetns::new("v"),
        };
        let links = [
            (
                &topology.internet,
                "ci",
                "198.51.100.1/24",
                "198.51.100.2/24",
                "2001:db8:5::1/64",
                "2001:db8:5::2/64",
            ),
            (
                &topology.private,
                "cp",
                "10.77.0.1/24",
                "10.77.0.2/24",
                "fd00:77::1/64",
                "fd00:77::2/64",
            ),
            (
                &topology.named,
                "cv",
                "10.88.0.1/24",
                "10.88.0.2/24",
                "2001:db8:88::1/64",
                "2001:db8:88::2/64",
            ),
        ];
        for (peer, name, client_v4, peer_v4, client_v6, peer_v6) in links {
            let peer_name = format!("{name}x");
            veth(&topology.client, name, client_v4, peer, &peer_name, peer_v4);
            topology
                .client
                .ip(&["addr", "add", client_v6, "dev", name, "nodad"]);
            peer.ip(&["addr", "add", peer_v6, "dev", &peer_name, "nodad"]);
        }
        topology
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

/// A TCP connection from `client_ns` to a listener on `server` (an address with port, `0` for
/// any) in `server_ns`: (client, accepted server side).
#[must_use]
pub fn tcp_between(
    client_ns: &TestNetns,
    server_ns: &TestNetns,
    server: &str,
) -> (TcpStream, TcpStream) {
    let address: SocketAddr = server.parse().expect("address");
    let listener = server_ns.run(move || TcpListener::bind(address).expect("bind in namespace"));
    let address = listener.local_addr().expect("address");
    let client = client_ns.run(move || TcpStream::connect(address).expect("connect in namespace"));
    let (accepted, _) = listener.accept().expect("accept");
    (client, accepted)
}
