//! The wire protocol between `sockstatsd` and its clients (see docs/protocol.md).
//!
//! Framing: newline-delimited JSON over a Unix stream socket, one request and one reply per line,
//! requests of at most [`MAX_LINE_BYTES`] bytes including the newline (replies are not capped:
//! a `get` with thousands of labels is larger). Every request is an object
//! with an `"op"`; every reply has `"ok"`, and `"error"` when `ok` is false. A `label` or
//! `unlabel` request travels in the same `sendmsg` as the socket fds it applies to
//! (`SCM_RIGHTS`). This module owns the shapes and the codec; it does no I/O.
use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

mod history;
pub use history::{
    HistoryBucket, HistoryBy, HistoryCounts, HistoryQuery, HistoryReply, HistoryResetReply,
    HistoryStatus, Period,
};
mod quotas;
pub use quotas::{QuotaFired, QuotaState, QuotaThreshold, QuotaUse, QuotasReply};

/// Longest accepted request line, newline included. Longer input gets an error reply and the
/// connection is closed.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Most fds accepted with one request.
pub const MAX_FDS_PER_REQUEST: usize = 64;
/// Where the daemon listens unless told otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/sockstats/sockstats.sock";
/// Environment variable that overrides [`DEFAULT_SOCKET_PATH`] for the CLI and the client.
pub const SOCKET_ENV: &str = "SOCKSTATS_SOCKET";

/// Every op the daemon knows, as written on the wire.
pub const OPS: [&str; 17] = [
    "label",
    "unlabel",
    "get",
    "get_interfaces",
    "get_destinations",
    "get_peers",
    "get_validation",
    "get_by",
    "labels",
    "status",
    "debug_info",
    "add_rule",
    "remove_rule",
    "rules",
    "history",
    "history_reset",
    "quotas",
];

/// A request, as the daemon decodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Label the sockets whose fds come with this request.
    Label {
        /// The label name (see [`crate::label_name`]), registered if it is new; `unlabeled`
        /// takes the label off, as [`Request::Unlabel`] does.
        label: String,
    },
    /// Remove the label of the sockets whose fds come with this request.
    Unlabel,
    /// Per-label payload bytes.
    Get,
    /// Per-label payload bytes split by the interface they really used, and IP-layer bytes.
    GetInterfaces,
    /// Per-label payload bytes split by destination (class or named network of the remote
    /// address), optionally by interface too, with estimated costs.
    GetDestinations {
        /// Split each destination by interface as well.
        #[serde(default)]
        interfaces: bool,
        /// Add the estimated cost per label and in all (needs `price` lines in the config).
        #[serde(default)]
        cost: bool,
    },
    /// Per label, the remote addresses and ports with the most payload: live sockets and those
    /// closed since the daemon started.
    GetPeers {
        /// Only this label (all labels when missing).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// How many peers per label (1–1000); the rest are one `other` row.
        #[serde(default = "default_top")]
        top: u32,
    },
    /// Per-label bytes from an independent source: the kernel's own TCP counters.
    GetValidation,
    /// Registered label names and their stable ids.
    Labels,
    /// Is the daemon up and are its programs attached?
    Status,
    /// Everything a maintainer needs: hooks, program run statistics, map fill, counters.
    DebugInfo,
    /// Payload bytes grouped by owner instead of label: uid, cgroup or process.
    GetBy {
        /// What to group the bytes by.
        by: Grouping,
        /// Split each group's bytes by destination too.
        #[serde(default)]
        destinations: bool,
    },
    /// Label every socket made from now on by a uid or by tasks in a cgroup subtree. Root only.
    AddRule {
        /// Which sockets the rule labels (its fields sit in the request object itself).
        #[serde(flatten)]
        selector: RuleSelector,
        /// The label the rule's sockets get, registered if it is new.
        label: String,
        /// Remove the rule when this connection closes (what `sockstats run` uses).
        #[serde(default)]
        temporary: bool,
    },
    /// Remove the rule of a uid or cgroup. Root only.
    RemoveRule {
        /// The rule to remove, named by what it matches (its fields sit in the request object).
        #[serde(flatten)]
        selector: RuleSelector,
    },
    /// The rules in force.
    Rules,
    /// Recorded usage per bucket of a period (docs/history.md).
    History {
        /// What to answer (its fields sit in the request object itself).
        #[serde(flatten)]
        query: HistoryQuery,
    },
    /// Forget recorded usage: of one label, or all of it. Root only.
    HistoryReset {
        /// The label whose history to forget; all history when missing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// Each configured quota's use of its current period.
    Quotas,
}

/// What `get_by` groups bytes by. Every grouping sums to `get`'s totals plus its `overflow`;
/// groups in parentheses hold bytes no owner can be named for (docs/protocol.md, `get_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grouping {
    /// By label, as `get` does, with each label's live sockets.
    Label,
    /// By the uid of the task that made the socket, shown as its user name (`uid <N>` for a
    /// uid without a user).
    Uid,
    /// By the cgroup v2 of the task that made the socket, shown as its path below the cgroup2
    /// mount.
    Cgroup,
    /// By the process that made the socket, shown as `<pid> (<command>)`: live sockets only,
    /// the bytes of closed sockets are in `(closed sockets)`.
    Process,
    /// By the systemd unit (`nginx.service`, `user@1000.service`, `session-3.scope`) of the
    /// cgroup of the task that made the socket, from its path.
    Unit,
    /// By the container (Docker, Podman, containerd, CRI-O; Kubernetes ones as
    /// `<namespace>/<pod>/<container>`) of the cgroup of the task that made the socket, named
    /// from the runtime's metadata, else by its short id.
    Container,
}

