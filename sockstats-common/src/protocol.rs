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
use serde_json::{Map, Value};

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
pub const OPS: [&str; 8] = [
    "label",
    "unlabel",
    "get",
    "get_interfaces",
    "get_validation",
    "labels",
    "status",
    "debug_info",
];

/// A request, as the daemon decodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Label the sockets whose fds come with this request.
    Label { label: String },
    /// Remove the label of the sockets whose fds come with this request.
    Unlabel,
    /// Per-label payload bytes.
    Get,
    /// Per-label payload bytes split by the interface they really used, and IP-layer bytes.
    GetInterfaces,
    /// Per-label bytes from an independent source: the kernel's own TCP counters.
    GetValidation,
    /// Registered label names and their stable ids.
    Labels,
    /// Is the daemon up and are its programs attached?
    Status,
    /// Everything a maintainer needs: hooks, program run statistics, map fill, counters.
    DebugInfo,
}

impl Request {
    /// Does this request take socket fds?
    #[must_use]
    pub fn takes_fds(&self) -> bool {
        matches!(self, Request::Label { .. } | Request::Unlabel)
    }
}

/// Why a request line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("request is not valid JSON: {reason}")]
    InvalidJson { reason: String },
    #[error("request must be a JSON object with an \"op\" field")]
    NotAnObject,
    #[error("request has no \"op\" string; known ops: {}", OPS.join(", "))]
    MissingOp,
    #[error("unknown op {op:?}; known ops: {}", OPS.join(", "))]
    UnknownOp { op: String },
    #[error("bad {op:?} request: {reason}")]
    BadFields { op: String, reason: String },
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

/// Encodes a successful reply: the fields of `body` plus `"ok": true`, newline included.
#[must_use]
pub fn encode_ok<T: Serialize>(body: &T) -> String {
    let mut object = match serde_json::to_value(body).expect("replies always serialize") {
        Value::Object(object) => object,
        Value::Null => Map::new(),
        other => panic!("reply bodies are JSON objects, got {other}"),
    };
    object.insert("ok".to_owned(), Value::Bool(true));
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

/// Encodes a failure reply, newline included.
#[must_use]
pub fn encode_error(error: &str) -> String {
    let mut line = serde_json::json!({ "ok": false, "error": error }).to_string();
    line.push('\n');
    line
}

/// A reply line as the client sees it: the body on success, the daemon's reason on failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the daemon refused the request: {0}")]
    Refused(String),
    #[error("the daemon sent a reply this client cannot read: {0}")]
    Malformed(String),
}

/// Decodes a reply line (without its newline) into `T`.
pub fn decode_reply<T: DeserializeOwned>(line: &[u8]) -> Result<T, ReplyError> {
    let value: Value =
        serde_json::from_slice(line).map_err(|error| ReplyError::Malformed(error.to_string()))?;
    match value.get("ok") {
        Some(Value::Bool(true)) => {
            serde_json::from_value(value).map_err(|error| ReplyError::Malformed(error.to_string()))
        }
        Some(Value::Bool(false)) => Err(ReplyError::Refused(
            value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
                .to_owned(),
        )),
        _ => Err(ReplyError::Malformed(
            "reply has no boolean \"ok\" field".to_owned(),
        )),
    }
}

/// Payload bytes in both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteCounts {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

/// Reply to `get`: the `sockstats get --json` shape of design.md, plus `overflow`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetReply {
    /// Payload bytes per label name, `unlabeled` included, since the state was created.
    pub stats: BTreeMap<String, ByteCounts>,
    /// The interface of the default route (IPv4 first, then IPv6), if there is one.
    pub current_interface: Option<String>,
    /// Bytes of sockets the kernel could not track because a map was full.
    #[serde(default)]
    pub overflow: ByteCounts,
}

/// One label's payload bytes per interface name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    pub tx_bytes_by_interface: BTreeMap<String, u64>,
    pub rx_bytes_by_interface: BTreeMap<String, u64>,
}

/// IP-layer (wire) traffic of one label on one interface: headers, ACKs and retransmits
/// included, GSO/GRO super-packets counted as the packets they stand for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireCounts {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
}

/// Reply to `get_interfaces`: the `sockstats get --interfaces --json` shape of design.md, plus
/// `wire` and `current_interface`.
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

