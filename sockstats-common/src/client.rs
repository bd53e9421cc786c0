//! A small blocking client for `sockstatsd`, for programs that label their own sockets.
//!
//! The whole API: connect with [`Client::connect_default`] (`$SOCKSTATS_SOCKET`, else
//! `/run/sockstats/sockstats.sock`) or [`Client::connect`], then make requests; each
//! returns its reply type from [`protocol`](crate::protocol) or a [`ClientError`].
//!
//! | method | request | returns |
//! |---|---|---|
//! | [`label`](Client::label)`(socket, label)` | put one socket under a label | [`LabelReply`] |
//! | [`label_all`](Client::label_all)`(sockets, label)` | the same for 1 to [`MAX_FDS_PER_REQUEST`] sockets in one request | [`LabelReply`] |
//! | [`unlabel`](Client::unlabel)`(socket)` | take the label off: `unlabeled` again | [`UnlabelReply`] |
//! | [`get`](Client::get)`()` | payload bytes per label | [`GetReply`] |
//! | [`get_interfaces`](Client::get_interfaces)`()` | payload bytes per label and interface, and IP-layer bytes and packets | [`GetInterfacesReply`] |
//! | [`get_validation`](Client::get_validation)`()` | per-label bytes from the kernel's TCP counters | [`ValidationReply`] |
//! | [`get_by`](Client::get_by)`(by)` | payload bytes per label, uid, cgroup or process | [`GetByReply`] |
//! | [`labels`](Client::labels)`()` | registered labels and their ids | [`LabelsReply`] |
//! | [`add_rule`](Client::add_rule)`(selector, label, temporary)` | label the new sockets of a uid, user or cgroup subtree (root only) | [`RulesReply`] |
//! | [`remove_rule`](Client::remove_rule)`(selector)` | remove such a rule (root only) | [`RulesReply`] |
//! | [`rules`](Client::rules)`()` | the rules in force | [`RulesReply`] |
//! | [`history`](Client::history)`(query)` | recorded usage per bucket of a period | [`HistoryReply`] |
//! | [`history_reset`](Client::history_reset)`(label)` | forget recorded usage (root only) | [`HistoryResetReply`] |
//! | [`quotas`](Client::quotas)`()` | each configured quota's use of its current period | [`QuotasReply`] |
//! | [`status`](Client::status)`()` | version, attached programs, paths | [`StatusReply`] |
//! | [`is_available`](Client::is_available)`()` | does the daemon answer with all programs attached? | `bool` |
//! | [`debug_info`](Client::debug_info)`()` | hooks, run statistics, map fill, counters | [`DebugReply`] |
//!
//! A refusal's [`ErrorCode`](crate::protocol::ErrorCode) is [`ClientError::code`]. One
//! `Client` is one connection: requests are answered in order, one at a time. For one-off
//! calls, [`sockstats`](crate::sockstats) has the Go-shaped free functions (`get`,
//! `with_sock_stats`, …) that connect for each call.
//!
//! ```no_run
//! use std::net::TcpStream;
//! use sockstats_common::client::Client;
//!
//! let stream = TcpStream::connect("127.0.0.1:8080")?;
//! let mut client = Client::connect_default()?;
//! client.label(&stream, "uploader")?;
//! // ... use the stream ...
//! let stats = client.get()?;
//! if let Some(uploader) = stats.stats.get("uploader") {
//!     println!("uploader sent {} bytes", uploader.tx_bytes);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! No async runtime and no aya: a Unix stream socket, `sendmsg` with `SCM_RIGHTS` for the fds,
//! and JSON lines (docs/protocol.md).
use std::{
    io::{self, BufRead, BufReader, IoSlice, Read, Write},
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd},
        unix::net::UnixStream,
    },
    path::{Path, PathBuf},
    time::Duration,
};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use serde::de::DeserializeOwned;

use crate::protocol::{
    decode_reply, encode_request, DebugReply, GetByReply, GetDestinationsReply, GetInterfacesReply,
    GetPeersReply, GetReply, Grouping, HistoryQuery, HistoryReply, HistoryResetReply, LabelReply,
    LabelsReply, QuotasReply, ReplyError, Request, RuleSelector, RulesReply, StatusReply,
    UnlabelReply, ValidationReply, DEFAULT_SOCKET_PATH, MAX_FDS_PER_REQUEST, SOCKET_ENV,
};

/// Longest reply the client reads (a `get` with thousands of labels is a few MiB; three years
/// of days of 1,000 labels' history about 54 MiB, more with long label names).
pub const MAX_REPLY_BYTES: usize = 256 * 1024 * 1024;

