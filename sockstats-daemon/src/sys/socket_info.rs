//! What a passed fd is: its socket family, protocol and cookie (`getsockopt`).
use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

/// `SO_COOKIE` (include/uapi/asm-generic/socket.h), kernel 4.12+.
const SO_COOKIE: libc::c_int = 57;

/// An `AF_INET` or `AF_INET6` socket a client handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InetSocket {
    pub cookie: u64,
    pub ipv6: bool,
    /// IP protocol number (6 = TCP, 17 = UDP).
    pub protocol: i32,
}

impl InetSocket {
    #[must_use]
    pub fn family_name(&self) -> &'static str {
        if self.ipv6 {
            "ipv6"
        } else {
            "ipv4"
        }
    }

    #[must_use]
    pub fn protocol_name(&self) -> String {
        match self.protocol {
            libc::IPPROTO_TCP => "tcp".to_owned(),
            libc::IPPROTO_UDP => "udp".to_owned(),
            libc::IPPROTO_UDPLITE => "udplite".to_owned(),
            libc::IPPROTO_MPTCP => "mptcp".to_owned(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotInetSocket {
    #[error("the passed fd is not a socket (a file, pipe or device?); pass a TCP or UDP socket")]
    NotASocket,
    #[error("the passed fd is a {family} socket; only AF_INET and AF_INET6 sockets (TCP, UDP, ...) carry network traffic")]
    WrongFamily { family: &'static str },
    #[error("cannot inspect the passed fd: {0}")]
    Io(#[from] io::Error),
}

/// `getsockopt(SOL_SOCKET, option)` into a `T`.
pub(crate) fn getsockopt<T: Default>(fd: BorrowedFd<'_>, option: libc::c_int) -> io::Result<T> {
    let mut value = T::default();
    let mut len = libc::socklen_t::try_from(size_of::<T>()).expect("small");
    // SAFETY: `value` is a valid, writable `T` of `len` bytes; the kernel writes at most `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw mut value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn family_name(domain: i32) -> &'static str {
    match domain {
        libc::AF_UNIX => "Unix-domain (AF_UNIX)",
        libc::AF_NETLINK => "netlink (AF_NETLINK)",
        libc::AF_PACKET => "packet (AF_PACKET)",
        libc::AF_VSOCK => "vsock (AF_VSOCK)",
        _ => "non-inet",
    }
}

/// Reads family, protocol and cookie of `fd`, refusing anything but an inet socket.
pub fn inspect(fd: BorrowedFd<'_>) -> Result<InetSocket, NotInetSocket> {
    let domain: libc::c_int = match getsockopt(fd, libc::SO_DOMAIN) {
        Ok(domain) => domain,
        Err(error) if error.raw_os_error() == Some(libc::ENOTSOCK) => {
            return Err(NotInetSocket::NotASocket)
        }
        Err(error) => return Err(error.into()),
    };
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(NotInetSocket::WrongFamily {
            family: family_name(domain),
        });
    }
    let protocol: libc::c_int = getsockopt(fd, libc::SO_PROTOCOL)?;
    let cookie: u64 = getsockopt(fd, SO_COOKIE)?;
    Ok(InetSocket {
        cookie,
        ipv6: domain == libc::AF_INET6,
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use std::{
        fs::File,
        net::{TcpListener, UdpSocket},
        os::{fd::AsFd, unix::net::UnixStream},
    };

    use super::*;

    #[test]
    fn inet_sockets_have_distinct_cookies() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = TcpListener::bind("[::1]:0").unwrap();
        let udp_info = inspect(udp.as_fd()).unwrap();
        let tcp_info = inspect(tcp.as_fd()).unwrap();
        assert_eq!(
            (udp_info.family_name(), udp_info.protocol_name().as_str()),
            ("ipv4", "udp")
        );
        assert_eq!(
            (tcp_info.family_name(), tcp_info.protocol_name().as_str()),
            ("ipv6", "tcp")
        );
        assert_ne!(udp_info.cookie, 0);
        assert_ne!(udp_info.cookie, tcp_info.cookie);
        assert_eq!(inspect(udp.as_fd()).unwrap().cookie, udp_info.cookie);
    }

    #[test]
    fn refuses_files_and_unix_sockets() {
        let file = File::open("/proc/self/status").unwrap();
        assert!(matches!(
            inspect(file.as_fd()),
            Err(NotInetSocket::NotASocket)
        ));
        let (unix, _peer) = UnixStream::pair().unwrap();
        let error = inspect(unix.as_fd()).unwrap_err();
        assert!(matches!(error, NotInetSocket::WrongFamily { .. }));
        assert!(error.to_string().contains("Unix-domain"), "{error}");
    }
}
