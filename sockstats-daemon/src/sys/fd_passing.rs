//! Receiving bytes together with the fds a client passes (`SCM_RIGHTS`).
use std::{
    io::{self, IoSliceMut},
    os::fd::{AsRawFd, BorrowedFd, FromRawFd as _, OwnedFd},
};

use nix::{
    cmsg_space,
    sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr},
};

/// What one `recvmsg` delivered.
#[derive(Debug)]
pub struct Received {
    /// Bytes read into the buffer; 0 means the peer closed the connection.
    pub len: usize,
    /// The fds that came with them, owned (closed on drop, close-on-exec).
    pub fds: Vec<OwnedFd>,
    /// The client sent more fds than fit: the extra ones were discarded by the kernel.
    pub fds_truncated: bool,
}

/// Most fds one `SCM_RIGHTS` message can carry (`SCM_MAX_FD`, include/net/scm.h). Room for this
/// many means the kernel never truncates: every fd it installs in our table reaches an
/// `OwnedFd` and is closed, however many a client sends.
const SCM_MAX_FD: usize = 253;

/// One non-blocking `recvmsg` on `socket` into `buf`.
pub fn recv_with_fds(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    let mut control = cmsg_space!([std::os::fd::RawFd; SCM_MAX_FD]);
    let mut iov = [IoSliceMut::new(buf)];
    let message = recvmsg::<UnixAddr>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for cmsg in message.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw_fds) = cmsg {
            for raw in raw_fds {
                // SAFETY: the kernel just installed `raw` in our fd table for us; nothing else
                // owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    Ok(Received {
        len: message.bytes,
        fds,
        fds_truncated: message.flags.contains(MsgFlags::MSG_CTRUNC),
    })
}
