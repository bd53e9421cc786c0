//! Names for the interfaces bytes were charged to, across network namespaces, kept after an
//! interface is renamed (the new name) or removed (its last name).
//!
//! The daemon's own namespace's interfaces go by their plain names (`eth0`, `lo`); those of
//! namespaces under /run/netns by `name/namespace`; unresolved ones by `if:<N>` or
//! `if:<N>/netns:<cookie>`; the two special buckets are `:unknown` and `:other`. Linux forbids
//! `/` and `:` in interface names, so these never collide with a real interface.
//!
//! Names are kept in `<state-dir>/interfaces.json` (for this boot: network namespace cookies
//! are per boot), so a restarted daemon still names the bytes of interfaces removed while it
//! was down or before.
use std::{
    collections::HashMap,
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    attribution::Interface,
    sys::{
        netlink::{self, Link},
        netns,
    },
};

/// Where `ip netns add` keeps named namespaces.
const NAMED_NETNS_DIR: &str = "/run/netns";

/// File name of the saved names in the state dir.
pub const NAMES_FILE: &str = "interfaces.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct SavedNames {
    boot_id: String,
    interfaces: Vec<(u64, u32, String)>,
    namespaces: Vec<(u64, String)>,
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|id| id.trim().to_owned())
        .unwrap_or_default()
}

/// Interface names by (namespace cookie, ifindex), and namespace names by cookie.
#[derive(Debug, Default)]
pub struct InterfaceNames {
    /// Where the names are saved (`None`: not saved).
    saved_at: Option<PathBuf>,
    host_cookie: u64,
    /// Last known name of every interface ever seen.
    names: HashMap<(u64, u32), String>,
    /// Display names of the other namespaces seen.
    namespaces: HashMap<u64, String>,
    /// The daemon's namespace's interfaces right now, in ifindex order.
    host_links: Vec<Link>,
    /// Where the names come from.
    source: Source,
}

/// Where [`InterfaceNames`] learns the interfaces and the default route.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// rtnetlink, on every refresh.
    #[default]
    Rtnetlink,
    /// A fixed table (tests), with the default route's interface index.
    Fixed { default_route: Option<u32> },
}

impl InterfaceNames {
    /// Reads the daemon's namespace's cookie and the names saved in `state_dir` during this
    /// boot; call [`InterfaceNames::refresh`] to learn the current ones.
    pub fn new(state_dir: &Path) -> io::Result<Self> {
        let mut names = Self {
            host_cookie: netns::own_cookie()?,
            ..Self::default()
        };
        let path = state_dir.join(NAMES_FILE);
        if let Ok(text) = fs::read_to_string(&path) {
            match serde_json::from_str::<SavedNames>(&text) {
                Ok(saved) if saved.boot_id == boot_id() => {
                    names.names = saved
                        .interfaces
                        .into_iter()
                        .map(|(c, i, n)| ((c, i), n))
                        .collect();
                    names.namespaces = saved.namespaces.into_iter().collect();
                }
                Ok(_) => log::info!("{} is from an earlier boot; not using it", path.display()),
                Err(error) => log::warn!("ignoring damaged {}: {error}", path.display()),
            }
        }
        names.saved_at = Some(path);
        Ok(names)
    }

    /// Saves the names ([`crate::state_file::write_atomically`]).
    fn save(&self) {
        let Some(path) = &self.saved_at else { return };
        let saved = SavedNames {
            boot_id: boot_id(),
            interfaces: self
                .names
                .iter()
                .map(|((c, i), n)| (*c, *i, n.clone()))
                .collect(),
            namespaces: self
                .namespaces
                .iter()
                .map(|(c, n)| (*c, n.clone()))
                .collect(),
        };
        let written = serde_json::to_vec(&saved)
            .map_err(io::Error::other)
            .and_then(|bytes| crate::state_file::write_atomically(path, &bytes));
        if let Err(error) = written {
            log::warn!("cannot save interface names to {}: {error}", path.display());
        }
    }

    /// For tests: names without touching the system.
    #[must_use]
    pub fn with_names(
        host_cookie: u64,
        names: &[((u64, u32), &str)],
        namespaces: &[(u64, &str)],
    ) -> Self {
        Self {
            saved_at: None,
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
            source: Source::Fixed {
                default_route: None,
            },
        }
    }