/// How long the client waits for a reply before giving up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon's socket could not be connected to; the message says what to do (start the
    /// daemon, point `$SOCKSTATS_SOCKET` at its socket, or get permission).
    #[error("{}", connect_advice(path, source))]
    Connect {
        /// The socket path the client tried.
        path: PathBuf,
        /// Why `connect` failed.
        #[source]
        source: io::Error,
    },
    /// Sending the request or reading the reply failed, including no reply within 30 seconds.
    #[error("talking to sockstatsd failed: {0}")]
    Io(#[from] io::Error),
    /// The daemon closed the connection before a whole reply line arrived, for example because
    /// it is stopping or closed this connection to make room for a root client.
    #[error("sockstatsd closed the connection without a reply")]
    Closed,
    /// The reply line was longer than [`MAX_REPLY_BYTES`].
    #[error("sockstatsd sent a reply longer than {MAX_REPLY_BYTES} bytes; ask for less (for `history`: a shorter --since, a longer --period, or --label for fewer labels)")]
    ReplyTooLong,
    /// The daemon refused the request ([`ClientError::code`] says why), or its reply could not
    /// be read.
    #[error("{0}")]
    Reply(#[from] ReplyError),
    /// `label_all` got no socket, or more than [`MAX_FDS_PER_REQUEST`]; nothing was sent.
    #[error("a request takes 1 to {MAX_FDS_PER_REQUEST} sockets, got {count}")]
    FdCount {
        /// How many sockets the call was given.
        count: usize,
    },
}

impl ClientError {
    /// The daemon's code when it refused the request; `None` for every other failure.
    #[must_use]
    pub fn code(&self) -> Option<crate::protocol::ErrorCode> {
        match self {
            ClientError::Reply(error) => error.code(),
            _ => None,
        }
    }
}

/// One line saying why connecting failed and what to do about it.
fn connect_advice(path: &Path, error: &io::Error) -> String {
    let path = path.display();
    match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => format!(
            "daemon not running at {path}: start it with `systemctl start sockstatsd` (or `sudo sockstatsd`), or point --socket / {SOCKET_ENV} at its socket"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "no permission to connect to {path}: run as root or as a member of the socket's group (sockstatsd --socket-mode sets who may connect)"
        ),
        _ => format!("cannot reach sockstatsd at {path}: {error}"),
    }
}

/// A connection to `sockstatsd`. Requests are answered in order, one at a time.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// The socket path the CLI and client use: `$SOCKSTATS_SOCKET`, else the default.
#[must_use]
pub fn default_socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV).map_or_else(|| PathBuf::from(DEFAULT_SOCKET_PATH), PathBuf::from)
}

impl Client {
    /// Connects to the daemon at [`default_socket_path`].
    pub fn connect_default() -> Result<Self, ClientError> {
        Self::connect(default_socket_path())
    }