impl Grouping {
    /// The grouping as written on the wire (`label`, `uid`, `cgroup`, `process`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Grouping::Label => "label",
            Grouping::Uid => "uid",
            Grouping::Cgroup => "cgroup",
            Grouping::Process => "process",
            Grouping::Unit => "unit",
            Grouping::Container => "container",
        }
    }
}

/// Which sockets a rule labels: exactly one of `uid`, `user`, `cgroup`, `unit` or
/// `container`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RuleSelector {
    /// Sockets made by tasks running as this uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Sockets made by tasks running as this user (a name the daemon resolves to its uid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Sockets made by tasks in this cgroup v2 or below it: a path relative to the cgroup2
    /// mount, like `/system.slice/nginx.service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Sockets made by tasks in this systemd unit (`nginx.service`), wherever its cgroup is,
    /// also after the unit restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Sockets made by tasks in this container: its name as `get --by container` shows it, or
    /// its id (at least 12 hex digits); also after it is made again under that name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

impl RuleSelector {
    /// Selects the sockets made by tasks in the systemd unit `name`.
    #[must_use]
    pub fn unit(name: &str) -> Self {
        Self {
            unit: Some(name.to_owned()),
            ..Self::default()
        }
    }

    /// Selects the sockets made by tasks in the container `name` (or id).
    #[must_use]
    pub fn container(name: &str) -> Self {
        Self {
            container: Some(name.to_owned()),
            ..Self::default()
        }
    }

    /// Selects the sockets made by tasks running as `uid`.
    #[must_use]
    pub fn uid(uid: u32) -> Self {
        Self {
            uid: Some(uid),
            ..Self::default()
        }
    }

    /// Selects the sockets made by tasks running as the user `name` (the daemon resolves it
    /// to its uid).
    #[must_use]
    pub fn user(name: &str) -> Self {
        Self {
            user: Some(name.to_owned()),
            ..Self::default()
        }
    }

    /// Selects the sockets made by tasks in the cgroup v2 `path` (below the cgroup2 mount,
    /// starting with `/`) or below it.
    #[must_use]
    pub fn cgroup(path: &str) -> Self {
        Self {
            cgroup: Some(path.to_owned()),
            ..Self::default()
        }
    }
}

impl Request {
    /// Does this request take socket fds?
    #[must_use]
    pub fn takes_fds(&self) -> bool {
        matches!(self, Request::Label { .. } | Request::Unlabel)
    }

    /// The op as written on the wire.
    #[must_use]
    pub fn op(&self) -> &'static str {
        match self {
            Request::Label { .. } => "label",
            Request::Unlabel => "unlabel",
            Request::Get => "get",
            Request::GetInterfaces => "get_interfaces",
            Request::GetDestinations { .. } => "get_destinations",
            Request::GetPeers { .. } => "get_peers",
            Request::GetValidation => "get_validation",
            Request::GetBy { .. } => "get_by",
            Request::Labels => "labels",
            Request::Status => "status",
            Request::DebugInfo => "debug_info",
            Request::AddRule { .. } => "add_rule",
            Request::RemoveRule { .. } => "remove_rule",
            Request::Rules => "rules",
            Request::History { .. } => "history",
            Request::HistoryReset { .. } => "history_reset",
            Request::Quotas => "quotas",
        }
    }
}

/// Why a request line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The line is not JSON (or not UTF-8).
    #[error("request is not valid JSON: {reason}")]
    InvalidJson {
        /// What the JSON parser found wrong, with its line and column.
        reason: String,
    },
    /// The line is JSON but not an object.
    #[error("request must be a JSON object with an \"op\" field")]
    NotAnObject,
    /// The object has no `"op"`, or its `"op"` is not a string.
    #[error("request has no \"op\" string; known ops: {}", OPS.join(", "))]
    MissingOp,
    /// The `"op"` is none of [`OPS`].
    #[error("unknown op {op:?}; known ops: {}", OPS.join(", "))]
    UnknownOp {
        /// The op the request named.
        op: String,
    },
    /// The op is known but a field it needs is missing or has the wrong type.
    #[error("bad {op:?} request: {reason}")]
    BadFields {
        /// The op the request named.
        op: String,
        /// Which field is missing or mistyped, as the JSON decoder says it.
        reason: String,
    },
}

/// Decodes one request line (without its newline).
pub fn decode_request(line: &[u8]) -> Result<Request, DecodeError> {
    let value: Value = serde_json::from_slice(line).map_err(|error| DecodeError::InvalidJson {
        reason: error.to_string(),
    })?;
    let Value::Object(object) = &value else {
        return Err(DecodeError::NotAnObject);
    };
    let op = match object.get("op") {
        Some(Value::String(op)) => op.clone(),
        _ => return Err(DecodeError::MissingOp),
    };
    if !OPS.contains(&op.as_str()) {
        return Err(DecodeError::UnknownOp { op });
    }
    serde_json::from_value(value).map_err(|error| DecodeError::BadFields {
        op,
        reason: error.to_string(),
    })
}

