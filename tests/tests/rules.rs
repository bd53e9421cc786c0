//! Labels without code changes: `sockstats run`, uid and cgroup rules applied in the kernel,
//! who may change rules, and `get --by`.
use std::{
    collections::BTreeMap,
    fs,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::Path,
    process::{Command, Output},
};

use sockstats_common::protocol::{ByteCounts, ErrorCode, Grouping, RuleSelector};
use sockstats_tests::{traffic::serve_once, Harness, TestDaemon};

const NOBODY: u32 = 65_534;
const TRAFFIC: &str = env!("CARGO_BIN_EXE_sockstats-test-traffic");

fn counts(tx_bytes: usize, rx_bytes: usize) -> ByteCounts {
    ByteCounts {
        tx_bytes: tx_bytes as u64,
        rx_bytes: rx_bytes as u64,
    }
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn sum(stats: &BTreeMap<String, ByteCounts>) -> ByteCounts {
    stats
        .values()
        .fold(ByteCounts::default(), |a, b| ByteCounts {
            tx_bytes: a.tx_bytes + b.tx_bytes,
            rx_bytes: a.rx_bytes + b.rx_bytes,
        })
}

/// Every `get --by` grouping covers exactly the bytes of `get`.
fn assert_groupings_agree(daemon: &TestDaemon) {
    let total = sum(&daemon.get().stats);
    let mut client = daemon.client();
    for by in [
        Grouping::Label,
        Grouping::Uid,
        Grouping::Cgroup,
        Grouping::Process,
        Grouping::Unit,
        Grouping::Container,
    ] {
        let reply = client.get_by(by).expect("get_by");
        let grouped = reply
            .stats
            .values()
            .fold(ByteCounts::default(), |a, g| ByteCounts {
                tx_bytes: a.tx_bytes + g.tx_bytes,
                rx_bytes: a.rx_bytes + g.rx_bytes,
            });
        assert_eq!(grouped, total, "{by:?}: {:?}", reply.stats);
    }
}

fn run_exact(address: &str) {
    let harness = Harness::start(if address.starts_with('[') {
        "run6"
    } else {
        "run4"
    });
    let daemon = &harness.daemon;
    let (send, reply) = (3 * 1024 * 1024 + 17, 500_001);
    let (server, handle) = serve_once(address, reply);
    let send_text = send.to_string();
    let output = daemon.cli(&[
        "run", "--label", "job", "--", TRAFFIC, &server, &send_text, "7",
    ]);
    assert_eq!(output.status.code(), Some(7), "{}", stderr_of(&output));
    assert_eq!(stdout_of(&output).trim(), reply.to_string());
    assert_eq!(handle.join().expect("server"), send);

    let stats = daemon.get().stats;
    assert_eq!(stats["job"], counts(send, reply));
    // The server side ran in the test's own cgroup, which no rule covers.
    assert_eq!(stats["unlabeled"], counts(reply, send));
    // The temporary rule and the command's cgroup are gone.
    assert!(daemon.client().rules().expect("rules").rules.is_empty());
    let leftovers = sockstats_tests::cgroup::run_cgroups(&harness.cgroup.path);
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_groupings_agree(daemon);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn run_labels_every_byte_of_the_command_over_ipv4_and_passes_its_exit_code() {
    run_exact("127.0.0.1:0");
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn run_labels_every_byte_of_the_command_over_ipv6() {
    run_exact("[::1]:0");
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn run_reports_a_missing_command_and_signals_like_a_shell() {
    let harness = Harness::start("run-errors");
    let missing = harness
        .daemon
        .cli(&["run", "-l", "x", "--", "/no/such/program"]);
    assert_eq!(missing.status.code(), Some(127));
    assert!(stderr_of(&missing).contains("command not found"));
    let killed = harness
        .daemon
        .cli(&["run", "-l", "x", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(killed.status.code(), Some(128 + 15));
    let as_nobody = harness
        .daemon
        .cli(&["run", "-l", "x", "--user", "nobody", "--", "id", "-u"]);
    assert!(as_nobody.status.success(), "{}", stderr_of(&as_nobody));
    assert_eq!(stdout_of(&as_nobody).trim(), NOBODY.to_string());
    let unknown = harness.daemon.cli(&[
        "run",
        "-l",
        "x",
        "--user",
        "no-such-user-here",
        "--",
        "true",
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr_of(&unknown).contains("no user \"no-such-user-here\""));
    assert!(harness
        .daemon
        .client()
        .rules()
        .expect("rules")
        .rules
        .is_empty());
}

/// Lets `nobody` reach the daemon's socket (the test's temporary directory is private).
fn open_socket_dir_to_everyone(daemon: &TestDaemon) {
    let dir = daemon.socket.parent().expect("socket dir");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn cli_as_nobody(daemon: &TestDaemon, args: &[&str]) -> Output {
    Command::new(sockstats_tests::daemon::binary("sockstats"))
        .arg("--socket")
        .arg(&daemon.socket)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run sockstats as nobody")
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn uid_rules_label_sockets_of_that_user_and_only_root_may_change_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_file = dir.path().join("rules.conf");
    fs::write(&rules_file, "# from the file\nuser nobody nobody-traffic\n").expect("rules file");
    let rules_arg = rules_file.to_str().expect("utf-8 path");
    let harness = Harness::start_with_args("uid-rule", &["--rules-file", rules_arg]);
    let daemon = &harness.daemon;
    open_socket_dir_to_everyone(daemon);

    let (send, reply) = (200_000, 70_000);
    let (server, handle) = serve_once("127.0.0.1:0", reply);
    let output = Command::new(TRAFFIC)
        .args([&server, &send.to_string(), "0"])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .expect("run traffic as nobody");
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(handle.join().expect("server"), send);
    let stats = daemon.get().stats;
    assert_eq!(stats["nobody-traffic"], counts(send, reply));
    assert_eq!(stats["unlabeled"], counts(reply, send));

    // By uid: nobody's closed socket counts for nobody, the server's for root.
    let by_uid = daemon.client().get_by(Grouping::Uid).expect("get_by uid");
    assert_eq!(
        (
            by_uid.stats["nobody"].tx_bytes,
            by_uid.stats["nobody"].rx_bytes
        ),
        (send as u64, reply as u64)
    );
    assert_eq!(by_uid.stats["root"].tx_bytes, reply as u64);
    assert_groupings_agree(daemon);

    // nobody may list rules but not change them.
    let listed = cli_as_nobody(daemon, &["rules", "--json"]);
    assert!(listed.status.success(), "{}", stderr_of(&listed));
    assert!(stdout_of(&listed).contains("\"source\": \"config\""));
    for args in [
        &["rules", "add", "--uid", "5", "--label", "x"][..],
        &["rules", "remove", "--user", "nobody"][..],
    ] {
        let refused = cli_as_nobody(daemon, args);
        assert_eq!(refused.status.code(), Some(1));
        let message = stderr_of(&refused);
        assert!(message.contains("only root may"), "{message}");
        assert_eq!(message.lines().count(), 1, "{message}");
    }

    // root may, except for rules from the file.
    let mut client = daemon.client();
    let error = client
        .remove_rule(RuleSelector::user("nobody"))
        .expect_err("file rules stay");
    assert_eq!(error.code(), Some(ErrorCode::NotPermitted));
    client
        .add_rule(RuleSelector::uid(NOBODY - 1), "nogroup", false)
        .expect("add");
    let error = client
        .add_rule(RuleSelector::uid(NOBODY - 1), "again", false)
        .expect_err("one rule per uid");
    assert_eq!(error.code(), Some(ErrorCode::Conflict));
    let error = client
        .add_rule(RuleSelector::cgroup("/no/such/cgroup"), "x", false)
        .expect_err("missing cgroup");
    assert_eq!(error.code(), Some(ErrorCode::NotFound));
    let error = client
        .add_rule(RuleSelector::uid(1), "bad label!", false)
        .expect_err("bad label");
    assert_eq!(error.code(), Some(ErrorCode::BadLabel));
    client
        .remove_rule(RuleSelector::uid(NOBODY - 1))
        .expect("remove");
    assert_eq!(client.rules().expect("rules").rules.len(), 1);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn cgroup_rules_cover_descendants_win_over_uid_rules_and_survive_a_restart() {
    let mut harness = Harness::start("cgroup-rule");
    let child = harness.cgroup.path.join("svc");
    let grandchild = child.join("worker");
    fs::create_dir_all(&grandchild).expect("make cgroups");
    let _cleanup = RemoveOnDrop(vec![grandchild.clone(), child.clone()]);
    let relative = cgroup_relative(&child);
    harness
        .daemon
        .client()
        .add_rule(RuleSelector::cgroup(&relative), "svc", false)
        .expect("add rule");
    // Everything here runs as root: the uid rule covers the test's own sockets, the deeper
    // cgroup rule the command's.
    harness
        .daemon
        .client()
        .add_rule(RuleSelector::uid(0), "root-rule", false)
        .expect("add uid rule");
    harness.daemon.stop();
    harness.daemon.restart();

    let (send, reply) = (123_456, 654);
    let (server, handle) = serve_once("127.0.0.1:0", reply);
    let procs = fs::OpenOptions::new()
        .write(true)
        .open(grandchild.join("cgroup.procs"))
        .expect("cgroup.procs");
    let mut command = Command::new(TRAFFIC);
    command.args([&server, &send.to_string(), "0"]);
    sockstats_tests::sys::join_cgroup_on_exec(&mut command, procs);
    let output = command
        .output()
        .expect("run traffic in the grandchild cgroup");
    assert!(output.status.success(), "{}", stderr_of(&output));
    handle.join().expect("server");
    let stats = harness.daemon.get().stats;
    assert_eq!(stats["svc"], counts(send, reply));
    // The server's accepted socket (made without sock_create, labeled on first use) by uid.
    assert_eq!(stats["root-rule"], counts(reply, send));
    assert_eq!(stats["unlabeled"], counts(0, 0));

    // A label a program sets wins over the rule's, with all the socket's bytes.
    let (client, server) = sockstats_tests::traffic::tcp_pair(false);
    sockstats_tests::traffic::tcp_send(&client, &server, 1000, 100);
    harness
        .daemon
        .client()
        .label(&client, "explicit")
        .expect("label");
    let stats = harness.daemon.get().stats;
    assert_eq!(stats["explicit"], counts(1000, 0));
    assert_eq!(stats["root-rule"], counts(reply, send + 1000));
    let by_cgroup = harness
        .daemon
        .client()
        .get_by(Grouping::Cgroup)
        .expect("get_by");
    let worker = format!("{relative}/worker");
    assert_eq!(
        by_cgroup.stats[&worker].tx_bytes, send as u64,
        "{:?}",
        by_cgroup.stats
    );
    assert_groupings_agree(&harness.daemon);
}

/// Removes directories (cgroups a test made) in order, also when the test fails.
struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for dir in &self.0 {
            if let Err(error) = fs::remove_dir(dir) {
                eprintln!("warning: cannot remove {}: {error}", dir.display());
            }
        }
    }
}

/// `path` relative to the cgroup2 mount, as rules name cgroups.
fn cgroup_relative(path: &Path) -> String {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4).map(str::to_owned))?
        })
        .expect("cgroup2 mount");
    format!(
        "/{}",
        path.strip_prefix(&mount)
            .expect("inside the mount")
            .display()
    )
}

/// The examples in `examples/` against a live daemon: their labels get exactly their bytes.
#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn the_rust_and_python_examples_label_their_sockets() {
    let harness = Harness::start("examples");
    let daemon = &harness.daemon;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let rust = Command::new(sockstats_tests::daemon::binary("examples/label_and_get"))
        .env("SOCKSTATS_SOCKET", &daemon.socket)
        .output()
        .expect("run the Rust example");
    assert!(rust.status.success(), "{}", stderr_of(&rust));
    assert!(
        stdout_of(&rust).contains("example-upload: tx_bytes=100000 rx_bytes=0"),
        "{}",
        stdout_of(&rust)
    );
    let python = Command::new("python3")
        .arg(examples.join("label_socket.py"))
        .env("SOCKSTATS_SOCKET", &daemon.socket)
        .output()
        .expect("run the Python example");
    assert!(python.status.success(), "{}", stderr_of(&python));
    assert!(
        stdout_of(&python).contains("python-upload: tx_bytes=50000 rx_bytes=0"),
        "{}",
        stdout_of(&python)
    );
    let stats = daemon.get().stats;
    assert_eq!(stats["example-upload"], counts(100_000, 0));
    assert_eq!(stats["python-upload"], counts(50_000, 0));
    // The examples' server ends read what the clients sent, unlabeled.
    assert_eq!(stats["unlabeled"], counts(0, 150_000));
}

/// Completions and --help: the CLI documents itself.
#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn completions_and_help_cover_every_command() {
    let harness = Harness::start("help");
    for shell in ["bash", "zsh", "fish"] {
        let output = harness.daemon.cli(&["completions", shell]);
        assert!(output.status.success());
        let script = stdout_of(&output);
        for command in ["get", "run", "rules", "watch", "status", "debug", "labels"] {
            // How each shell's script names a subcommand.
            let entry = match shell {
                "bash" => format!("sockstats,{command})"),
                "zsh" => format!("'{command}:"),
                _ => format!("-a \"{command}\""),
            };
            assert!(script.contains(&entry), "{shell}: no {entry}");
        }
    }
    let help = stdout_of(&harness.daemon.cli(&["--help"]));
    assert!(help.contains("Examples:") && help.contains("SOCKSTATS_SOCKET"));
    let stopped = Command::new(sockstats_tests::daemon::binary("sockstats"))
        .args(["--socket", "/nonexistent/sockstats.sock", "get"])
        .output()
        .expect("run sockstats");
    let message = stderr_of(&stopped);
    assert_eq!(stopped.status.code(), Some(1));
    assert!(
        message.starts_with(
            "sockstats: daemon not running at /nonexistent/sockstats.sock: start it with"
        ),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1);
}