/// Reply to `get_validation`: the `sockstats get --validation --json` shape of design.md, plus
/// what it covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationReply {
    /// Per label: `tcp_info.bytes_acked` (tx) and `bytes_received` (rx) of its TCP sockets.
    pub stats: BTreeMap<String, ByteCounts>,
    /// Live TCP sockets tracked by sockstats that the dump covered.
    #[serde(default)]
    pub live_tcp_sockets: u64,
    /// TCP sockets destroyed since the daemon started whose final counters were received.
    #[serde(default)]
    pub closed_tcp_sockets: u64,
    /// In words, which sockets these numbers cover.
    #[serde(default)]
    pub covers: String,
    /// Times the kernel dropped destroy notifications: closed sockets then missing here.
    #[serde(default)]
    pub notifications_lost: u64,
    /// Destroyed sockets left out because their tombstone (and so their label) was gone.
    #[serde(default)]
    pub closed_without_label: u64,
}

/// Run statistics of one kernel program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramDebug {
    pub name: String,
    pub hook: String,
    pub prog_id: Option<u32>,
    /// Runs counted by the kernel (only while `kernel.bpf_stats_enabled` is 1).
    pub run_count: u64,
    /// Total run time in ns (only while `kernel.bpf_stats_enabled` is 1).
    pub run_time_ns: u64,
    /// `run_time_ns / run_count`, when there were runs.
    pub average_ns: Option<f64>,
}

/// How full one map is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapFill {
    pub name: String,
    pub entries: u64,
    pub capacity: u64,
}

/// Reply to `debug_info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebugReply {
    pub version: String,
    /// The running kernel's release (`uname -r`).
    pub kernel: String,
    pub uptime_seconds: f64,
    /// `kernel.bpf_stats_enabled`: program run counts and times are only kept while it is on.
    pub bpf_stats_enabled: bool,
    /// Which hooks count payload bytes, and why.
    #[serde(default)]
    pub payload_hooks: PayloadHooks,
    /// What the running kernel cannot do that a newer one can (empty on current kernels).
    #[serde(default)]
    pub kernel_limits: Vec<String>,
    pub programs: Vec<ProgramDebug>,
    pub maps: Vec<MapFill>,
    /// The kernel's failure and event counters by name.
    pub counters: BTreeMap<String, u64>,
    pub live_sockets: u64,
    pub labels: u64,
    pub socket: String,
    pub cgroup_root: String,
    pub bpffs_dir: String,
    pub state_dir: String,
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
    pub label: String,
    /// The label's stable id.
    pub label_id: u32,
    pub sockets: Vec<SocketInfo>,
}

/// Reply to `unlabel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlabelReply {
    pub sockets: Vec<SocketInfo>,
}

/// One registered label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelInfo {
    pub name: String,
    pub id: u32,
}

/// Reply to `labels`, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelsReply {
    pub labels: Vec<LabelInfo>,
}

/// One kernel program of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramStatus {
    /// Program name in the object file.
    pub name: String,
    /// Where it is attached, e.g. `tp_btf/sock_send_length` or `cgroup/sock_create`.
    pub hook: String,
    /// The kernel's program id, for `bpftool prog show id N`.
    pub prog_id: Option<u32>,
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
    pub version: String,
    /// True when every program is attached.
    pub attached: bool,
    pub programs: Vec<ProgramStatus>,
    /// Which hooks count payload bytes, and why.
    #[serde(default)]
    pub payload_hooks: PayloadHooks,
    /// What the running kernel cannot do that a newer one can (empty on current kernels).
    #[serde(default)]
    pub kernel_limits: Vec<String>,
    /// The cgroup v2 directory whose subtree is accounted.
    pub cgroup_root: String,
    pub bpffs_dir: String,
    pub state_dir: String,
    /// Inet sockets with an entry in the kernel right now.
    pub live_sockets: u64,
    /// The kernel's failure and event counters by name (`sockets_map_full`, ...).
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Err(ReplyError::Refused("bad label name".to_owned()))
        );
        assert!(matches!(
            decode_reply::<GetReply>(b"{}"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            decode_reply::<GetReply>(b"garbage"),
            Err(ReplyError::Malformed(_))
        ));
    }
}