/// Encodes a request as one line, newline included.
#[must_use]
pub fn encode_request(request: &Request) -> String {
    let mut line = serde_json::to_string(request).expect("requests always serialize");
    line.push('\n');
    line
}

/// Encodes a successful reply: the fields of `body` (none named `ok`) plus `"ok": true`,
/// newline included.
///
/// Written straight from `body` (no `serde_json::Value` in between: a `history` reply can hold
/// a million entries).
#[must_use]
pub fn encode_ok<T: Serialize>(body: &T) -> String {
    let mut line = serde_json::to_string(body).expect("replies always serialize");
    match line.as_str() {
        "null" | "{}" => {
            line.clear();
            line.push_str("{\"ok\":true}");
        }
        _ => {
            assert!(
                line.starts_with('{') && line.ends_with('}'),
                "reply bodies are JSON objects, got {line}"
            );
            line.pop();
            line.push_str(",\"ok\":true}");
        }
    }
    line.push('\n');
    line
}

/// Why the daemon refused a request, for programs to act on (the `"code"` of an error reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request line is not a request: bad JSON, unknown op, missing or wrong fields.
    BadRequest,
    /// The label name is not a valid label name.
    BadLabel,
    /// A passed fd is not a TCP or UDP socket, or no fd came with a request that needs one.
    NotASocket,
    /// Only root may do this (rules).
    NotPermitted,
    /// What the request names does not exist (a rule, a user, a cgroup).
    NotFound,
    /// It exists already (a rule for the same uid or cgroup).
    Conflict,
    /// A limit was reached: clients, labels, rules, map capacity.
    LimitReached,
    /// Anything else; the message says what.
    #[serde(other)]
    Failed,
}

/// Encodes a failure reply with its code, newline included.
#[must_use]
pub fn encode_refusal(code: ErrorCode, error: &str) -> String {
    let mut line = serde_json::json!({ "ok": false, "code": code, "error": error }).to_string();
    line.push('\n');
    line
}

/// Encodes a failure reply of code [`ErrorCode::Failed`], newline included.
#[must_use]
pub fn encode_error(error: &str) -> String {
    encode_refusal(ErrorCode::Failed, error)
}

/// A reply line as the client sees it: the body on success, the daemon's reason on failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The daemon refused the request (a reply with `"ok": false`).
    #[error("{message}")]
    Refused {
        /// The reply's `"code"`; a missing code, or one this client does not know, reads as
        /// [`ErrorCode::Failed`].
        code: ErrorCode,
        /// The reply's `"error"`, for people (`no reason given` when the reply has none).
        message: String,
    },
    /// The reply is not JSON, has no boolean `"ok"`, or its body does not have the expected
    /// shape; the string says what the decoder found wrong.
    #[error("the daemon sent a reply this client cannot read: {0}")]
    Malformed(String),
}

impl ReplyError {
    /// The daemon's code for a refusal; `None` for a malformed reply.
    #[must_use]
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ReplyError::Refused { code, .. } => Some(*code),
            ReplyError::Malformed(_) => None,
        }
    }
}

/// Decodes a reply line (without its newline) into `T`.
pub fn decode_reply<T: DeserializeOwned>(line: &[u8]) -> Result<T, ReplyError> {
    // The outcome first, skipping the body; then the body straight into `T` (a `Value` of a
    // large reply would cost more than both passes). A struct also reads a JSON array: only
    // an object is a reply.
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Err(ReplyError::Malformed(
            "reply is not a JSON object".to_owned(),
        ));
    }
    let outcome: Outcome =
        serde_json::from_slice(line).map_err(|error| ReplyError::Malformed(error.to_string()))?;
    match outcome.ok {
        Some(true) => {
            serde_json::from_slice(line).map_err(|error| ReplyError::Malformed(error.to_string()))
        }
        Some(false) => Err(ReplyError::Refused {
            code: outcome
                .code
                .and_then(|code| serde_json::from_value(code).ok())
                .unwrap_or(ErrorCode::Failed),
            message: match outcome.error {
                Some(Value::String(error)) => error,
                _ => "no reason given".to_owned(),
            },
        }),
        None => Err(ReplyError::Malformed(
            "reply has no boolean \"ok\" field".to_owned(),
        )),
    }
}

/// The outcome fields of a reply line, the rest skipped.
#[derive(Deserialize)]
struct Outcome {
    #[serde(default, deserialize_with = "boolean_or_none")]
    ok: Option<bool>,
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// `Some` for a JSON boolean, `None` for anything else (a reply whose `ok` is not a boolean
/// is malformed, said so by [`decode_reply`]).
fn boolean_or_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Bool(ok) => Some(ok),
        _ => None,
    })
}

