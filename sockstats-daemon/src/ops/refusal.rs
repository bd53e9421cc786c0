//! Why an operation was refused: one variant per failure, each mapped to the error code of
//! docs/protocol.md (`code`) with the message people read (`Display`).
use std::path::PathBuf;

use sockstats_common::{
    protocol::{DecodeError, ErrorCode},
    MAX_CGROUP_DEPTH,
};

use crate::{
    history::HistoryError,
    kernel::{AccessError, LabelError},
    labels::RegistryError,
    rules::RuleError,
    sys::socket_info::NotInetSocket,
};

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The line is not a request (the server refuses it before any op runs).
    #[error(transparent)]
    Undecodable(#[from] DecodeError),
    /// The op panicked (a bug); the connection stays usable.
    #[error("internal error: {reason}")]
    Panicked { reason: String },
    #[error("{op} needs the socket fds passed with the request (SCM_RIGHTS in the same sendmsg); none arrived")]
    NoFds { op: &'static str },
    #[error("op {op:?} does not take fds; the {passed} passed fd(s) were closed")]
    FdsNotTaken { op: &'static str, passed: usize },
    #[error("fd {position} of {passed} passed: {source}")]
    NotInetSocket {
        /// 1-based.
        position: usize,
        passed: usize,
        #[source]
        source: NotInetSocket,
    },
    #[error("cannot label the sockets: {0}; none was labeled")]
    Relabel(#[source] LabelError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("only root may {action}; this client runs as uid {uid}")]
    NotRoot { action: &'static str, uid: u32 },
    #[error("cgroup {path} does not exist ({} is not a directory); for a cgroup that comes and goes, put the rule in the rules file", directory.display())]
    NoSuchCgroup { path: String, directory: PathBuf },
    #[error("no unit {name} is running here (no cgroup holds it; a user's own units count as their user@UID.service); start it first, or put `unit {name} <label>` in the rules file (/etc/sockstats/rules.conf, or --rules-file), which labels it whenever it runs")]
    NoSuchUnit { name: String },
    #[error("no container {name} is running here (running: {}); start it first, or put `container {name} <label>` in the rules file (/etc/sockstats/rules.conf, or --rules-file), which labels it whenever it runs", running_list(running))]
    NoSuchContainer { name: String, running: Vec<String> },
    #[error("cgroup {path} is outside the subtree this daemon accounts ({}); its sockets would never be counted", root.display())]
    CgroupOutsideRoot { path: String, root: PathBuf },
    #[error(
        "cgroup {path} is deeper than the {MAX_CGROUP_DEPTH} levels the kernel programs look at"
    )]
    CgroupTooDeep { path: String },
    #[error("cannot register a rule's label: {0}")]
    RuleLabel(#[source] RegistryError),
    #[error("cannot write the rules to the kernel: {0}")]
    WriteRules(#[source] AccessError),
    #[error("cannot read the kernel maps: {0}")]
    ReadAccounts(#[source] AccessError),
    #[error("cannot list the live sockets: {0}")]
    ListSockets(#[source] AccessError),
    #[error("cannot dump TCP sockets over sock_diag: {0}")]
    DumpTcp(#[source] AccessError),
    #[error("cannot read the closed sockets' counters: {0}")]
    ReadClosedTcp(#[source] AccessError),
    #[error("cannot read the kernel's counters: {0}")]
    ReadCounters(#[source] AccessError),
    #[error("this daemon keeps no usage history")]
    NoHistory,
    #[error("the usage history cannot be read: {0}")]
    History(#[source] HistoryError),
    #[error("history by {by} cannot be filtered by label or interface: the kernel keeps owners' bytes without them; leave out --label, --interface and --metered, or use --by label or --by interface")]
    HistoryOwnerFilter { by: &'static str },
    #[error("no prices to estimate a cost with: the daemon's config file has no `price` line; add one per destination and direction you pay for (`price internet tx 0.09`, per GiB) to /etc/sockstats/sockstats.conf (or the file of `sockstatsd --config`) and restart the daemon")]
    NoPrices,
    #[error("no destination {name:?}: the destinations are {known}, :unknown and (not recorded) (history from before destinations were recorded); `network` lines of the config file name more")]
    NoSuchDestination { name: String, known: String },
    #[error("--top {top} is not a number of peers from 1 to {max}")]
    BadTop { top: u32, max: u32 },
    #[error("no label {label:?} has traffic or is registered; `sockstats labels` lists them")]
    NoSuchLabel { label: String },
}

impl Refusal {
    /// The documented error code (docs/protocol.md, "Error codes").
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Undecodable(_)
            | Refusal::FdsNotTaken { .. }
            | Refusal::CgroupOutsideRoot { .. }
            | Refusal::CgroupTooDeep { .. }
            | Refusal::HistoryOwnerFilter { .. }
            | Refusal::NoPrices
            | Refusal::BadTop { .. } => ErrorCode::BadRequest,
            Refusal::NoFds { .. } | Refusal::NotInetSocket { .. } => ErrorCode::NotASocket,
            Refusal::NotRoot { .. } => ErrorCode::NotPermitted,
            Refusal::NoSuchCgroup { .. }
            | Refusal::NoSuchUnit { .. }
            | Refusal::NoSuchContainer { .. }
            | Refusal::NoSuchLabel { .. }
            | Refusal::NoSuchDestination { .. } => ErrorCode::NotFound,
            Refusal::Registry(error) | Refusal::RuleLabel(error) => registry_code(error),
            Refusal::Rule(error) => rule_code(error),
            Refusal::Panicked { .. }
            | Refusal::Relabel(_)
            | Refusal::WriteRules(_)
            | Refusal::ReadAccounts(_)
            | Refusal::ListSockets(_)
            | Refusal::DumpTcp(_)
            | Refusal::ReadClosedTcp(_)
            | Refusal::ReadCounters(_)
            | Refusal::NoHistory
            | Refusal::History(_) => ErrorCode::Failed,
        }
    }
}

fn registry_code(error: &RegistryError) -> ErrorCode {
    match error {
        RegistryError::BadName(_) => ErrorCode::BadLabel,
        RegistryError::Full { .. } | RegistryError::UidQuota { .. } => ErrorCode::LimitReached,
        RegistryError::Read { .. }
        | RegistryError::Damaged { .. }
        | RegistryError::Write { .. } => ErrorCode::Failed,
    }
}

/// The running containers' names for a message, a few at most.
fn running_list(running: &[String]) -> String {
    const SHOWN: usize = 8;
    match running.len() {
        0 => "none".to_owned(),
        n if n <= SHOWN => running.join(", "),
        n => format!("{}, and {} more", running[..SHOWN].join(", "), n - SHOWN),
    }
}

fn rule_code(error: &RuleError) -> ErrorCode {
    match error {
        RuleError::Conflict { .. } => ErrorCode::Conflict,
        RuleError::NotFound(_) | RuleError::NoSuchUser(_) => ErrorCode::NotFound,
        RuleError::FromConfig(_) => ErrorCode::NotPermitted,
        RuleError::BadLabel(_) => ErrorCode::BadLabel,
        RuleError::TooMany => ErrorCode::LimitReached,
        RuleError::BadCgroup { .. }
        | RuleError::BadSelector
        | RuleError::TemporaryUid
        | RuleError::BadUnit(_)
        | RuleError::BadContainer(_) => ErrorCode::BadRequest,
        RuleError::Config { .. }
        | RuleError::ReadConfig { .. }
        | RuleError::ReadState { .. }
        | RuleError::WriteState { .. } => ErrorCode::Failed,
    }
}

/// Who sent a request: its uid (`SO_PEERCRED`) and its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    /// Unique per connection for the daemon's lifetime (temporary rules belong to one).
    pub connection: u64,
}

impl Peer {
    /// Refuses unless the peer is root.
    pub fn require_root(&self, action: &'static str) -> Result<(), Refusal> {
        if self.uid == 0 {
            Ok(())
        } else {
            Err(Refusal::NotRoot {
                action,
                uid: self.uid,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_documented_code() {
        let cases = [
            (Refusal::NoFds { op: "label" }, ErrorCode::NotASocket),
            (
                Refusal::FdsNotTaken {
                    op: "get",
                    passed: 1,
                },
                ErrorCode::BadRequest,
            ),
            (
                Refusal::NotRoot {
                    action: "add rules",
                    uid: 7,
                },
                ErrorCode::NotPermitted,
            ),
            (Refusal::Rule(RuleError::TooMany), ErrorCode::LimitReached),
            (
                Refusal::Registry(RegistryError::UidQuota { uid: 1, max: 2 }),
                ErrorCode::LimitReached,
            ),
            (
                Refusal::ReadAccounts(AccessError::Io(std::io::Error::other("x"))),
                ErrorCode::Failed,
            ),
        ];
        for (refusal, code) in cases {
            assert_eq!(refusal.code(), code, "{refusal}");
        }
        assert_eq!(
            Refusal::FdsNotTaken {
                op: "get",
                passed: 1
            }
            .to_string(),
            "op \"get\" does not take fds; the 1 passed fd(s) were closed"
        );
    }
}
