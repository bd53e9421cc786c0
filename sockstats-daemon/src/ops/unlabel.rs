//! `unlabel`: puts the passed sockets back under `unlabeled`; their bytes move with them.
use std::os::fd::OwnedFd;

use sockstats_common::protocol::UnlabelReply;

use super::{
    sockets::{label_passed_sockets, socket_info_of},
    Refusal,
};
use crate::daemon::state::Daemon;

/// Takes the label off every socket of `fds`, or off none of them.
pub fn unlabel(daemon: &Daemon, fds: &[OwnedFd]) -> Result<UnlabelReply, Refusal> {
    let (sockets, _) = label_passed_sockets(daemon, fds, "unlabel", None, 0)?;
    Ok(UnlabelReply {
        sockets: sockets.iter().map(socket_info_of).collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd as _;

    use sockstats_common::protocol::ErrorCode;

    use super::*;
    use crate::ops::testing::{fds_of, Fixture};

    #[test]
    fn takes_labels_off_and_refuses_without_fds() {
        let test = Fixture::new();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let cookie = crate::sys::socket_info::inspect(udp.as_fd())
            .unwrap()
            .cookie;
        test.with_kernel(|kernel| {
            kernel.add_socket(cookie, 3, sockstats_common::Totals::new(5, 6));
        });
        let reply = unlabel(&test.daemon, &fds_of(&[udp.as_fd()])).unwrap();
        assert_eq!(reply.sockets.len(), 1);
        assert_eq!(reply.sockets[0].cookie, cookie);
        test.with_kernel(|kernel| assert_eq!(kernel.sockets[&cookie].label, 0));
        let refused = unlabel(&test.daemon, &[]).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::NotASocket);
        assert!(refused
            .to_string()
            .starts_with("unlabel needs the socket fds"));
    }
}
