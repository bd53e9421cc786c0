//! `sockstats run` and signals: the ones a supervisor sends reach the command and are followed
//! by the usual clean-up; a `sockstats run` killed outright leaves no rule, and the daemon
//! removes its cgroup once the command is gone.
use std::{
    io::{BufRead as _, BufReader},
    process::{Child, ChildStdout, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use sockstats_tests::{cgroup::run_cgroups, daemon::binary, sys::send_signal, Harness, TestDaemon};

/// `sockstats run -l <label> -- sh -c <script>`, its stdin and stdout piped (the command
/// inherits both).
fn run_script(daemon: &TestDaemon, label: &str, script: &str) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(binary("sockstats"))
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["run", "--label", label, "--", "sh", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start sockstats run");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    (child, stdout)
}

fn next_line(stdout: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("read the command's output");
    line.trim_end().to_owned()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn rule_count(daemon: &TestDaemon) -> usize {
    daemon.client().rules().expect("rules").rules.len()
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn signals_to_sockstats_run_reach_the_command_and_it_cleans_up() {
    let harness = Harness::start("run-signals");
    let daemon = &harness.daemon;
    for (signal, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
        (libc::SIGQUIT, "QUIT"),
        (libc::SIGUSR1, "USR1"),
        (libc::SIGUSR2, "USR2"),
    ] {
        // Gives up after 10 s, so that a signal that never arrives fails the test.
        let script = format!(
            "trap 'echo got {name}; exit 3' {name}; echo ready; \
             i=0; while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; echo not signalled"
        );
        let (mut run, mut stdout) = run_script(daemon, "signalled", &script);
        assert_eq!(next_line(&mut stdout), "ready");
        assert_eq!(rule_count(daemon), 1, "the run's temporary rule");
        send_signal(run.id(), signal).expect("signal sockstats run");
        assert_eq!(next_line(&mut stdout), format!("got {name}"));
        let status = run.wait().expect("wait for sockstats run");
        assert_eq!(
            status.code(),
            Some(3),
            "SIG{name}: the command's exit status"
        );
        assert_eq!(rule_count(daemon), 0, "SIG{name}: the rule is removed");
        assert!(
            run_cgroups(&harness.cgroup.path).is_empty(),
            "SIG{name}: the cgroup is removed"
        );
    }

    // A command that does not catch it dies of it, and the status says so.
    let (mut run, mut stdout) = run_script(daemon, "signalled", "echo ready; exec sleep 30");
    assert_eq!(next_line(&mut stdout), "ready");
    send_signal(run.id(), libc::SIGTERM).expect("signal sockstats run");
    let status = run.wait().expect("wait for sockstats run");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert_eq!(rule_count(daemon), 0);
    assert!(run_cgroups(&harness.cgroup.path).is_empty());
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn a_killed_sockstats_run_leaves_no_rule_and_the_daemon_removes_its_cgroup_once_empty() {
    let harness = Harness::start("run-killed");
    let daemon = &harness.daemon;
    // The command runs until the test closes its stdin, whatever the machine's load.
    let (mut run, mut stdout) = run_script(daemon, "orphan", "echo ready; read _line");
    let stdin = run.stdin.take().expect("stdin");
    assert_eq!(next_line(&mut stdout), "ready");
    let cgroups = run_cgroups(&harness.cgroup.path);
    assert_eq!(cgroups.len(), 1, "{cgroups:?}");
    run.kill().expect("SIGKILL sockstats run");
    run.wait().expect("reap sockstats run");

    wait_until(
        "the rule goes with the connection",
        Duration::from_secs(2),
        || rule_count(daemon) == 0,
    );
    // The command outlives sockstats run; its cgroup stays while it runs.
    assert!(cgroups[0].exists(), "removed while the command still ran");
    drop(stdin);
    wait_until(
        "the daemon removes the cgroup once the command exited",
        Duration::from_secs(6),
        || !cgroups[0].exists(),
    );
    let log = daemon.log();
    assert!(log.contains("a `sockstats run` left behind"), "{log}");
}