/// Payload bytes in both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteCounts {
    /// Bytes sent: payload in `get` (what successful sends returned), `tcp_info.bytes_acked`
    /// in `get_validation`.
    pub tx_bytes: u64,
    /// Bytes received: payload in `get` (what successful receives returned, `MSG_PEEK` not
    /// counted), `tcp_info.bytes_received` in `get_validation`.
    pub rx_bytes: u64,
}

/// Reply to `get`: the shape `sockstats get --json` prints, plus `overflow` (docs/protocol.md,
/// `get`: its fields are never renamed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetReply {
    /// Payload bytes per label name, `unlabeled` included, since the state was created.
    pub stats: BTreeMap<String, ByteCounts>,
    /// The interface of the default route (IPv4 first, then IPv6), if there is one.
    pub current_interface: Option<String>,
    /// Whether `current_interface` is metered: its name matches a `metered` glob of the
    /// daemon's config file (`rmnet*`, `ww*`, `pdp*` unless set; Tailscale's
    /// `CurrentInterfaceCellular`). False without a current interface.
    #[serde(default)]
    pub current_interface_metered: bool,
    /// Bytes of sockets the kernel could not track because a map was full.
    #[serde(default)]
    pub overflow: ByteCounts,
}

/// One label's payload bytes per interface name (docs/protocol.md, `get_interfaces`, says how
/// interfaces are named, `:unknown` and `:other` included).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    /// Payload bytes sent, per interface name: the interface of the socket's latest outgoing
    /// packet when the send returned.
    pub tx_bytes_by_interface: BTreeMap<String, u64>,
    /// Payload bytes received, per interface name: the interface of the socket's latest
    /// incoming packet when the receive returned.
    pub rx_bytes_by_interface: BTreeMap<String, u64>,
}

/// IP-layer (wire) traffic of one label on one interface: headers, ACKs and retransmits
/// included, GSO/GRO super-packets counted as the packets they stand for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCounts {
    /// IP-layer bytes sent, headers included.
    pub tx_bytes: u64,
    /// IP-layer bytes received, headers included.
    pub rx_bytes: u64,
    /// IP packets sent, a GSO super-packet counted as its segments.
    pub tx_packets: u64,
    /// IP packets received, a GRO super-packet counted as its segments.
    pub rx_packets: u64,
}

/// Reply to `get_interfaces`: the shape `sockstats get --interfaces --json` prints, plus `wire`
/// and `current_interface` (docs/protocol.md, `get_interfaces`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetInterfacesReply {
    /// Payload bytes per label name, per interface name. They sum to `get`'s totals.
    pub stats: BTreeMap<String, InterfaceStats>,
    /// Every interface name that appears in `stats`, plus the daemon's namespace's interfaces.
    pub interfaces: Vec<String>,
    /// IP-layer traffic per label name, per interface name.
    #[serde(default)]
    pub wire: BTreeMap<String, BTreeMap<String, WireCounts>>,
    /// The interface of the default route, as in `get`.
    #[serde(default)]
    pub current_interface: Option<String>,
}

/// Payload bytes per destination name, in both directions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationBytes {
    /// Payload bytes sent, per destination: that of the remote address of the socket's latest
    /// outgoing packet when the send returned.
    pub tx_bytes_by_destination: BTreeMap<String, u64>,
    /// Payload bytes received, per destination: that of the remote address of the socket's
    /// latest incoming packet when the receive returned.
    pub rx_bytes_by_destination: BTreeMap<String, u64>,
}

/// One label's bytes in a `get_destinations` reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DestinationStats {
    /// Payload bytes sent, per destination name. They sum to `get`'s `tx_bytes`.
    pub tx_bytes_by_destination: BTreeMap<String, u64>,
    /// Payload bytes received, per destination name. They sum to `get`'s `rx_bytes`.
    pub rx_bytes_by_destination: BTreeMap<String, u64>,
    /// IP-layer bytes sent (headers, ACKs and retransmits included), per destination name.
    #[serde(default)]
    pub wire_tx_bytes_by_destination: BTreeMap<String, u64>,
    /// IP-layer bytes received, per destination name.
    #[serde(default)]
    pub wire_rx_bytes_by_destination: BTreeMap<String, u64>,
    /// With `interfaces`: the same split per interface name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_interface: BTreeMap<String, DestinationBytes>,
    /// With `cost`: the estimated cost of the label's bytes, in `currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
}

/// What the bytes of a `get_destinations` reply cost, estimated from the config's prices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// The symbol the config gives (`currency`), `$` by default.
    pub currency: String,
    /// The sum over all labels.
    pub total: f64,
    /// The prices used: destination → `tx`/`rx` → price per GiB (2^30 bytes).
    pub prices: BTreeMap<String, BTreeMap<String, f64>>,
}

/// Reply to `get_destinations`: the shape `sockstats get --destinations --json` prints
/// (docs/protocol.md, `get_destinations`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GetDestinationsReply {
    /// Payload bytes per label name, per destination name.
    pub stats: BTreeMap<String, DestinationStats>,
    /// Every destination name that appears in `stats`, plus the three classes and the named
    /// networks of the config.
    pub destinations: Vec<String>,
    /// With `cost`: the estimate's currency, total and prices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostEstimate>,
}

