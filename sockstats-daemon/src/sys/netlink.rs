//! rtnetlink (netlink-packet-route) in the calling thread's network namespace: interface names
//! and the default route. Blocking request/dump calls; entering another namespace is
//! [`crate::sys::netns`]'s job.
use std::io;

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage},
    route::{RouteAttribute, RouteHeader, RouteMessage, RouteType},
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// One network interface of a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
}

/// Sends one dump request and collects the replies, retrying dumps the kernel interrupted.
fn dump(request: &RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut attempt = 0;
    loop {
        match dump_once(request.clone()) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted && attempt < 5 => attempt += 1,
            result => return result,
        }
    }
}

fn dump_once(request: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut message = NetlinkMessage::from(request);
    message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.header.sequence_number = 1;
    message.finalize();
    let mut buffer = vec![0; message.buffer_len()];
    message.serialize(&mut buffer);
    socket.send(&buffer, 0)?;

    // A reply never comes from a wedged kernel, but bound the wait anyway: the caller holds a lock.
    let timeout = libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    };
    // SAFETY: `timeout` is a valid timeval and the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            libc::socklen_t::try_from(size_of::<libc::timeval>()).expect("small"),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }

    let mut replies = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < datagram.len() {
            let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[offset..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            let length = reply.header.length as usize;
            if reply.header.flags & NLM_F_DUMP_INTR != 0 {
                // The table changed during the dump: the caller retries.
                return Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "rtnetlink dump interrupted",
                ));
            }
            match reply.payload {
                NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                NetlinkPayload::Done(_) => return Ok(replies),
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
    }
}

/// Every interface of the current network namespace.
pub fn links() -> io::Result<Vec<Link>> {
    let replies = dump(&RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewLink(link) => {
                let name = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(name) => Some(name.clone()),
                    _ => None,
                })?;
                Some(Link {
                    index: link.header.index,
                    name,
                })
            }
            _ => None,
        })
        .collect())
}

/// The output interface of the default route of `family` with the lowest metric.
fn default_route(family: AddressFamily) -> io::Result<Option<u32>> {
    let mut request = RouteMessage::default();
    request.header.address_family = family;
    let replies = dump(&RouteNetlinkMessage::GetRoute(request))?;
    Ok(replies
        .into_iter()
        .filter_map(|reply| match reply {
            RouteNetlinkMessage::NewRoute(route) => default_route_of(&route),
            _ => None,
        })
        .min()
        .map(|(_, oif)| oif))
}

/// `(metric, output interface)` if `route` is a main-table default route.
fn default_route_of(route: &RouteMessage) -> Option<(u32, u32)> {
    let table = route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table));
    if route.header.destination_prefix_length != 0
        || route.header.kind != RouteType::Unicast
        || table != u32::from(RouteHeader::RT_TABLE_MAIN)
    {
        return None;
    }
    let mut metric = 0;
    let mut oif = None;
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Priority(priority) => metric = *priority,
            RouteAttribute::Oif(index) => oif = Some(*index),
            // A multipath route: its first next hop stands for it.
            RouteAttribute::MultiPath(hops) if oif.is_none() => {
                oif = hops.first().map(|hop| hop.interface_index);
            }
            _ => {}
        }
    }
    oif.map(|oif| (metric, oif))
}

/// The interface index of the default route: IPv4's if there is one, else IPv6's.
pub fn default_route_interface() -> io::Result<Option<u32>> {
    match default_route(AddressFamily::Inet)? {
        Some(index) => Ok(Some(index)),
        None => default_route(AddressFamily::Inet6),
    }
}
