//! Root is always answered (its queries, its rules, `sockstats run`), even when unprivileged
//! users hold every client slot: the daemon closes the longest-idle connection of the uid that
//! holds the most to make room (docs/protocol.md, "Connections and concurrency").
use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    process::{Child, ChildStdin, ChildStdout, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use sockstats_common::protocol::RuleSelector;
use sockstats_tests::{Harness, TestDaemon};

/// Unprivileged uids with no passwd entry (a test must not depend on the host's users).
const FIRST_UID: u32 = 61_000;

/// Opens `count` connections to the daemon, asks each for its status, then holds them
/// idle. Prints `admitted N`; then, for each line read, how many of the admitted connections
/// the daemon has closed since.
const HOLDER: &str = r#"
import json, os, socket, sys
admitted = []
for _ in range(int(os.environ["COUNT"])):
    c = socket.socket(socket.AF_UNIX); c.connect(os.environ["SOCKET"])
    try:
        c.sendall(b'{"op":"status"}\n')
    except OSError:
        pass  # a refused connection is closed right after the daemon's reply
    reply = json.loads(c.makefile().readline())
    if reply["ok"]:
        admitted.append(c)
    else:
        assert "maximum of 256 clients" in reply["error"] or "limit" in reply["error"], reply
print("admitted", len(admitted), flush=True)
for _ in sys.stdin:
    closed = 0
    for c in admitted:
        c.setblocking(False)
        try:
            closed += c.recv(1) == b""
        except BlockingIOError:
            pass
    print(closed, flush=True)
"#;

/// One uid's idle connections, held by a Python process running as that uid.
struct Holder {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    admitted: usize,
}

impl Holder {
    fn start(daemon: &TestDaemon, uid: u32, count: usize) -> Self {
        let mut child = Command::new("python3")
            .args(["-c", HOLDER])
            .env("SOCKET", &daemon.socket)
            .env("COUNT", count.to_string())
            .uid(uid)
            .gid(uid)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run python3 as an unprivileged uid");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("admitted line");
        let admitted = line
            .strip_prefix("admitted ")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("uid {uid}'s holder said {line:?}"));
        Self {
            child,
            stdin,
            stdout,
            admitted,
        }
    }

    /// How many of its connections the daemon has closed.
    fn closed(&mut self) -> usize {
        writeln!(self.stdin, "check").expect("ask the holder");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("closed line");
        line.trim().parse().expect("a count")
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn root_is_served_when_unprivileged_users_hold_every_slot() {
    let harness = Harness::start("root-served");
    let daemon = &harness.daemon;
    let dir = daemon.socket.parent().expect("socket dir");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");

    // 10 uids with 30 idle connections each (under --max-clients-per-uid 32): 300 asked for,
    // the first 256 get in, in order.
    let mut holders: Vec<Holder> = (0..10)
        .map(|n| Holder::start(daemon, FIRST_UID + n, 30))
        .collect();
    let admitted: Vec<usize> = holders.iter().map(|h| h.admitted).collect();
    assert_eq!(admitted, [30, 30, 30, 30, 30, 30, 30, 30, 16, 0]);

    // Root gets in anyway, three connections at once, and is answered on each.
    let mut root: Vec<_> = (0..3).map(|_| daemon.client()).collect();
    for client in &mut root {
        let reply = client.get().expect("root's get with every slot taken");
        assert!(reply.stats.contains_key("unlabeled"));
    }
    // Unprivileged users are still refused while every slot is taken.
    let late = Holder::start(daemon, FIRST_UID + 10, 1);
    assert_eq!(late.admitted, 0);
    root[0]
        .add_rule(RuleSelector::uid(FIRST_UID + 20), "root-rules", false)
        .expect("root's rule with every slot taken");
    let run = daemon.cli(&["run", "--label", "root-run", "--", "true"]);
    assert!(
        run.status.success(),
        "sockstats run with every slot taken: {}",
        String::from_utf8_lossy(&run.stderr)
    );

    // Each root connection (the three clients, then `sockstats run`'s) closed the
    // longest-idle connection of a uid holding the most: 30, ties going to the uid whose
    // connection was idle longest, the first uids'.
    let deadline = Instant::now() + Duration::from_secs(10);
    let closed = loop {
        let closed: Vec<usize> = holders.iter_mut().map(Holder::closed).collect();
        if closed.iter().sum::<usize>() >= 4 || Instant::now() > deadline {
            break closed;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(closed, [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    drop(root);
    assert!(daemon.client().status().expect("status").attached);
}
