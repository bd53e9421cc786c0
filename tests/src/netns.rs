//! Network namespaces and veth pairs that a test creates (and always removes), so that traffic
//! over real interfaces never leaves this machine.
use std::{
    fs::File,
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
