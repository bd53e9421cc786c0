//! Names people recognise: `get --by unit|container` and rules for a unit or a container,
//! with a real Podman container and with cgroups and metadata shaped like the other runtimes'.
use std::{
    fs,
    io::{Read as _, Write as _},
    net::{Shutdown, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

use sockstats_common::protocol::{ByteCounts, GroupCounts, Grouping, RulesReply};
use sockstats_tests::{Harness, TestDaemon};

const TRAFFIC: &str = env!("CARGO_BIN_EXE_sockstats-test-traffic");
/// Two container ids (64 hex digits), as runtimes make them.
const K8S_ID: &str = "4c01db0b339c3e6b3f1eb6d2c2f1b5ab4ac0a1a3f2e0c9d8b7a6f5e4d3c2b1a0";
const DOCKER_ID: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";

fn counts(tx_bytes: usize, rx_bytes: usize) -> ByteCounts {
    ByteCounts {
        tx_bytes: tx_bytes as u64,
        rx_bytes: rx_bytes as u64,
    }
}

fn bytes_of(group: Option<&GroupCounts>) -> ByteCounts {
    group.map_or_else(ByteCounts::default, |g| ByteCounts {
        tx_bytes: g.tx_bytes,
        rx_bytes: g.rx_bytes,
    })
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A loopback server for one connection: reads `expect` bytes, sends `reply` bytes, closes.
fn serve_once(expect: usize, reply: usize) -> (String, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut received = vec![0; expect];
        stream.read_exact(&mut received).expect("read");
        stream.write_all(&vec![b'r'; reply]).expect("reply");
        stream.shutdown(Shutdown::Both).expect("shutdown");
    });
    (address, handle)
}

/// Runs the traffic helper in the cgroup `dir`: it sends `send` bytes to a server that answers
/// with `reply` bytes.
fn traffic_in(dir: &Path, send: usize, reply: usize) {
    let (address, server) = sockstats_tests::traffic::serve_once("127.0.0.1:0", reply);
    let procs = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cgroup.procs"))
        .expect("cgroup.procs");
    let mut command = Command::new(TRAFFIC);
    command.args([&address, &send.to_string(), "0"]);
    sockstats_tests::sys::join_cgroup_on_exec(&mut command, procs);
    let output = command.output().expect("run the traffic helper");
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(server.join().expect("server"), send);
}

/// Waits until `done` holds, polling the daemon.
fn wait_for(what: &str, daemon: &TestDaemon, done: impl Fn(&TestDaemon) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(daemon) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

fn rules(daemon: &TestDaemon) -> RulesReply {
    daemon.client().rules().expect("rules")
}

/// Removes directories (cgroups the test made) deepest first, also when the test fails.
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let mut dirs = self.0.clone();
        dirs.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
        for dir in dirs {
            if dir.exists() {
                if let Err(error) = fs::remove_dir(&dir) {
                    eprintln!("warning: cannot remove {}: {error}", dir.display());
                }
            }
        }
    }
}

/// Makes `relative` and its missing parents below `root`; each made one is removed on drop.
fn make_cgroup(root: &Path, relative: &str, made: &mut RemoveOnDrop) -> PathBuf {
    let mut dir = root.to_owned();
    for part in relative.split('/') {
        dir.push(part);
        if !dir.exists() {
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            made.0.push(dir.clone());
        }
    }
    dir
}

fn write_file(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write metadata");
}