    /// For tests: the daemon's namespace's interfaces now (index, name) and the default
    /// route's interface index.
    #[must_use]
    pub fn with_host_links(mut self, links: &[(u32, &str)], default_route: Option<u32>) -> Self {
        self.host_links = links
            .iter()
            .map(|(index, name)| Link {
                index: *index,
                name: (*name).to_owned(),
            })
            .collect();
        for (index, name) in links {
            self.names
                .insert((self.host_cookie, *index), (*name).to_owned());
        }
        self.source = Source::Fixed { default_route };
        self
    }

    /// Re-reads the interfaces of this namespace and of every named one over rtnetlink. Names
    /// of interfaces that are gone stay as they were last seen. Fails when this namespace's
    /// interfaces cannot be listed (other namespaces are skipped quietly).
    pub fn refresh(&mut self) -> io::Result<()> {
        if self.source != Source::Rtnetlink {
            return Ok(());
        }
        let before = (self.names.clone(), self.namespaces.clone());
        let listed = self.read_all();
        if (&self.names, &self.namespaces) != (&before.0, &before.1) {
            self.save();
        }
        listed
    }

    fn read_all(&mut self) -> io::Result<()> {
        let listed = netlink::links().map(|links| {
            for link in &links {
                self.names
                    .insert((self.host_cookie, link.index), link.name.clone());
            }
            self.host_links = links;
        });
        let Ok(entries) = fs::read_dir(NAMED_NETNS_DIR) else {
            return listed;
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
        listed
    }

    /// The display name of `interface`.
    #[must_use]
    pub fn name_of(&self, interface: &Interface) -> String {
        let (netns_cookie, ifindex) = match interface {
            Interface::Other => return ":other".to_owned(),
            Interface::Unknown => return ":unknown".to_owned(),
            Interface::Known {
                netns_cookie,
                ifindex,
            } => (*netns_cookie, *ifindex),
        };
        let name = self.names.get(&(netns_cookie, ifindex)).cloned();
        let name = name.unwrap_or_else(|| format!("if:{ifindex}"));
        if netns_cookie == self.host_cookie {
            return name;
        }
        let namespace = self
            .namespaces
            .get(&netns_cookie)
            .cloned()
            .unwrap_or_else(|| format!("netns:{netns_cookie}"));
        format!("{name}/{namespace}")
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

    /// The default-route interface of the daemon's namespace, asked over rtnetlink now.
    #[must_use]
    pub fn current_interface(&self) -> Option<String> {
        let index = match self.source {
            Source::Fixed { default_route } => default_route?,
            Source::Rtnetlink => netlink::default_route_interface()
                .map_err(|error| log::warn!("cannot read routes over rtnetlink: {error}"))
                .ok()??,
        };
        self.host_link_name(index).or_else(|| {
            if self.source != Source::Rtnetlink {
                return None;
            }
            netlink::links()
                .ok()?
                .into_iter()
                .find(|l| l.index == index)
                .map(|l| l.name)
        })
    }
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
        assert_eq!(name(7, 2), "veth1/blue");
        assert_eq!(name(1, 9), "if:9");
        assert_eq!(name(8, 3), "if:3/netns:8");
        assert_eq!(names.name_of(&Interface::Other), ":other");
        assert_eq!(names.name_of(&Interface::Unknown), ":unknown");
    }

    #[test]
    fn names_survive_a_restart_within_a_boot() {
        let dir = tempfile::tempdir().unwrap();
        let mut names = InterfaceNames::with_names(1, &[((5, 3), "gone0")], &[(5, "old-ns")]);
        names.saved_at = Some(dir.path().join(NAMES_FILE));
        names.save();
        let reopened = InterfaceNames::new(dir.path()).unwrap();
        assert_eq!(
            reopened.names.get(&(5, 3)).map(String::as_str),
            Some("gone0")
        );
        assert_eq!(
            reopened.namespaces.get(&5).map(String::as_str),
            Some("old-ns")
        );
        // Another boot's names are not used: cookies repeat across boots.
        let stale = r#"{"boot_id":"x","interfaces":[[5,3,"stale"]],"namespaces":[]}"#;
        fs::write(dir.path().join(NAMES_FILE), stale).unwrap();
        assert!(InterfaceNames::new(dir.path()).unwrap().names.is_empty());
    }
}
