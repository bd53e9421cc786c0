//! The protocol's operations, one file each, named for the op. Each takes its typed input and
//! returns `Result<_, Refusal>`; [`handle`] dispatches a decoded [`Request`] to its op and
//! [`reply_line`] is the one place a result becomes a reply line.
//!
//! Ops reach the kernel only through [`crate::kernel::Kernel`] (inside
//! [`Daemon::with_core`]), so their logic is tested with the in-memory fake. They are
//! blocking (map reads, rtnetlink): the server runs them on the blocking pool.
use std::os::fd::OwnedFd;

use serde::Serialize;
use sockstats_common::protocol::{
    encode_ok, encode_refusal, DebugReply, GetByReply, GetDestinationsReply, GetInterfacesReply,
    GetPeersReply, GetReply, HistoryResetReply, LabelReply, LabelsReply, QuotasReply, Request,
    RulesReply, StatusReply, UnlabelReply, ValidationReply,
};

use crate::daemon::state::Daemon;

pub mod add_rule;
pub mod debug_info;
pub mod get;
pub mod get_by;
pub mod get_destinations;
pub mod get_interfaces;
pub mod get_peers;
pub mod get_validation;
pub mod history;
pub mod history_reply;
pub mod label;
pub mod labels;
pub mod naming;
pub mod quotas;
pub mod refusal;
pub mod remove_rule;
pub mod rules;
pub mod sockets;
pub mod status;
pub mod unlabel;

#[cfg(test)]
pub(crate) mod testing;

pub use refusal::{Peer, Refusal};

/// What an op answers, one variant per reply shape.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Label(LabelReply),
    Unlabel(UnlabelReply),
    Get(GetReply),
    GetInterfaces(GetInterfacesReply),
    GetValidation(ValidationReply),
    GetDestinations(GetDestinationsReply),
    GetPeers(GetPeersReply),
    GetBy(GetByReply),
    Labels(LabelsReply),
    Status(Box<StatusReply>),
    DebugInfo(Box<DebugReply>),
    Rules(RulesReply),
    History(history_reply::HistoryLine),
    HistoryReset(HistoryResetReply),
    Quotas(QuotasReply),
}

/// Handles `request` from `peer` with the `fds` that came with it, and closes them.
pub fn handle(
    daemon: &Daemon,
    peer: Peer,
    request: Request,
    fds: Vec<OwnedFd>,
) -> Result<Reply, Refusal> {
    let result = match request {
        Request::Label { label } => label::label(daemon, peer, &label, &fds).map(Reply::Label),
        Request::Unlabel => unlabel::unlabel(daemon, &fds).map(Reply::Unlabel),
        other if !fds.is_empty() => Err(Refusal::FdsNotTaken {
            op: other.op(),
            passed: fds.len(),
        }),
        Request::Get => get::get(daemon).map(Reply::Get),
        Request::GetInterfaces => get_interfaces::get_interfaces(daemon).map(Reply::GetInterfaces),
        Request::GetValidation => get_validation::get_validation(daemon).map(Reply::GetValidation),
        Request::GetDestinations { interfaces, cost } => {
            get_destinations::get_destinations(daemon, interfaces, cost).map(Reply::GetDestinations)
        }
        Request::GetPeers { label, top } => {
            get_peers::get_peers(daemon, label.as_deref(), top).map(Reply::GetPeers)
        }
        Request::GetBy { by, destinations } => {
            get_by::get_by(daemon, by, destinations).map(Reply::GetBy)
        }
        Request::Labels => Ok(Reply::Labels(labels::labels(daemon))),
        Request::Status => Ok(Reply::Status(Box::new(status::status(daemon)))),
        Request::DebugInfo => Ok(Reply::DebugInfo(Box::new(debug_info::debug_info(daemon)))),
        Request::AddRule {
            selector,
            label,
            temporary,
        } => add_rule::add_rule(
            daemon,
            peer,
            &add_rule::AddRule {
                selector: &selector,
                label: &label,
                temporary,
            },
        )
        .map(Reply::Rules),
        Request::RemoveRule { selector } => {
            remove_rule::remove_rule(daemon, peer, &selector).map(Reply::Rules)
        }
        Request::Rules => Ok(Reply::Rules(rules::rules(daemon))),
        Request::History { query } => history::history(daemon, &query).map(Reply::History),
        Request::HistoryReset { label } => {
            history::history_reset(daemon, peer, label.as_deref()).map(Reply::HistoryReset)
        }
        Request::Quotas => quotas::quotas(daemon).map(Reply::Quotas),
    };
    drop(fds);
    result
}

/// The reply line (newline included) for an op's result.
#[must_use]
pub fn reply_line(result: Result<Reply, Refusal>) -> String {
    match result {
        // Written by hand: it can be a million entries (ops::history_reply).
        Ok(Reply::History(line)) => line.into_reply_line(),
        Ok(reply) => encode_ok(&reply),
        Err(refusal) => encode_refusal(refusal.code(), &refusal.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd as _;

    use sockstats_common::protocol::{decode_reply, encode_ok, ErrorCode, GetReply, ReplyError};

    use super::*;
    use crate::ops::testing::{fds_of, peer, Fixture};

    #[test]
    fn fds_with_an_op_that_takes_none_are_refused_and_closed() {
        let test = Fixture::new();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let refused =
            handle(&test.daemon, peer(0), Request::Get, fds_of(&[udp.as_fd()])).unwrap_err();
        let line = reply_line(Err(refused));
        assert_eq!(
            line,
            "{\"code\":\"bad_request\",\"error\":\"op \\\"get\\\" does not take fds; the 1 passed fd(s) were closed\",\"ok\":false}\n"
        );
    }

    #[test]
    fn replies_encode_as_their_bodies_with_ok() {
        let test = Fixture::new();
        let result = handle(&test.daemon, peer(0), Request::Get, Vec::new());
        let Ok(Reply::Get(body)) = &result else {
            panic!("get answered {result:?}");
        };
        let body = body.clone();
        let line = reply_line(result);
        assert_eq!(line, encode_ok(&body));
        let decoded: GetReply = decode_reply(line.trim_end().as_bytes()).unwrap();
        assert_eq!(decoded, body);
        // A refusal reaches the client with its code.
        let refused = handle(&test.daemon, peer(5), Request::Unlabel, Vec::new());
        let error =
            decode_reply::<GetReply>(reply_line(refused).trim_end().as_bytes()).unwrap_err();
        assert!(
            matches!(
                error,
                ReplyError::Refused {
                    code: ErrorCode::NotASocket,
                    ..
                }
            ),
            "{error}"
        );
    }
}