#[test]
#[ignore = "needs root: loads eBPF programs"]
fn units_and_containers_of_each_runtime_by_their_cgroups_and_metadata() {
    let metadata = tempfile::tempdir().expect("tempdir");
    write_file(
        metadata.path(),
        &format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{K8S_ID}/config.json"),
        r#"{"ociVersion": "1.1.0", "annotations": {"io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-name": "cart-1",
            "io.kubernetes.cri.container-name": "cart"}}"#,
    );
    write_file(
        metadata.path(),
        &format!("var/lib/docker/containers/{DOCKER_ID}/config.v2.json"),
        r#"{"ID": "x", "Name": "/web", "Config": {"Labels": {}}}"#,
    );
    let root = metadata.path().to_str().expect("utf-8").to_owned();
    let harness = Harness::start_with_args("workloads", &["--container-metadata-root", &root]);
    let daemon = &harness.daemon;
    let mut made = RemoveOnDrop(Vec::new());
    let test_cgroup = &harness.cgroup.path;
    let service = make_cgroup(test_cgroup, "system.slice/sockstats-web.service", &mut made);
    let pod = make_cgroup(
        test_cgroup,
        &format!("kubepods/besteffort/pod0c0d1e2f/{K8S_ID}"),
        &mut made,
    );
    let docker = make_cgroup(test_cgroup, &format!("docker/{DOCKER_ID}"), &mut made);

    traffic_in(&service, 10_000, 100);
    traffic_in(&pod, 20_000, 200);
    traffic_in(&docker, 30_000, 300);
    let check = |unit: ByteCounts, web: ByteCounts| {
        let by_unit = daemon.client().get_by(Grouping::Unit).expect("get_by unit");
        assert_eq!(
            bytes_of(by_unit.stats.get("sockstats-web.service")),
            unit,
            "{:?}",
            by_unit.stats
        );
        let by_container = daemon
            .client()
            .get_by(Grouping::Container)
            .expect("get_by container");
        assert_eq!(
            bytes_of(by_container.stats.get("shop/cart-1/cart")),
            counts(20_000, 200),
            "{:?}",
            by_container.stats
        );
        assert_eq!(bytes_of(by_container.stats.get("web")), web);
    };
    check(counts(10_000, 100), counts(30_000, 300));
    let table = daemon.cli(&["get", "--by", "container", "--bytes"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.starts_with("CONTAINER") && text.contains("shop/cart-1/cart"),
        "{text}"
    );

    // Rules by unit and by container name; unknown ones are refused, naming what runs.
    for args in [
        ["--unit", "sockstats-web.service", "--label", "web-unit"],
        ["--container", "web", "--label", "web-box"],
    ] {
        let added = daemon.cli(&[&["rules", "add"][..], &args[..]].concat());
        assert!(added.status.success(), "{}", stderr_of(&added));
    }
    let unknown = daemon.cli(&["rules", "add", "--unit", "nope.service", "--label", "x"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr_of(&unknown).contains("no unit nope.service is running here"),
        "{}",
        stderr_of(&unknown)
    );
    let unknown = daemon.cli(&["rules", "add", "--container", "nope", "--label", "x"]);
    let message = stderr_of(&unknown);
    // Other containers of the host may be listed too.
    assert!(
        message.contains("no container nope is running here (running: ")
            && message.contains("shop/cart-1/cart")
            && message.contains("web"),
        "{message}"
    );
    traffic_in(&docker, 1_000, 10);
    assert_eq!(daemon.stats("web-box"), counts(1_000, 10));

    // The unit restarts: its cgroup is made again, with a new id, and the rule follows.
    fs::remove_dir(&service).expect("stop the unit");
    wait_for("the unit rule to go inactive", daemon, |d| {
        !rules(d).rules[0].active
    });
    fs::create_dir(&service).expect("start the unit again");
    wait_for("the unit rule to follow the restart", daemon, |d| {
        rules(d).rules[0].active
    });
    traffic_in(&service, 4_000, 40);
    assert_eq!(daemon.stats("web-unit"), counts(4_000, 40));
    check(counts(14_000, 140), counts(31_000, 310));

    // Gone: the closed sockets of the removed cgroups keep their unit and container.
    drop(made);
    check(counts(14_000, 140), counts(31_000, 310));
}

/// Podman with its storage in a directory of the test's own, run as the issue says this host
/// needs (runc and cgroupfs: crun refuses the hybrid cgroup layout).
struct Podman {
    dir: tempfile::TempDir,
    /// The v1 and v2 `libpod_parent` cgroups Podman makes, if they were not there before.
    made_cgroups: Vec<PathBuf>,
}

impl Podman {
    const IMAGE: &'static str = "localhost/sockstats-test-busybox";

    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sockstats-podman-")
            .tempdir()
            .expect("tempdir");
        let made_cgroups = fs::read_dir("/sys/fs/cgroup")
            .expect("/sys/fs/cgroup")
            .flatten()
            .map(|hierarchy| hierarchy.path().join("libpod_parent"))
            .filter(|parent| !parent.exists())
            .collect();
        let podman = Self { dir, made_cgroups };
        // An image holding only a static busybox, from a tarball.
        let rootfs = podman.dir.path().join("rootfs/bin");
        fs::create_dir_all(&rootfs).expect("rootfs");
        fs::copy("/bin/busybox", rootfs.join("busybox")).expect("copy busybox (busybox-static)");
        for applet in ["sh", "head", "nc"] {
            std::os::unix::fs::symlink("busybox", rootfs.join(applet)).expect("applet");
        }
        let tarball = podman.dir.path().join("rootfs.tar");
        let tar = Command::new("tar")
            .arg("-C")
            .arg(podman.dir.path().join("rootfs"))
            .arg("-cf")
            .arg(&tarball)
            .arg(".")
            .status()
            .expect("tar");
        assert!(tar.success());
        let imported = podman
            .command()
            .arg("import")
            .arg(&tarball)
            .arg(Self::IMAGE)
            .output()
            .expect("podman import");
        assert!(imported.status.success(), "{}", stderr_of(&imported));
        podman
    }

    /// Its containers/storage root, where `containers.json` is.
    fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn command(&self) -> Command {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(self.storage())
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args([
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        command
    }

    /// Starts a container named `name` that waits for a line on its stdin, then sends `send`
    /// bytes to `server` with busybox nc and reads the answer.
    fn start(&self, name: &str, server: &str, send: usize) -> Child {
        let (host, port) = server.rsplit_once(':').expect("host:port");
        let script = format!("read go; head -c {send} /dev/zero | nc {host} {port} > /dev/null");
        self.command()
            .args(["run", "-i", "--rm", "--name", name, "--network", "host"])
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args([Self::IMAGE, "sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("podman run")
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.command().args(["rm", "--all", "--force"]).output();
        let _ = self.command().args(["system", "reset", "--force"]).output();
        // Podman leaves `libpod_parent` and, in the v1 hierarchies, its `conmon` child.
        for cgroup in &self.made_cgroups {
            let _ = fs::remove_dir(cgroup.join("conmon"));
            if let Err(error) = fs::remove_dir(cgroup) {
                eprintln!("warning: cannot remove {}: {error}", cgroup.display());
            }
        }
    }
}

/// Lets the container `child` go on (it waits for a line) and waits for it to end.
fn finish(mut child: Child) {
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"go\n")
        .expect("tell the container to go on");
    let status = child.wait().expect("podman run");
    assert!(status.success(), "the container failed: {status}");
}

#[test]
#[ignore = "needs root: loads eBPF programs and runs podman"]
fn a_podman_container_shows_under_its_name_and_a_rule_follows_it() {
    let podman = Podman::new();
    // The daemon reads containers/storage's metadata where a host keeps it, below a root of
    // the test's own.
    let metadata = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(metadata.path().join("var/lib/containers")).expect("mkdir");
    std::os::unix::fs::symlink(
        podman.storage(),
        metadata.path().join("var/lib/containers/storage"),
    )
    .expect("symlink");
    let root = metadata.path().to_str().expect("utf-8").to_owned();
    // The container's cgroup is /libpod_parent/libpod-<id>: outside any test cgroup.
    let harness =
        Harness::start_whole_host_with_args("podman", &["--container-metadata-root", &root]);
    let daemon = &harness.daemon;
    let name = format!("sockstats-test-{}", std::process::id());
    let (send, reply) = (100_000, 5_000);

    let (server, server_done) = serve_once(send, reply);
    let container = podman.start(&name, &server, send);
    // The rule can be added once the container runs (its cgroup exists).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let added = daemon.cli(&["rules", "add", "--container", &name, "--label", "boxed"]);
        if added.status.success() {
            break;
        }
        assert!(
            stderr_of(&added).contains("is running here") && Instant::now() < deadline,
            "{}",
            stderr_of(&added)
        );
        thread::sleep(Duration::from_millis(50));
    }
    let listed = rules(daemon);
    assert!(
        listed.rules[0].cgroups[0].starts_with("/libpod_parent/libpod-"),
        "{listed:?}"
    );
    finish(container);
    server_done.join().expect("server");
    let by_container = || {
        let reply = daemon
            .client()
            .get_by(Grouping::Container)
            .expect("get_by container");
        bytes_of(reply.stats.get(&name))
    };
    assert_eq!(by_container(), counts(send, reply));
    assert_eq!(daemon.stats("boxed"), counts(send, reply));

    // The same name again (a new container, a new id and cgroup): the rule follows it.
    wait_for("the container rule to go inactive", daemon, |d| {
        !rules(d).rules[0].active
    });
    let (server, server_done) = serve_once(send, reply);
    let container = podman.start(&name, &server, send);
    wait_for(
        "the container rule to follow the new container",
        daemon,
        |d| rules(d).rules[0].active,
    );
    finish(container);
    server_done.join().expect("server");
    assert_eq!(by_container(), counts(2 * send, 2 * reply));
    assert_eq!(daemon.stats("boxed"), counts(2 * send, 2 * reply));
}
