//! The label registry: label names ↔ stable numeric ids, persisted in the state dir.
//!
//! Ids are handed out once and never renumbered or reused, across restarts too: the file records
//! the next id to hand out. Id 0 is `unlabeled` and never belongs to a name. Every change is
//! written to disk ([`crate::state_file::write_atomically`]) before the id is used in the kernel.
use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sockstats_common::{
    label_name::{self, LabelNameError, UNLABELED_NAME},
    MAX_LABELS, UNLABELED_ID,
};

/// File name of the registry inside the state dir.
pub const REGISTRY_FILE: &str = "labels.json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read label registry {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("label registry {} is damaged ({reason}); fix or move the file away (labels would then get new ids)", path.display())]
    Damaged { path: PathBuf, reason: String },
    #[error("cannot write label registry {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    BadName(#[from] LabelNameError),
    #[error("the label registry is full ({max} labels); remove unused labels from {} while the daemon is stopped", path.display())]
    Full { max: u32, path: PathBuf },
    #[error("uid {uid} has made {max} labels, its limit (sockstatsd --max-labels-per-uid); reuse a label it has")]
    UidQuota { uid: u32, max: usize },
}

#[derive(Debug, Serialize, Deserialize)]
struct RegistryFile {
    version: u32,
    next_id: u32,
    labels: BTreeMap<String, u32>,
    /// Label id → the uid that made it (for the per-uid limit); absent for root's.
    #[serde(default)]
    made_by: BTreeMap<u32, u32>,
}

/// Label names and their ids.
#[derive(Debug)]
pub struct LabelRegistry {
    path: PathBuf,
    by_name: BTreeMap<String, u32>,
    by_id: BTreeMap<u32, String>,
    next_id: u32,
    max_id: u32,
    /// Label id → the non-root uid that made it.
    made_by: BTreeMap<u32, u32>,
    /// Most labels one non-root uid may make.
    uid_quota: usize,
}

impl LabelRegistry {
    /// Opens the registry in `state_dir`, empty if the file does not exist yet.
    pub fn open(state_dir: &Path) -> Result<Self, RegistryError> {
        Self::open_with_limit(state_dir, MAX_LABELS - 1)
    }

