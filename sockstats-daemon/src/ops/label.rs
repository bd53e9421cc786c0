//! `label`: puts the passed sockets under a label, registering the name if it is new.
use std::os::fd::OwnedFd;

use sockstats_common::{label_name::UNLABELED_NAME, protocol::LabelReply};

use super::{
    sockets::{label_passed_sockets, socket_info_of},
    Peer, Refusal,
};
use crate::daemon::state::Daemon;

/// Labels every socket of `fds` `label` for `peer` (a new name counts against its uid's
/// quota), or none of them. `unlabeled` takes the label off.
pub fn label(
    daemon: &Daemon,
    peer: Peer,
    label: &str,
    fds: &[OwnedFd],
) -> Result<LabelReply, Refusal> {
    let name = (label != UNLABELED_NAME).then_some(label);
    let (sockets, label_id) = label_passed_sockets(daemon, fds, "label", name, peer.uid)?;
    log::debug!(
        "labeled {} socket(s) {label:?} (id {label_id})",
        sockets.len()
    );
    Ok(LabelReply {
        label: label.to_owned(),
        label_id,
        sockets: sockets.iter().map(socket_info_of).collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd as _;

    use sockstats_common::protocol::ErrorCode;

    use super::*;
    use crate::ops::testing::{fds_of, peer, Fixture};

    #[test]
    fn labels_sockets_under_a_new_label_and_reuses_its_id() {
        let test = Fixture::new();
        let (tcp, udp) = (
            test.tcp_socket(),
            std::net::UdpSocket::bind("[::1]:0").unwrap(),
        );
        let reply = label(
            &test.daemon,
            peer(1000),
            "web",
            &fds_of(&[tcp.as_fd(), udp.as_fd()]),
        )
        .unwrap();
        assert_eq!(reply.label, "web");
        assert_eq!(reply.label_id, 1);
        let families: Vec<_> = reply
            .sockets
            .iter()
            .map(|s| (s.family.as_str(), s.protocol.as_str()))
            .collect();
        assert_eq!(families, [("ipv4", "tcp"), ("ipv6", "udp")]);
        let cookies: Vec<u64> = reply.sockets.iter().map(|s| s.cookie).collect();
        test.with_kernel(|kernel| {
            assert_eq!(kernel.relabels, [(cookies[0], 1), (cookies[1], 1)]);
        });
        // The same name again: the same id; another name: the next one.
        assert_eq!(
            label(&test.daemon, peer(0), "web", &fds_of(&[udp.as_fd()]))
                .unwrap()
                .label_id,
            1
        );
        assert_eq!(
            label(&test.daemon, peer(0), "db", &fds_of(&[udp.as_fd()]))
                .unwrap()
                .label_id,
            2
        );
        test.with_kernel(|kernel| assert_eq!(kernel.sockets[&cookies[1]].label, 2));
        // `unlabeled` takes the label off without registering anything.
        let off = label(&test.daemon, peer(0), "unlabeled", &fds_of(&[udp.as_fd()])).unwrap();
        assert_eq!(off.label_id, 0);
        test.with_kernel(|kernel| assert_eq!(kernel.sockets[&cookies[1]].label, 0));
        assert_eq!(test.daemon.with_core(|core| core.labels.len()), 2);
    }

    #[test]
    fn refuses_missing_fds_non_sockets_bad_names_and_the_kernels_refusal() {
        let test = Fixture::new();
        let none = label(&test.daemon, peer(0), "web", &[]).unwrap_err();
        assert_eq!(none.code(), ErrorCode::NotASocket);
        assert!(
            none.to_string().starts_with("label needs the socket fds"),
            "{none}"
        );

        let file = std::fs::File::open("/dev/null").unwrap();
        let tcp = test.tcp_socket();
        let not_socket = label(
            &test.daemon,
            peer(0),
            "web",
            &fds_of(&[tcp.as_fd(), file.as_fd()]),
        )
        .unwrap_err();
        assert_eq!(not_socket.code(), ErrorCode::NotASocket);
        assert!(
            not_socket
                .to_string()
                .starts_with("fd 2 of 2 passed: the passed fd is not a socket"),
            "{not_socket}"
        );
        let unix = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let wrong_family =
            label(&test.daemon, peer(0), "web", &fds_of(&[unix.as_fd()])).unwrap_err();
        assert!(
            wrong_family.to_string().contains("Unix-domain (AF_UNIX)"),
            "{wrong_family}"
        );

        let bad = label(&test.daemon, peer(0), "a b", &fds_of(&[tcp.as_fd()])).unwrap_err();
        assert_eq!(bad.code(), ErrorCode::BadLabel);
        test.with_kernel(|kernel| assert!(kernel.relabels.is_empty()));

        let cookie = crate::sys::socket_info::inspect(tcp.as_fd())
            .unwrap()
            .cookie;
        test.with_kernel(|kernel| {
            kernel.refuse_relabel.insert(cookie);
        });
        let refused = label(&test.daemon, peer(0), "web", &fds_of(&[tcp.as_fd()])).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::Failed);
        assert!(
            refused
                .to_string()
                .starts_with("cannot label the sockets: no sockstats program took the relabel"),
            "{refused}"
        );
        assert!(
            refused.to_string().ends_with("; none was labeled"),
            "{refused}"
        );
    }

    #[test]
    fn a_uid_past_its_label_quota_is_refused_but_may_use_existing_labels() {
        let test = Fixture::new();
        test.daemon.with_core(|core| core.labels.set_uid_quota(1));
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fds = || fds_of(&[udp.as_fd()]);
        label(&test.daemon, peer(1000), "mine", &fds()).unwrap();
        let over = label(&test.daemon, peer(1000), "second", &fds()).unwrap_err();
        assert_eq!(over.code(), ErrorCode::LimitReached);
        assert_eq!(over.to_string(), "uid 1000 has made 1 labels, its limit (sockstatsd --max-labels-per-uid); reuse a label it has");
        assert_eq!(
            label(&test.daemon, peer(1000), "mine", &fds())
                .unwrap()
                .label_id,
            1
        );
        assert_eq!(
            label(&test.daemon, peer(0), "second", &fds())
                .unwrap()
                .label_id,
            2
        );
    }
}
