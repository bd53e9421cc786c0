//! rtnetlink (netlink-packet-route) in the calling thread's network namespace: interface names
//! and the default route. Blocking request/dump calls; entering another namespace is
//! [`crate::sys::netns`]'s job.
use std::io;

use netlink_packet_route::{
    link::{LinkAttribute, LinkMessage},
    route::{RouteAttribute, RouteHeader, RouteMessage, RouteType},
    AddressFamily, RouteNetlinkMessage,
};
use netlink_sys::protocols::NETLINK_ROUTE;

use super::netlink_io;

/// One network interface of a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
}

/// Sends one rtnetlink dump request and collects the replies.
fn dump(request: &RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
    netlink_io::dump(NETLINK_ROUTE, request)
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