    /// Connects to the daemon listening at `path`.
    pub fn connect(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        let writer = stream.try_clone()?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Puts `socket` (a TCP or UDP socket this process holds) under `label`. Its bytes since
    /// creation, and all later ones, count for that label.
    pub fn label(&mut self, socket: impl AsFd, label: &str) -> Result<LabelReply, ClientError> {
        self.label_all(&[socket.as_fd()], label)
    }

    /// Puts every socket of `sockets` under `label`, in one request.
    pub fn label_all(
        &mut self,
        sockets: &[BorrowedFd<'_>],
        label: &str,
    ) -> Result<LabelReply, ClientError> {
        self.call_with_fds(
            &Request::Label {
                label: label.to_owned(),
            },
            sockets,
        )
    }

    /// Takes the label off `socket`: its bytes count as `unlabeled` again.
    pub fn unlabel(&mut self, socket: impl AsFd) -> Result<UnlabelReply, ClientError> {
        self.call_with_fds(&Request::Unlabel, &[socket.as_fd()])
    }

    /// Payload bytes per label.
    pub fn get(&mut self) -> Result<GetReply, ClientError> {
        self.call(&Request::Get)
    }

    /// Payload bytes per label and interface, and IP-layer bytes and packets.
    pub fn get_interfaces(&mut self) -> Result<GetInterfacesReply, ClientError> {
        self.call(&Request::GetInterfaces)
    }

    /// Registered labels and their stable ids.
    pub fn labels(&mut self) -> Result<LabelsReply, ClientError> {
        self.call(&Request::Labels)
    }

    /// Per-label bytes from the kernel's own TCP counters (live and closed TCP sockets in the
    /// daemon's network namespace), to check `get` against. Costs more than `get`.
    pub fn get_validation(&mut self) -> Result<ValidationReply, ClientError> {
        self.call(&Request::GetValidation)
    }

    /// Everything a maintainer needs in one reply: hooks, run statistics, map fill, counters.
    pub fn debug_info(&mut self) -> Result<DebugReply, ClientError> {
        self.call(&Request::DebugInfo)
    }

    /// Payload bytes grouped by owner (uid, cgroup, process) or label.
    pub fn get_by(&mut self, by: Grouping) -> Result<GetByReply, ClientError> {
        self.call(&Request::GetBy {
            by,
            destinations: false,
        })
    }

    /// Payload bytes grouped as [`Client::get_by`] does, each group split by destination.
    pub fn get_by_destinations(&mut self, by: Grouping) -> Result<GetByReply, ClientError> {
        self.call(&Request::GetBy {
            by,
            destinations: true,
        })
    }

    /// Per label (or only `label`), the `top` remote addresses and ports with the most payload,
    /// the rest in one row, and what no peer can be named for.
    pub fn get_peers(
        &mut self,
        label: Option<&str>,
        top: u32,
    ) -> Result<GetPeersReply, ClientError> {
        self.call(&Request::GetPeers {
            label: label.map(str::to_owned),
            top,
        })
    }

    /// Per-label payload bytes per destination (`host`, `private`, `internet` and the named
    /// networks), per interface too with `interfaces`, with estimated costs with `cost`.
    pub fn get_destinations(
        &mut self,
        interfaces: bool,
        cost: bool,
    ) -> Result<GetDestinationsReply, ClientError> {
        self.call(&Request::GetDestinations { interfaces, cost })
    }

    /// Labels every socket made from now on by the uid, user or cgroup subtree `selector`
    /// names (root only). A temporary rule goes when this client disconnects.
    pub fn add_rule(
        &mut self,
        selector: RuleSelector,
        label: &str,
        temporary: bool,
    ) -> Result<RulesReply, ClientError> {
        self.call(&Request::AddRule {
            selector,
            label: label.to_owned(),
            temporary,
        })
    }

    /// Removes the rule of `selector` (root only).
    pub fn remove_rule(&mut self, selector: RuleSelector) -> Result<RulesReply, ClientError> {
        self.call(&Request::RemoveRule { selector })
    }

    /// The rules in force.
    pub fn rules(&mut self) -> Result<RulesReply, ClientError> {
        self.call(&Request::Rules)
    }

    /// Recorded usage per bucket (docs/history.md).
    pub fn history(&mut self, query: HistoryQuery) -> Result<HistoryReply, ClientError> {
        self.call(&Request::History { query })
    }

    /// Forgets the recorded usage of `label`, or all of it (root only).
    pub fn history_reset(&mut self, label: Option<&str>) -> Result<HistoryResetReply, ClientError> {
        self.call(&Request::HistoryReset {
            label: label.map(str::to_owned),
        })
    }

    /// Each quota of the daemon's config file, with its use of its current period.
    pub fn quotas(&mut self) -> Result<QuotasReply, ClientError> {
        self.call(&Request::Quotas)
    }

    /// The daemon's status: version, attached programs, paths.
    pub fn status(&mut self) -> Result<StatusReply, ClientError> {
        self.call(&Request::Status)
    }

    /// True when the daemon answers and all its programs are attached.
    pub fn is_available(&mut self) -> bool {
        self.status().is_ok_and(|status| status.attached)
    }

    fn call<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, ClientError> {
        self.writer.write_all(encode_request(request).as_bytes())?;
        self.read_reply()
    }

    fn call_with_fds<T: DeserializeOwned>(
        &mut self,
        request: &Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<T, ClientError> {
        if fds.is_empty() || fds.len() > MAX_FDS_PER_REQUEST {
            return Err(ClientError::FdCount { count: fds.len() });
        }
        let line = encode_request(request);
        let raw_fds: Vec<_> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let sent = sendmsg::<UnixAddr>(
            self.writer.as_raw_fd(),
            &[IoSlice::new(line.as_bytes())],
            &[ControlMessage::ScmRights(&raw_fds)],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(io::Error::from)?;
        // The fds travel with the first byte; a short write only leaves plain bytes to send.
        self.writer.write_all(&line.as_bytes()[sent..])?;
        self.read_reply()
    }

    fn read_reply<T: DeserializeOwned>(&mut self) -> Result<T, ClientError> {
        let mut line = Vec::new();
        let limit = u64::try_from(MAX_REPLY_BYTES).expect("fits") + 1;
        let read = Read::take(&mut self.reader, limit).read_until(b'\n', &mut line)?;
        if read == 0 {
            return Err(ClientError::Closed);
        }
        if line.last() != Some(&b'\n') {
            return Err(if line.len() > MAX_REPLY_BYTES {
                ClientError::ReplyTooLong
            } else {
                ClientError::Closed
            });
        }
        line.pop();
        Ok(decode_reply(&line)?)
    }
}