/// The peers a `get_peers` request shows per label unless it says otherwise.
#[must_use]
pub const fn default_top() -> u32 {
    10
}

/// One peer of a label in a `get_peers` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCounts {
    /// `198.51.100.2:443`, `[2001:db8::2]:53` (no port for protocols without one).
    pub peer: String,
    /// Payload bytes sent to it.
    pub tx_bytes: u64,
    /// Payload bytes received from it.
    pub rx_bytes: u64,
    /// The label's live sockets with it now.
    pub live_sockets: u64,
    /// The label's sockets with it that closed since the daemon started.
    pub closed_sockets: u64,
}

/// The peers of a label beyond the ones shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherPeers {
    /// Payload bytes sent to them.
    pub tx_bytes: u64,
    /// Payload bytes received from them.
    pub rx_bytes: u64,
    /// How many peers they are (a peer folded out of the closed sockets' table earlier and
    /// seen again counts twice).
    pub peers: u64,
}

/// One label's rows in a `get_peers` reply: they add up to its totals in `get`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelPeers {
    /// The peers with the most payload, largest first.
    pub peers: Vec<PeerCounts>,
    /// All other peers.
    pub other: OtherPeers,
    /// Sockets that had more than one peer (unconnected UDP).
    pub several_peers: ByteCounts,
    /// Sockets whose peer the kernel did not see.
    pub unknown_peer: ByteCounts,
    /// The rest of the label's totals: sockets that closed under an earlier daemon, and closing
    /// sockets the kernel's ring buffer had no room for.
    pub not_attributed: ByteCounts,
}

/// Reply to `get_peers` (docs/protocol.md, `get_peers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetPeersReply {
    /// Rows per label name.
    pub stats: BTreeMap<String, LabelPeers>,
    /// The peers shown per label at most.
    pub top: u32,
    /// In words, which sockets the rows cover.
    pub covers: String,
}

/// Reply to `get_validation`: the shape `sockstats get --validation --json` prints, plus what it
/// covers (docs/protocol.md, `get_validation`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReply {
    /// Per label: `tcp_info.bytes_acked` (tx) and `bytes_received` (rx) of its TCP sockets.
    pub stats: BTreeMap<String, ByteCounts>,
    /// Live TCP sockets tracked by sockstats that the dump covered.
    #[serde(default)]
    pub live_tcp_sockets: u64,
    /// TCP sockets whose final counters the kernel added to their label when they reached
    /// `TCP_CLOSE` (counted only while the daemon runs with `--validate-closed`).
    #[serde(default)]
    pub closed_tcp_sockets: u64,
    /// In words, which sockets these numbers cover.
    #[serde(default)]
    pub covers: String,
    /// Whether closed TCP sockets are covered (`sockstatsd --validate-closed`).
    #[serde(default)]
    pub closed_covered: bool,
    /// Always 0: kept for clients of the first version, which followed `sock_diag` destroy
    /// notifications and counted the ones the kernel dropped.
    #[serde(default)]
    pub notifications_lost: u64,
    /// Always 0: kept for clients of the first version, which counted destroyed sockets left
    /// out because their label was no longer known.
    #[serde(default)]
    pub closed_without_label: u64,
}

/// Run statistics of one kernel program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramDebug {
    /// Program name in the object file.
    pub name: String,
    /// Where it is attached, as in [`ProgramStatus::hook`].
    pub hook: String,
    /// The kernel's program id, as in [`ProgramStatus::prog_id`].
    pub prog_id: Option<u32>,
    /// Runs counted by the kernel (only while `kernel.bpf_stats_enabled` is 1).
    pub run_count: u64,
    /// Total run time in ns (only while `kernel.bpf_stats_enabled` is 1).
    pub run_time_ns: u64,
    /// `run_time_ns / run_count` in ns; `None` when there were no runs.
    pub average_ns: Option<f64>,
}

/// How full one map is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapFill {
    /// The map's name: `ACCOUNT_KEYS`, `OWNER_KEYS`, `RULES`, `VALIDATION`, and
    /// `SOCKET_STATE_BY_COOKIE` on kernels before 5.11.
    pub name: String,
    /// Entries in the map now.
    pub entries: u64,
    /// The most entries it holds (its `max_entries`); 0 when the kernel did not say.
    pub capacity: u64,
}

/// Reply to `debug_info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebugReply {
    /// The daemon's version.
    pub version: String,
    /// The running kernel's release (`uname -r`).
    pub kernel: String,
    /// Seconds since the daemon started.
    pub uptime_seconds: f64,
    /// `kernel.bpf_stats_enabled`: program run counts and times are only kept while it is on.
    pub bpf_stats_enabled: bool,
    /// Which hooks count payload bytes, and why.
    #[serde(default)]
    pub payload_hooks: PayloadHooks,
    /// What the running kernel cannot do that a newer one can (empty on current kernels).
    #[serde(default)]
    pub kernel_limits: Vec<String>,
    /// Every kernel program of the daemon, with its run statistics.
    pub programs: Vec<ProgramDebug>,
    /// How full the maps that can fill up are.
    pub maps: Vec<MapFill>,
    /// The kernel's failure and event counters by name (as in [`StatusReply::counters`]).
    pub counters: BTreeMap<String, u64>,
    /// Inet sockets held by processes that sockstats tracks right now.
    pub live_sockets: u64,
    /// Registered labels (`unlabeled` not counted).
    pub labels: u64,
    /// The path of the Unix socket the daemon listens on.
    pub socket: String,
    /// The cgroup v2 directory whose subtree is accounted.
    pub cgroup_root: String,
    /// Where the maps and links are pinned in bpffs.
    pub bpffs_dir: String,
    /// Where the label registry and the clients' rules are kept.
    pub state_dir: String,
    /// The usage history's health; `None` from daemons without one.
    #[serde(default)]
    pub history: Option<HistoryStatus>,
    /// The OTLP exporter's state, when `--otlp-endpoint` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<OtlpDebug>,
}

