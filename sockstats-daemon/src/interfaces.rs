//! Names for the interfaces bytes were charged to, across network namespaces, kept after an
//! interface is renamed (the new name) or removed (its last name).
//!
//! The daemon's own namespace's interfaces go by their plain names (`eth0`, `lo`); those of
//! namespaces under /run/netns by `name@namespace`; anything unresolved by `if<N>@netns-<cookie>`.
use std::{collections::HashMap, fs, io, path::PathBuf};

use crate::{
    attribution::Interface,
    sys::{
        netlink::{self, Link},
        netns,
    },
};

/// Where `ip netns add` keeps named namespaces.
const NAMED_NETNS_DIR: &str = "/run/netns";

/// Interface names by (namespace cookie, ifindex), and namespace names by cookie.
#[derive(Debug, Default)]
pub struct InterfaceNames {
    host_cookie: u64,
    /// Last known name of every interface ever seen.
    names: HashMap<(u64, u32), String>,
    /// Display names of the other namespaces seen.
    namespaces: HashMap<u64, String>,
    /// The daemon's namespace's interfaces right now, in ifindex order.
    host_links: Vec<Link>,
}

impl InterfaceNames {
    /// Reads the daemon's namespace's cookie; call [`InterfaceNames::refresh`] to learn names.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            host_cookie: netns::current_cookie()?,
            ..Self::default()
        })
    }

    /// For tests: names without touching the system.
    #[must_use]
    pub fn with_names(
        host_cookie: u64,
        names: &[((u64, u32), &str)],
        namespaces: &[(u64, &str)],
    ) -> Self {
        Self {
            host_cookie,
            names: names
                .iter()
                .map(|(key, name)| (*key, (*name).to_owned()))
                .collect(),
            namespaces: namespaces
                .iter()
                .map(|(c, n)| (*c, (*n).to_owned()))
                .collect(),
            host_links: Vec::new(),
        }
    }

    /// Re-reads the interfaces of this namespace and of every named one over rtnetlink. Names
    /// of interfaces that are gone stay as they were last seen.
    pub fn refresh(&mut self) {
        match netlink::links() {
            Ok(links) => {
                for link in &links {
                    self.names
                        .insert((self.host_cookie, link.index), link.name.clone());
                }
                self.host_links = links;
            }
            Err(error) => log::warn!("cannot list interfaces over rtnetlink: {error}"),
        }
        let Ok(entries) = fs::read_dir(NAMED_NETNS_DIR) else {
            return;
        };
        for entry in entries.flatten() {
            let namespace = entry.file_name().to_string_lossy().into_owned();
            let path: PathBuf = entry.path();
            match netns::run_in(&path, || Ok((netns::current_cookie()?, netlink::links()?))) {
                Ok((cookie, links)) => {
                    if cookie == self.host_cookie {
                        continue;
                    }
                    self.namespaces.insert(cookie, namespace);
                    for link in links {
                        self.names.insert((cookie, link.index), link.name);
                    }
                }
                Err(error) => log::debug!("cannot read namespace {}: {error}", path.display()),
            }
        }
    }

    /// The display name of `interface`.
    #[must_use]
    pub fn name_of(&self, interface: &Interface) -> String {
        let (netns_cookie, ifindex) = match interface {
            Interface::Other => return "other".to_owned(),
            Interface::Unknown => return "unknown".to_owned(),
            Interface::Known {
                netns_cookie,
                ifindex,
            } => (*netns_cookie, *ifindex),
        };
        let name = self.names.get(&(netns_cookie, ifindex)).cloned();
        if netns_cookie == self.host_cookie {
            return name.unwrap_or_else(|| format!("if{ifindex}"));
        }
        let namespace = self
            .namespaces
            .get(&netns_cookie)
            .cloned()
            .unwrap_or_else(|| format!("netns-{netns_cookie}"));
        format!(
            "{}@{namespace}",
            name.unwrap_or_else(|| format!("if{ifindex}"))
        )
    }

    /// The name of the daemon's namespace's interface `index`, if it exists now.
    #[must_use]
    pub fn host_link_name(&self, index: u32) -> Option<String> {
        self.host_links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.clone())
    }

    /// The daemon's namespace's interfaces now.
    #[must_use]
    pub fn host_link_names(&self) -> Vec<String> {
        self.host_links.iter().map(|l| l.name.clone()).collect()
    }
}

/// The default-route interface of the daemon's namespace, asked over rtnetlink now.
#[must_use]
pub fn current_interface(names: &InterfaceNames) -> Option<String> {
    let index = netlink::default_route_interface()
        .map_err(|error| log::warn!("cannot read routes over rtnetlink: {error}"))
        .ok()??;
    names.host_link_name(index).or_else(|| {
        netlink::links()
            .ok()?
            .into_iter()
            .find(|l| l.index == index)
            .map(|l| l.name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tell_namespaces_apart() {
        let names = InterfaceNames::with_names(
            1,
            &[((1, 2), "eth0"), ((7, 2), "veth1"), ((1, 1), "lo")],
            &[(7, "blue")],
        );
        let name = |netns_cookie, ifindex| {
            names.name_of(&Interface::Known {
                netns_cookie,
                ifindex,
            })
        };
        assert_eq!(name(1, 2), "eth0");
        assert_eq!(name(1, 1), "lo");
        assert_eq!(name(7, 2), "veth1@blue");
        assert_eq!(name(1, 9), "if9");
        assert_eq!(name(8, 3), "if3@netns-8");
        assert_eq!(names.name_of(&Interface::Other), "other");
        assert_eq!(names.name_of(&Interface::Unknown), "unknown");
    }
}
