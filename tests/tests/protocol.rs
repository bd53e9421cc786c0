//! Bad input on the Unix socket gets a clear error reply, and the daemon keeps serving.
use std::{fs::File, net::UdpSocket, os::fd::AsFd, os::unix::net::UnixStream};

use serde_json::Value;
use sockstats_tests::{
    raw::{error_of, RawConnection},
    traffic::{tcp_pair, tcp_send},
    Harness,
};

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn bad_requests_get_clear_errors_and_the_connection_goes_on() {
    let harness = Harness::start("bad-input");
    let daemon = &harness.daemon;
    let mut raw = RawConnection::connect(&daemon.socket);
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let file = File::open("/proc/self/status").expect("file");
    let (unix, _peer) = UnixStream::pair().expect("unix pair");

    let cases: [(&str, Vec<std::os::fd::BorrowedFd<'_>>, &str); 9] = [
        ("{not json", vec![], "not valid JSON"),
        ("", vec![], "not valid JSON"),
        ("[1,2,3]", vec![], "JSON object"),
        (r#"{"label":"x"}"#, vec![], "no \"op\""),
        (r#"{"op":"explode"}"#, vec![], "unknown op \"explode\""),
        (
            r#"{"op":"label","label":"has space"}"#,
            vec![udp.as_fd()],
            "[A-Za-z0-9._:/-]",
        ),
        (r#"{"op":"label","label":"ok"}"#, vec![], "none arrived"),
        (
            r#"{"op":"label","label":"ok"}"#,
            vec![file.as_fd()],
            "not a socket",
        ),
        (
            r#"{"op":"label","label":"ok"}"#,
            vec![unix.as_fd()],
            "Unix-domain",
        ),
    ];
    for (line, fds, expected) in cases {
        let error = error_of(&raw.call(line, &fds));
        assert!(
            error.contains(expected),
            "{line:?}: {error:?} lacks {expected:?}"
        );
        // The same connection still answers.
        assert_eq!(raw.call(r#"{"op":"status"}"#, &[])["ok"], Value::Bool(true));
    }
    let error = error_of(&raw.call(r#"{"op":"get"}"#, &[udp.as_fd()]));
    assert!(error.contains("does not take fds"), "{error}");
    let error = error_of(&raw.call(r#"{"op":"label"}"#, &[udp.as_fd()]));
    assert!(error.contains("missing field `label`"), "{error}");
    // Labeling as `unlabeled` is the same as unlabeling.
    let reply = raw.call(r#"{"op":"label","label":"unlabeled"}"#, &[udp.as_fd()]);
    assert_eq!(
        (&reply["ok"], &reply["label_id"]),
        (&Value::Bool(true), &Value::from(0)),
        "{reply}"
    );

    // A refused request labels nothing, even when some of its fds were fine.
    let error = error_of(&raw.call(
        r#"{"op":"label","label":"mixed"}"#,
        &[udp.as_fd(), file.as_fd()],
    ));
    assert!(error.contains("fd 2 of 2"), "{error}");
    let labels = daemon.client().labels().expect("labels").labels;
    assert!(
        labels.iter().all(|l| l.name != "mixed" && l.name != "ok"),
        "{labels:?}"
    );
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn oversized_and_half_written_requests_do_not_hurt_other_clients() {
    let harness = Harness::start("abuse");
    let daemon = &harness.daemon;

    let mut oversized = RawConnection::connect(&daemon.socket);
    oversized.send(&vec![b'x'; 70 * 1024], &[]);
    let error = error_of(&oversized.reply().expect("an error before closing"));
    assert!(error.contains("longer than 65536 bytes"), "{error}");
    assert!(
        oversized.reply().is_none(),
        "the connection is closed after an oversized line"
    );

    let mut half = RawConnection::connect(&daemon.socket);
    half.send(br#"{"op":"sta"#, &[]);
    drop(half);

    // Everyone else is served as before.
    let (client, server) = tcp_pair(false);
    daemon
        .client()
        .label(&client, "still-works")
        .expect("label");
    tcp_send(&client, &server, 12_345, 1000);
    assert_eq!(daemon.stats("still-works").tx_bytes, 12_345);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn pipelined_requests_keep_their_fds() {
    let harness = Harness::start("pipelined");
    let daemon = &harness.daemon;
    let (client, server) = tcp_pair(false);
    let mut raw = RawConnection::connect(&daemon.socket);
    // A get and a label in one write, the fds attached to it: they belong to the label line.
    raw.send(
        b"{\"op\":\"get\"}\n{\"op\":\"label\",\"label\":\"piped\"}\n",
        &[client.as_fd()],
    );
    assert_eq!(raw.reply().expect("get reply")["ok"], Value::Bool(true));
    let label = raw.reply().expect("label reply");
    assert_eq!(label["ok"], Value::Bool(true), "{label}");
    tcp_send(&client, &server, 4242, 4242);
    assert_eq!(daemon.stats("piped").tx_bytes, 4242);
}

#[test]
#[ignore = "needs root and the real kernel: cargo xtask test"]
fn an_fd_flood_is_refused_and_every_fd_closed() {
    let harness = Harness::start("fd-flood");
    let daemon = &harness.daemon;
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let before = daemon.open_fds();
    let copies: Vec<_> = (0..100).map(|_| udp.try_clone().expect("dup")).collect();
    let fds: Vec<_> = copies.iter().map(AsFd::as_fd).collect();
    let mut raw = RawConnection::connect(&daemon.socket);
    let error = error_of(&raw.call(r#"{"op":"label","label":"flood"}"#, &fds));
    assert!(error.contains("more than 64 fds"), "{error}");
    assert!(
        raw.reply().is_none(),
        "the connection is closed after an fd flood"
    );
    drop(raw);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while daemon.open_fds() > before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // `before` may include a connection of the start-up check that closes meanwhile.
    assert!(
        daemon.open_fds() <= before,
        "the daemon closed every passed fd"
    );
    assert!(daemon.client().labels().expect("labels").labels.is_empty());
}