/// The OTLP exporter (`sockstatsd --otlp-endpoint`): where it posts and how that goes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OtlpDebug {
    /// The URL exports are posted to.
    pub endpoint: String,
    /// Seconds between two readings of the counters (`--otlp-interval`).
    pub interval_seconds: f64,
    /// Exports the collector took.
    pub sent: u64,
    /// Attempts that failed and are retried (connection errors, timeouts, 429, 5xx).
    pub failed: u64,
    /// Exports the collector refused for good (any other 4xx), dropped.
    pub refused: u64,
    /// Exports dropped unsent because the queue was full (the oldest go first).
    pub dropped: u64,
    /// Exports waiting to be sent.
    pub queued: u64,
    /// The most exports that wait; more drop the oldest.
    pub queue_limit: u64,
    /// The last error, and when (RFC 3339, UTC).
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<String>,
    /// When the collector last took an export (RFC 3339, UTC).
    pub last_success_at: Option<String>,
}

/// One socket a `label` or `unlabel` request applied to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketInfo {
    /// The kernel's socket cookie (`SO_COOKIE`), unique for the life of the boot.
    pub cookie: u64,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// `tcp`, `udp`, `udplite`, `mptcp`, or the IP protocol number of other inet sockets.
    pub protocol: String,
}

/// Reply to `label`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelReply {
    /// The label name, as the request gave it.
    pub label: String,
    /// The label's stable id (0 for `unlabeled`, which takes the label off).
    pub label_id: u32,
    /// One entry per passed socket, in the order the fds were passed.
    pub sockets: Vec<SocketInfo>,
}

/// Reply to `unlabel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlabelReply {
    /// One entry per passed socket, in the order the fds were passed.
    pub sockets: Vec<SocketInfo>,
}

/// One registered label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelInfo {
    /// The label name.
    pub name: String,
    /// Its stable id: from 1 up, never renumbered or reused, also across restarts.
    pub id: u32,
}

/// Reply to `labels`, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelsReply {
    /// Every registered label, ordered by id; `unlabeled` (id 0) is not listed.
    pub labels: Vec<LabelInfo>,
}

/// One kernel program of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramStatus {
    /// Program name in the object file.
    pub name: String,
    /// Where it is attached, e.g. `tp_btf/sock_send_length` or `cgroup/sock_create`.
    pub hook: String,
    /// The kernel's program id, for `bpftool prog show id N`; `None` when the daemon could
    /// not read it from the program's link (then [`StatusReply::attached`] is false).
    pub prog_id: Option<u32>,
}

/// One rule in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    /// The uid, cgroup path, unit or container the rule is for (a rule added for a user shows
    /// its uid).
    #[serde(flatten)]
    pub selector: RuleSelector,
    /// The label the rule's sockets get.
    pub label: String,
    /// `config` (the rules file), `client` (added over the socket, kept in the state dir) or
    /// `temporary` (removed when the connection that added it closes).
    pub source: String,
    /// Whether the kernel applies it now (a cgroup rule is inactive while its cgroup does not
    /// exist).
    pub active: bool,
    /// The cgroup's id while it exists (cgroup rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_id: Option<u64>,
    /// The cgroups a unit or container rule applies to now (paths below the cgroup2 mount).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<String>,
}

/// Reply to `rules`, and to `add_rule`/`remove_rule` (the rule added or removed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesReply {
    /// For `rules`, every rule in force; for `add_rule` and `remove_rule`, the rule added or
    /// removed.
    pub rules: Vec<RuleInfo>,
}

/// One group's bytes in a `get_by` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCounts {
    /// Payload bytes sent by the group's sockets.
    pub tx_bytes: u64,
    /// Payload bytes received by the group's sockets.
    pub rx_bytes: u64,
    /// Live sockets of the group now.
    pub live_sockets: u64,
    /// With `destinations`: `tx_bytes` per destination name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tx_bytes_by_destination: BTreeMap<String, u64>,
    /// With `destinations`: `rx_bytes` per destination name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rx_bytes_by_destination: BTreeMap<String, u64>,
}

/// Reply to `get_by`: payload bytes per uid, cgroup or process (or label).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetByReply {
    /// The grouping the request asked for.
    pub by: Grouping,
    /// Bytes per group name: a user name, a cgroup path, `<pid> (<command>)` or a label, plus
    /// rows in parentheses for bytes no group can own (see `covers`).
    pub stats: BTreeMap<String, GroupCounts>,
    /// In words, which sockets the groups cover.
    pub covers: String,
}

