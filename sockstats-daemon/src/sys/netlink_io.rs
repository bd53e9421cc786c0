//! What rtnetlink and `sock_diag` share: a socket option setter, dump requests (with a receive
//! timeout and retries of interrupted dumps) and the parsing of reply datagrams.
use std::{io, os::fd::AsRawFd};

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_sys::{Socket, SocketAddr};

/// How long a dump waits for the kernel's next reply: callers may hold a lock meanwhile.
const REPLY_TIMEOUT_SECONDS: libc::time_t = 5;
/// Dumps retried when the kernel says the table changed while it was being read.
const INTERRUPTED_RETRIES: u32 = 5;

/// `setsockopt(SOL_SOCKET, option, value)`.
pub fn set_socket_option<T>(socket: &Socket, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a valid `T` and the length passed is its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            std::ptr::from_ref(value).cast(),
            libc::socklen_t::try_from(size_of::<T>()).expect("small"),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Parses the messages of one reply datagram into `out`. `Ok(true)` once the dump is done.
/// An interrupted dump is `ErrorKind::Interrupted`.
pub fn parse_datagram<T: NetlinkDeserializable>(
    datagram: &[u8],
    out: &mut Vec<T>,
) -> io::Result<bool> {
    let mut offset = 0;
    while offset < datagram.len() {
        let message = NetlinkMessage::<T>::deserialize(&datagram[offset..])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        if message.header.flags & NLM_F_DUMP_INTR != 0 {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "netlink dump interrupted",
            ));
        }
        let length = message.header.length as usize;
        match message.payload {
            NetlinkPayload::InnerMessage(inner) => out.push(inner),
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(error) => {
                return Err(error.code.map_or_else(
                    || io::Error::other("netlink error without a code"),
                    |code| io::Error::from_raw_os_error(-code.get()),
                ))
            }
            _ => {}
        }
        if length == 0 {
            break;
        }
        offset += (length + 3) & !3; // NLMSG_ALIGN
    }
    Ok(false)
}

/// Sends `request` as a dump on a new `protocol` socket and collects the replies, retrying
/// dumps the kernel interrupted.
pub fn dump<T>(protocol: isize, request: &T) -> io::Result<Vec<T>>
where
    T: NetlinkSerializable + NetlinkDeserializable + Clone,
    NetlinkPayload<T>: From<T>,
{
    let mut attempt = 0;
    loop {
        match dump_once(protocol, request.clone()) {
            Err(error)
                if error.kind() == io::ErrorKind::Interrupted && attempt < INTERRUPTED_RETRIES =>
            {
                attempt += 1;
            }
            result => return result,
        }
    }
}

fn dump_once<T>(protocol: isize, request: T) -> io::Result<Vec<T>>
where
    T: NetlinkSerializable + NetlinkDeserializable,
    NetlinkPayload<T>: From<T>,
{
    let mut socket = Socket::new(protocol)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let timeout = libc::timeval {
        tv_sec: REPLY_TIMEOUT_SECONDS,
        tv_usec: 0,
    };
    set_socket_option(&socket, libc::SO_RCVTIMEO, &timeout)?;
    let mut message = NetlinkMessage::from(request);
    message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.header.sequence_number = 1;
    message.finalize();
    let mut buffer = vec![0; message.buffer_len()];
    message.serialize(&mut buffer);
    socket.send(&buffer, 0)?;
    let mut replies = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        if parse_datagram(&datagram, &mut replies)? {
            return Ok(replies);
        }
    }
}
