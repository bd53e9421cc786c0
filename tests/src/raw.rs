//! A raw protocol connection, for sending what a well-behaved client never would.
use std::{
    io::{BufRead, BufReader, IoSlice, Write},
    os::{
        fd::{AsRawFd, BorrowedFd},
        unix::net::UnixStream,
    },
    path::Path,
    time::Duration,
};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use serde_json::Value;

pub struct RawConnection {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl RawConnection {
    #[must_use]
    pub fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Self { stream, reader }
    }

    /// Sends raw bytes, with `fds` attached to the first byte.
    pub fn send(&mut self, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
        if fds.is_empty() {
            self.stream.write_all(bytes).expect("write");
            return;
        }
        let raw: Vec<_> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let sent = sendmsg::<UnixAddr>(
            self.stream.as_raw_fd(),
            &[IoSlice::new(bytes)],
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::empty(),
            None,
        )
        .expect("sendmsg");
        self.stream.write_all(&bytes[sent..]).expect("write rest");
    }

    /// Reads one reply line as JSON; `None` when the daemon closed the connection.
    pub fn reply(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read reply");
        (n > 0).then(|| serde_json::from_str(&line).expect("reply is JSON"))
    }

    /// Sends a line and returns the reply.
    pub fn call(&mut self, line: &str, fds: &[BorrowedFd<'_>]) -> Value {
        self.send(format!("{line}\n").as_bytes(), fds);
        self.reply().expect("a reply")
    }
}

/// The `error` of a failure reply; panics on success.
#[must_use]
pub fn error_of(reply: &Value) -> String {
    assert_eq!(
        reply["ok"],
        Value::Bool(false),
        "expected an error reply, got {reply}"
    );
    reply["error"]
        .as_str()
        .expect("error is a string")
        .to_owned()
}