/// The hooks that count payload bytes, chosen by the daemon at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadHooks {
    /// `tp_btf` (the `sock_send_length`/`sock_recv_length` tracepoints, Linux 6.3+) or
    /// `fexit` (on `tcp_sendmsg`, `udp_sendmsg`, … and their receive twins).
    pub set: String,
    /// Why this set: what the kernel has, or what the better set lacked.
    pub reason: String,
}

/// Reply to `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    /// The daemon's version.
    pub version: String,
    /// True when every program is attached: there is at least one, and each has a `prog_id`.
    pub attached: bool,
    /// Every kernel program of the daemon.
    pub programs: Vec<ProgramStatus>,
    /// Which hooks count payload bytes, and why.
    #[serde(default)]
    pub payload_hooks: PayloadHooks,
    /// What the running kernel cannot do that a newer one can (empty on current kernels).
    #[serde(default)]
    pub kernel_limits: Vec<String>,
    /// The cgroup v2 directory whose subtree is accounted.
    pub cgroup_root: String,
    /// Where the maps and links are pinned in bpffs.
    pub bpffs_dir: String,
    /// Where the label registry and the clients' rules are kept.
    pub state_dir: String,
    /// Where the kernel keeps each socket's state: `socket_storage` (with the socket, Linux
    /// 5.11+) or `hash_by_cookie` (before 5.11, or on a kernel that refuses socket-storage
    /// iterators; see `kernel_limits`).
    #[serde(default)]
    pub socket_states: String,
    /// Inet sockets held by processes that sockstats tracks right now.
    pub live_sockets: u64,
    /// The kernel's failure and event counters by name (`sockets_map_full`, ...).
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
    /// The usage history's health; `None` from daemons without one.
    #[serde(default)]
    pub history: Option<HistoryStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request of every variant, in the order of [`OPS`]. The `match` has no wildcard: a
    /// new variant does not compile until it is listed here (and so checked against `OPS`).
    fn one_of_each() -> Vec<Request> {
        let all = vec![
            Request::Label {
                label: "web".to_owned(),
            },
            Request::Unlabel,
            Request::Get,
            Request::GetInterfaces,
            Request::GetDestinations {
                interfaces: false,
                cost: false,
            },
            Request::GetPeers {
                label: None,
                top: 10,
            },
            Request::GetValidation,
            Request::GetBy {
                by: Grouping::Uid,
                destinations: false,
            },
            Request::Labels,
            Request::Status,
            Request::DebugInfo,
            Request::AddRule {
                selector: RuleSelector::uid(1),
                label: "web".to_owned(),
                temporary: false,
            },
            Request::RemoveRule {
                selector: RuleSelector::uid(1),
            },
            Request::Rules,
            Request::History {
                query: HistoryQuery::default(),
            },
            Request::HistoryReset { label: None },
            Request::Quotas,
        ];
        for request in &all {
            match request {
                Request::Label { .. }
                | Request::Unlabel
                | Request::Get
                | Request::GetInterfaces
                | Request::GetDestinations { .. }
                | Request::GetPeers { .. }
                | Request::GetValidation
                | Request::GetBy { .. }
                | Request::Labels
                | Request::Status
                | Request::DebugInfo
                | Request::AddRule { .. }
                | Request::RemoveRule { .. }
                | Request::Rules
                | Request::History { .. }
                | Request::HistoryReset { .. }
                | Request::Quotas => {}
            }
        }
        all
    }

    #[test]
    fn ops_are_the_request_variants_as_serde_writes_them() {
        let requests = one_of_each();
        let ops: Vec<&str> = requests.iter().map(Request::op).collect();
        assert_eq!(ops, OPS, "OPS lists every Request variant's op, in order");
        for request in &requests {
            let line = encode_request(request);
            let value: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(value["op"], request.op(), "op() is what serde writes");
            assert_eq!(
                decode_request(line.trim_end().as_bytes()).as_ref(),
                Ok(request)
            );
        }
    }

    #[test]
    fn decodes_every_op() {
        assert_eq!(
            decode_request(br#"{"op":"label","label":"web"}"#),
            Ok(Request::Label {
                label: "web".to_owned()
            })
        );
        assert_eq!(decode_request(br#"{"op":"unlabel"}"#), Ok(Request::Unlabel));
        assert_eq!(decode_request(br#"{"op":"get"}"#), Ok(Request::Get));
        assert_eq!(decode_request(br#"{"op":"labels"}"#), Ok(Request::Labels));
        assert_eq!(
            decode_request(br#"{"op":"status","extra":1}"#),
            Ok(Request::Status)
        );
    }

    #[test]
    fn decodes_rule_and_grouping_ops() {
        assert_eq!(
            decode_request(br#"{"op":"add_rule","cgroup":"/a.slice","label":"web"}"#),
            Ok(Request::AddRule {
                selector: RuleSelector::cgroup("/a.slice"),
                label: "web".to_owned(),
                temporary: false
            })
        );
        assert_eq!(
            decode_request(br#"{"op":"remove_rule","uid":33}"#),
            Ok(Request::RemoveRule {
                selector: RuleSelector::uid(33)
            })
        );
        assert_eq!(
            decode_request(br#"{"op":"get_by","by":"cgroup"}"#),
            Ok(Request::GetBy {
                by: Grouping::Cgroup,
                destinations: false,
            })
        );
        assert_eq!(
            decode_request(br#"{"op":"get_by","by":"uid","destinations":true}"#),
            Ok(Request::GetBy {
                by: Grouping::Uid,
                destinations: true,
            })
        );
        assert_eq!(
            decode_request(br#"{"op":"get_peers","label":"web"}"#),
            Ok(Request::GetPeers {
                label: Some("web".to_owned()),
                top: 10,
            })
        );
        assert_eq!(
            decode_request(br#"{"op":"get_destinations","interfaces":true}"#),
            Ok(Request::GetDestinations {
                interfaces: true,
                cost: false,
            })
        );
        assert!(matches!(
            decode_request(br#"{"op":"get_by","by":"planet"}"#),
            Err(DecodeError::BadFields { .. })
        ));
        let request = Request::AddRule {
            selector: RuleSelector::user("nobody"),
            label: "n".to_owned(),
            temporary: true,
        };
        assert_eq!(
            decode_request(encode_request(&request).trim_end().as_bytes()),
            Ok(request)
        );
    }

    #[test]
    fn round_trips_requests() {
        for request in [
            Request::Label {
                label: "a.b".to_owned(),
            },
            Request::Get,
            Request::Unlabel,
        ] {
            let line = encode_request(&request);
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(decode_request(line.trim_end().as_bytes()), Ok(request));
        }
    }

    #[test]
    fn refuses_bad_requests_with_reasons() {
        assert!(matches!(
            decode_request(b"{nope"),
            Err(DecodeError::InvalidJson { .. })
        ));
        assert!(matches!(
            decode_request(b"\xff\xfe"),
            Err(DecodeError::InvalidJson { .. })
        ));
        assert_eq!(decode_request(b"[1,2]"), Err(DecodeError::NotAnObject));
        assert_eq!(
            decode_request(br#"{"label":"x"}"#),
            Err(DecodeError::MissingOp)
        );
        assert_eq!(decode_request(br#"{"op":7}"#), Err(DecodeError::MissingOp));
        let unknown = decode_request(br#"{"op":"explode"}"#).unwrap_err();
        assert_eq!(
            unknown,
            DecodeError::UnknownOp {
                op: "explode".to_owned()
            }
        );
        assert!(
            unknown.to_string().contains("known ops: label, unlabel"),
            "{unknown}"
        );
        let missing = decode_request(br#"{"op":"label"}"#).unwrap_err();
        assert!(
            matches!(&missing, DecodeError::BadFields { op, reason } if op == "label" && reason.contains("label")),
            "{missing:?}"
        );
        let wrong_type = decode_request(br#"{"op":"label","label":5}"#).unwrap_err();
        assert!(
            matches!(wrong_type, DecodeError::BadFields { .. }),
            "{wrong_type:?}"
        );
    }

    #[test]
    fn replies_carry_ok_and_round_trip() {
        let mut reply = GetReply::default();
        reply.stats.insert(
            "web".to_owned(),
            ByteCounts {
                tx_bytes: 5,
                rx_bytes: 7,
            },
        );
        reply.current_interface = Some("eth0".to_owned());
        let line = encode_ok(&reply);
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["ok"], Value::Bool(true));
        assert_eq!(value["stats"]["web"]["tx_bytes"], 5);
        assert_eq!(value["current_interface"], "eth0");
        assert_eq!(
            decode_reply::<GetReply>(line.trim_end().as_bytes()),
            Ok(reply)
        );
    }

    #[test]
    fn error_replies_decode_to_the_reason() {
        let line = encode_error("bad label name");
        assert_eq!(
            decode_reply::<GetReply>(line.trim_end().as_bytes()),
            Err(ReplyError::Refused {
                code: ErrorCode::Failed,
                message: "bad label name".to_owned()
            })
        );
        let coded = encode_refusal(ErrorCode::NotPermitted, "root only");
        assert_eq!(
            decode_reply::<GetReply>(coded.trim_end().as_bytes())
                .unwrap_err()
                .code(),
            Some(ErrorCode::NotPermitted)
        );
        // A code from a newer daemon decodes as `failed`, keeping its message.
        assert_eq!(
            decode_reply::<GetReply>(br#"{"ok":false,"code":"brand_new","error":"x"}"#),
            Err(ReplyError::Refused {
                code: ErrorCode::Failed,
                message: "x".to_owned()
            })
        );
        assert!(matches!(
            decode_reply::<GetReply>(b"{}"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            decode_reply::<GetReply>(b"garbage"),
            Err(ReplyError::Malformed(_))
        ));
        for not_an_object in [
            &br#"[false,"not_found","x"]"#[..],
            b"true",
            b"{\"ok\":\"yes\"}",
        ] {
            assert!(
                matches!(
                    decode_reply::<GetReply>(not_an_object),
                    Err(ReplyError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(not_an_object)
            );
        }
    }
}
