//! Stable ids of the named networks, kept in the state dir (`destinations.json`): the kernel's
//! accounts (pinned, outliving the daemon) hold ids, so a network keeps its id across restarts
//! and config edits, and a network removed from the config keeps its name for the bytes
//! already counted under it. Ids are never reused.
use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sockstats_common::{
    DESTINATION_HOST, DESTINATION_INTERNET, DESTINATION_PRIVATE, DESTINATION_UNKNOWN,
    FIRST_NAMED_DESTINATION,
};

use super::UNKNOWN_DESTINATION;
use crate::{config::destinations::Network, state_file::write_atomically};

const FILE_NAME: &str = "destinations.json";

/// Why the registry could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error(
        "{} is not a destination registry ({error}); move it away to start the named networks' \
         ids afresh (bytes already counted under them then show as #<id>)",
        path.display()
    )]
    Parse {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("cannot write {}: {error}", path.display())]
    Write { path: PathBuf, error: io::Error },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    /// Network name → id.
    networks: BTreeMap<String, u32>,
}

/// Destination ids and their names.
#[derive(Debug, Clone, Default)]
pub struct DestinationNames {
    by_id: BTreeMap<u32, String>,
    by_name: BTreeMap<String, u32>,
}

impl DestinationNames {
    /// Reads the registry of `state_dir`, gives the networks of the config that have no id one,
    /// and writes the registry back if it changed.
    pub fn open(state_dir: &Path, networks: &[Network]) -> Result<Self, RegistryError> {
        let path = state_dir.join(FILE_NAME);
        let mut stored = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| RegistryError::Parse {
                path: path.clone(),
                error,
            })?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => Stored::default(),
            Err(error) => return Err(RegistryError::Read { path, error }),
        };
        if assign(&mut stored, networks) {
            let bytes = serde_json::to_vec_pretty(&stored).expect("a map of strings to numbers");
            write_atomically(&path, &bytes).map_err(|error| RegistryError::Write {
                path: path.clone(),
                error,
            })?;
        }
        Ok(Self::from_networks(stored.networks))
    }

    /// Names for `networks` (name → id) beside the classes.
    #[must_use]
    pub fn from_networks(networks: BTreeMap<String, u32>) -> Self {
        let mut names = Self::default();
        for (id, name) in [
            (DESTINATION_HOST, "host"),
            (DESTINATION_PRIVATE, "private"),
            (DESTINATION_INTERNET, "internet"),
        ] {
            names.by_id.insert(id, name.to_owned());
            names.by_name.insert(name.to_owned(), id);
        }
        for (name, id) in networks {
            names.by_id.insert(id, name.clone());
            names.by_name.insert(name, id);
        }
        names
    }

    /// The name of destination `id`: a class, a network, [`UNKNOWN_DESTINATION`], or `#<id>`
    /// for an id no registry names ('#' never starts a network name).
    #[must_use]
    pub fn name(&self, id: u32) -> String {
        if id == DESTINATION_UNKNOWN {
            return UNKNOWN_DESTINATION.to_owned();
        }
        self.by_id
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// Every class and network name, by id (the classes first).
    #[must_use]
    pub fn all(&self) -> Vec<&str> {
        self.by_id.values().map(String::as_str).collect()
    }

    /// The id of the class or network `name`.
    #[must_use]
    pub fn id(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }
}

/// Gives every network of `networks` without an id the next free one; returns whether any
/// was added.
fn assign(stored: &mut Stored, networks: &[Network]) -> bool {
    let mut next = stored
        .networks
        .values()
        .max()
        .map_or(FIRST_NAMED_DESTINATION, |last| last + 1);
    let mut changed = false;
    for network in networks {
        if !stored.networks.contains_key(&network.name) {
            stored.networks.insert(network.name.clone(), next);
            next += 1;
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(name: &str) -> Network {
        Network {
            name: name.to_owned(),
            prefixes: Vec::new(),
        }
    }

    #[test]
    fn networks_keep_their_ids_across_restarts_and_edits() {
        let dir = tempfile::tempdir().unwrap();
        let first = DestinationNames::open(dir.path(), &[network("vpc"), network("s3")]).unwrap();
        assert_eq!(first.id("vpc"), Some(FIRST_NAMED_DESTINATION));
        assert_eq!(first.id("s3"), Some(FIRST_NAMED_DESTINATION + 1));
        // `vpc` left the config, `peer` came: `vpc` keeps its name, `peer` gets a new id.
        let second = DestinationNames::open(dir.path(), &[network("s3"), network("peer")]).unwrap();
        assert_eq!(second.id("s3"), Some(FIRST_NAMED_DESTINATION + 1));
        assert_eq!(second.id("peer"), Some(FIRST_NAMED_DESTINATION + 2));
        assert_eq!(second.name(FIRST_NAMED_DESTINATION), "vpc");
    }

    #[test]
    fn classes_unknown_and_unnamed_ids_have_names() {
        let names = DestinationNames::from_networks(BTreeMap::new());
        assert_eq!(names.name(DESTINATION_HOST), "host");
        assert_eq!(names.name(DESTINATION_PRIVATE), "private");
        assert_eq!(names.name(DESTINATION_INTERNET), "internet");
        assert_eq!(names.name(DESTINATION_UNKNOWN), ":unknown");
        assert_eq!(names.name(99), "#99");
    }

    #[test]
    fn a_damaged_registry_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let error = DestinationNames::open(dir.path(), &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not a destination registry"), "{error}");
        assert!(error.contains("move it away"), "{error}");
    }
}