    /// As [`LabelRegistry::open`], handing out ids up to `max_id` only.
    pub fn open_with_limit(state_dir: &Path, max_id: u32) -> Result<Self, RegistryError> {
        let path = state_dir.join(REGISTRY_FILE);
        let mut registry = Self {
            path: path.clone(),
            by_name: BTreeMap::new(),
            by_id: BTreeMap::new(),
            next_id: UNLABELED_ID + 1,
            max_id,
            made_by: BTreeMap::new(),
            uid_quota: usize::MAX,
        };
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(registry),
            Err(source) => return Err(RegistryError::Read { path, source }),
        };
        let damaged = |reason: String| RegistryError::Damaged {
            path: path.clone(),
            reason,
        };
        let file: RegistryFile = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
        if file.version != 1 {
            return Err(damaged(format!("unknown version {}", file.version)));
        }
        for (name, id) in file.labels {
            label_name::validate(&name).map_err(|e| damaged(format!("{name:?}: {e}")))?;
            if id == UNLABELED_ID || id >= file.next_id {
                return Err(damaged(format!(
                    "{name:?} has id {id}, next_id is {}",
                    file.next_id
                )));
            }
            if let Some(other) = registry.by_id.insert(id, name.clone()) {
                return Err(damaged(format!("{name:?} and {other:?} share id {id}")));
            }
            registry.by_name.insert(name, id);
        }
        registry.next_id = file.next_id;
        registry.made_by = file.made_by;
        Ok(registry)
    }

    /// Limits how many labels each non-root uid may make (Android-style: one app cannot use
    /// up the ids of all). Labels that exist can be used by anyone.
    pub fn set_uid_quota(&mut self, quota: usize) {
        self.uid_quota = quota;
    }

    /// The id of `name`, registering (and persisting) it first if it is new.
    pub fn get_or_create(&mut self, name: &str) -> Result<u32, RegistryError> {
        self.get_or_create_for(name, 0)
    }

    /// As [`LabelRegistry::get_or_create`], for a request of `uid`: a new label counts
    /// against that uid's quota (root has none).
    pub fn get_or_create_for(&mut self, name: &str, uid: u32) -> Result<u32, RegistryError> {
        label_name::validate(name)?;
        if let Some(id) = self.by_name.get(name) {
            return Ok(*id);
        }
        if uid != 0 && self.made_by.values().filter(|u| **u == uid).count() >= self.uid_quota {
            return Err(RegistryError::UidQuota {
                uid,
                max: self.uid_quota,
            });
        }
        if self.next_id > self.max_id {
            return Err(RegistryError::Full {
                max: self.max_id,
                path: self.path.clone(),
            });
        }
        let id = self.next_id;
        self.by_name.insert(name.to_owned(), id);
        self.by_id.insert(id, name.to_owned());
        self.next_id += 1;
        if uid != 0 {
            self.made_by.insert(id, uid);
        }
        if let Err(error) = self.save() {
            self.by_name.remove(name);
            self.by_id.remove(&id);
            self.made_by.remove(&id);
            self.next_id -= 1;
            return Err(error);
        }
        Ok(id)
    }

    /// The name for `id`: `unlabeled` for 0, the registered name, or `None`.
    #[must_use]
    pub fn name_of(&self, id: u32) -> Option<&str> {
        if id == UNLABELED_ID {
            return Some(UNLABELED_NAME);
        }
        self.by_id.get(&id).map(String::as_str)
    }

    /// Registered labels ordered by id (without `unlabeled`).
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.by_id.iter().map(|(id, name)| (*id, name.as_str()))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn save(&self) -> Result<(), RegistryError> {
        let write_error = |source| RegistryError::Write {
            path: self.path.clone(),
            source,
        };
        let file = RegistryFile {
            version: 1,
            next_id: self.next_id,
            labels: self.by_name.clone(),
            made_by: self.made_by.clone(),
        };
        let mut text = serde_json::to_string_pretty(&file).expect("registry serializes");
        text.push('\n');
        crate::state_file::write_atomically(&self.path, text.as_bytes()).map_err(write_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_non_root_uid_makes_at_most_its_quota_of_labels_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = LabelRegistry::open(dir.path()).unwrap();
        registry.set_uid_quota(2);
        registry.get_or_create_for("a1", 1000).unwrap();
        registry.get_or_create_for("a2", 1000).unwrap();
        assert!(matches!(
            registry.get_or_create_for("a3", 1000),
            Err(RegistryError::UidQuota { uid: 1000, max: 2 })
        ));
        // Existing labels stay usable; other uids and root have their own room.
        assert_eq!(registry.get_or_create_for("a1", 1000).unwrap(), 1);
        registry.get_or_create_for("b1", 1001).unwrap();
        for n in 0..5 {
            registry.get_or_create_for(&format!("r{n}"), 0).unwrap();
        }
        drop(registry);
        let mut reopened = LabelRegistry::open(dir.path()).unwrap();
        reopened.set_uid_quota(2);
        assert!(reopened.get_or_create_for("a3", 1000).is_err());
        assert!(reopened.get_or_create_for("b2", 1001).is_ok());
    }

    #[test]
    fn ids_are_stable_across_reopen_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = LabelRegistry::open(dir.path()).unwrap();
        assert!(registry.is_empty());
        assert_eq!(registry.get_or_create("web").unwrap(), 1);
        assert_eq!(registry.get_or_create("db").unwrap(), 2);
        assert_eq!(registry.get_or_create("web").unwrap(), 1);
        drop(registry);

        let mut registry = LabelRegistry::open(dir.path()).unwrap();
        assert_eq!(registry.name_of(1), Some("web"));
        assert_eq!(registry.name_of(2), Some("db"));
        assert_eq!(registry.name_of(0), Some("unlabeled"));
        assert_eq!(registry.get_or_create("cache").unwrap(), 3);
        assert_eq!(
            registry.iter().collect::<Vec<_>>(),
            [(1, "web"), (2, "db"), (3, "cache")]
        );

        // An id whose name was removed by hand is still never handed out again.
        let path = dir.path().join(REGISTRY_FILE);
        fs::write(
            &path,
            r#"{"version":1,"next_id":4,"labels":{"web":1,"db":2}}"#,
        )
        .unwrap();
        let mut registry = LabelRegistry::open(dir.path()).unwrap();
        assert_eq!(registry.name_of(3), None);
        assert_eq!(registry.get_or_create("new").unwrap(), 4);
    }

    #[test]
    fn refuses_bad_names_and_a_full_registry() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = LabelRegistry::open_with_limit(dir.path(), 2).unwrap();
        assert!(matches!(
            registry.get_or_create("a b"),
            Err(RegistryError::BadName(_))
        ));
        assert!(matches!(
            registry.get_or_create("unlabeled"),
            Err(RegistryError::BadName(_))
        ));
        registry.get_or_create("one").unwrap();
        registry.get_or_create("two").unwrap();
        let full = registry.get_or_create("three").unwrap_err();
        assert!(matches!(full, RegistryError::Full { max: 2, .. }), "{full}");
        assert_eq!(registry.get_or_create("two").unwrap(), 2);
    }

    #[test]
    fn a_damaged_file_is_reported_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(REGISTRY_FILE);
        for text in [
            "not json",
            r#"{"version":1,"next_id":3,"labels":{"a":1,"b":1}}"#,
            r#"{"version":1,"next_id":2,"labels":{"a":5}}"#,
            r#"{"version":1,"next_id":3,"labels":{"a":0}}"#,
            r#"{"version":1,"next_id":3,"labels":{"bad name":1}}"#,
            r#"{"version":9,"next_id":3,"labels":{}}"#,
        ] {
            fs::write(&path, text).unwrap();
            let error = LabelRegistry::open(dir.path()).unwrap_err();
            assert!(
                matches!(error, RegistryError::Damaged { .. }),
                "{text}: {error}"
            );
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
        }
    }
}
