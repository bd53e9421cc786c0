//! What `label` and `unlabel` share: inspecting the passed fds and putting every socket under
//! one label, all or nothing.
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

use sockstats_common::protocol::SocketInfo;

use super::Refusal;
use crate::{
    daemon::state::Daemon,
    kernel::{Kernel, LabelError},
    sys::socket_info::{self, InetSocket},
};

/// Inspects every passed fd; all must be inet sockets, or nothing is done.
pub fn inspect_all(fds: &[OwnedFd], op: &'static str) -> Result<Vec<InetSocket>, Refusal> {
    if fds.is_empty() {
        return Err(Refusal::NoFds { op });
    }
    fds.iter()
        .enumerate()
        .map(|(index, fd)| {
            socket_info::inspect(fd.as_fd()).map_err(|source| Refusal::NotInetSocket {
                position: index + 1,
                passed: fds.len(),
                source,
            })
        })
        .collect()
}

/// How a socket is shown in replies.
#[must_use]
pub fn socket_info_of(socket: &InetSocket) -> SocketInfo {
    SocketInfo {
        cookie: socket.cookie,
        family: socket.family_name().to_owned(),
        protocol: socket.protocol_name(),
    }
}

/// Puts every socket (fd, cookie) under `label_id`, or, if one fails, puts the earlier ones
/// back under the labels they had and returns the error.
pub fn relabel_all_or_nothing(
    kernel: &mut dyn Kernel,
    sockets: &[(BorrowedFd<'_>, u64)],
    label_id: u32,
) -> Result<(), LabelError> {
    let mut done: Vec<(BorrowedFd<'_>, u64, u32)> = Vec::with_capacity(sockets.len());
    for (fd, cookie) in sockets {
        let previous = kernel.label_of(*fd, *cookie)?;
        if let Err(error) = kernel.relabel(*fd, *cookie, label_id) {
            for (fd, cookie, previous) in done.into_iter().rev() {
                let _ = kernel.relabel(fd, cookie, previous);
            }
            return Err(error);
        }
        done.push((*fd, *cookie, previous));
    }
    Ok(())
}

/// The (fd, cookie) pairs of the inspected `sockets`. The passed fds keep the sockets open
/// while the kernel relabels them.
#[must_use]
pub fn targets<'a>(fds: &'a [OwnedFd], sockets: &[InetSocket]) -> Vec<(BorrowedFd<'a>, u64)> {
    fds.iter()
        .zip(sockets)
        .map(|(fd, socket)| (fd.as_fd(), socket.cookie))
        .collect()
}

/// Inspects `fds`, then, in one hold of the core lock, registers `label` (`None`:
/// `unlabeled`) for `uid` and puts every socket under it. Returns the sockets and the label id.
pub fn label_passed_sockets(
    daemon: &Daemon,
    fds: &[OwnedFd],
    op: &'static str,
    label: Option<&str>,
    uid: u32,
) -> Result<(Vec<InetSocket>, u32), Refusal> {
    let sockets = inspect_all(fds, op)?;
    let targets = targets(fds, &sockets);
    let label_id = daemon.with_core(|core| {
        let label_id = match label {
            Some(name) => core.labels.get_or_create_for(name, uid)?,
            None => sockstats_common::UNLABELED_ID,
        };
        relabel_all_or_nothing(core.kernel.as_mut(), &targets, label_id)
            .map_err(Refusal::Relabel)?;
        Ok::<_, Refusal>(label_id)
    })?;
    Ok((sockets, label_id))
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;
    use crate::{kernel::fake::FakeKernel, sys::relabel::RelabelError};

    #[test]
    fn a_failed_relabel_puts_the_earlier_sockets_back() {
        let sockets: Vec<UdpSocket> = (0..3)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut kernel = FakeKernel::new();
        kernel.add_socket(1, 4, sockstats_common::Totals::new(10, 0));
        kernel.add_socket(2, 5, sockstats_common::Totals::default());
        kernel.refuse_relabel.insert(3);
        let targets: Vec<(BorrowedFd<'_>, u64)> = sockets
            .iter()
            .zip(1..)
            .map(|(s, c)| (s.as_fd(), c))
            .collect();
        let error = relabel_all_or_nothing(&mut kernel, &targets, 9).unwrap_err();
        assert!(matches!(error, LabelError::Relabel(RelabelError::NotTaken)));
        assert_eq!(kernel.relabels, [(1, 9), (2, 9), (2, 5), (1, 4)]);
        assert_eq!(kernel.sockets[&1].label, 4);
        assert_eq!(kernel.sockets[&2].label, 5);
        relabel_all_or_nothing(&mut kernel, &targets[..2], 9).unwrap();
        assert_eq!((kernel.sockets[&1].label, kernel.sockets[&2].label), (9, 9));
    }
}
