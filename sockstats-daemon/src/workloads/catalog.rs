//! What every cgroup is, by id: its path, its systemd unit, its container and the container's
//! name, kept after the cgroup is removed so the bytes of its closed sockets keep their names.
//!
//! The daemon refreshes it from the cgroup tree: every second while a unit or container rule
//! needs the tree's cgroups, else when the tree's cgroup counts change and at least every
//! [`WALK_AT_LEAST_EVERY`] (one read of the root's `cgroup.stat` a second instead of a walk),
//! and before `get --by unit|container` answers. A cgroup that comes and goes between two
//! walks is never seen and shows under its id. The names of
//! removed cgroups are saved in the state dir (at most every [`SAVE_EVERY`], so a `kill -9`
//! can lose the last seconds of them) for the boot they belong to: cgroup ids are not unique
//! across boots, and the kernel's accounts do not outlive one either.
use std::{
    collections::{HashMap, VecDeque},
    fs, io,
    path::PathBuf,
    sync::{Mutex, MutexGuard},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{
    container::{self, Runtime, SHORT_ID_LEN},
    metadata::ContainerMetadata,
    unit,
};

/// File name of the removed cgroups' names inside the state dir.
pub const STATE_FILE: &str = "cgroup-names.json";
/// Most removed cgroups whose names are kept (the oldest go first): as many as the kernel keeps
/// owner accounts, since only cgroups with an account have bytes to name.
pub const MAX_REMOVED: usize = sockstats_common::MAX_OWNERS as usize;
/// Most often the names of removed cgroups are written to the state dir.
pub const SAVE_EVERY: Duration = Duration::from_secs(10);
/// Longest time between two walks of the cgroup tree while its counts stay the same.
pub const WALK_AT_LEAST_EVERY: Duration = Duration::from_secs(10);
/// How long a container's name is looked for after its cgroup appears (a runtime may write
/// its metadata just after making the cgroup); after that it is shown by its short id.
const NAME_LOOKUP_FOR: Duration = Duration::from_secs(30);

/// One cgroup, named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupNames {
    /// Relative to the cgroup2 mount.
    pub path: String,
    pub unit: Option<String>,
    pub container: Option<Container>,
}

/// The container a cgroup is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub runtime: Runtime,
    pub id: String,
    /// The name from the runtime's metadata, if it was found.
    pub name: Option<String>,
    /// The container's own cgroup (the cgroup itself, or one above it).
    pub path: String,
}

impl Container {
    /// The name shown for it: the runtime's name, else the short id.
    #[must_use]
    pub fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.id[..SHORT_ID_LEN].to_owned())
    }

    /// Does `query` name this container: its name, its id, or a prefix of its id of at least
    /// the short id's length?
    #[must_use]
    pub fn is_named(&self, query: &str) -> bool {
        self.name.as_deref() == Some(query)
            || (query.len() >= SHORT_ID_LEN && self.id.starts_with(query))
    }
}

impl CgroupNames {
    fn describe(path: &str, metadata: &ContainerMetadata) -> Self {
        let container = container::container_of(path).map(|found| Container {
            runtime: found.runtime,
            id: found.id.to_owned(),
            name: metadata.name_of(&found),
            path: found.path.to_owned(),
        });
        Self {
            path: path.to_owned(),
            unit: unit::unit_of(path).map(str::to_owned),
            container,
        }
    }

    fn is_named(&self) -> bool {
        self.unit.is_some() || self.container.is_some()
    }
}

struct Present {
    names: CgroupNames,
    seen: Instant,
}

#[derive(Default)]
struct Catalog {
    present: HashMap<u64, Present>,
    removed: HashMap<u64, CgroupNames>,
    /// Removal order of `removed`, oldest first.
    removed_order: VecDeque<u64>,
    /// `removed` changed since it was saved.
    unsaved: bool,
    saved_at: Option<Instant>,
    /// When the tree was last walked, and its descendant counts then.
    walked: Option<(Instant, Option<(u64, u64)>)>,
    /// When the walk the catalog holds was made.
    applied: Option<Instant>,
    /// How many present cgroups the last save held.
    saved_present: usize,
}

/// A walk of the cgroup tree, its new cgroups described ([`Workloads::prepare`]).
pub struct Walk {
    at: Instant,
    paths: HashMap<u64, String>,
    described: HashMap<u64, CgroupNames>,
}

/// The cgroup catalog (a leaf lock inside: it only touches the file system).
pub struct Workloads {
    metadata: ContainerMetadata,
    state_path: PathBuf,
    boot_id: String,
    catalog: Mutex<Catalog>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// The boot the ids belong to (`/proc/sys/kernel/random/boot_id`).
    boot_id: String,
    /// Removed cgroups by id, oldest first, then the named ones that existed at the save (so
    /// that one removed while the daemon is down keeps its name).
    removed: Vec<(u64, CgroupNames)>,
}

impl Workloads {
    /// A catalog reading container metadata below `metadata_root` that keeps the names of
    /// removed cgroups in `state_dir`. Names saved in an earlier boot, or in a file that
    /// cannot be read, are dropped (with a warning for the latter).
    #[must_use]
    pub fn open(metadata_root: PathBuf, state_dir: &std::path::Path) -> Self {
        let state_path = state_dir.join(STATE_FILE);
        let boot_id = fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|id| id.trim().to_owned())
            .unwrap_or_default();
        let mut catalog = Catalog::default();
        match fs::read(&state_path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(saved) if saved.boot_id == boot_id => {
                    for (id, names) in saved.removed {
                        catalog.removed_order.push_back(id);
                        catalog.removed.insert(id, names);
                    }
                }
                Ok(_) => log::info!("the names of removed cgroups in {} are of an earlier boot: dropped", state_path.display()),
                Err(error) => log::warn!(
                    "cannot read {}: {error}; the names of cgroups removed before this start are lost (the file is rewritten)",
                    state_path.display()
                ),
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => log::warn!("cannot read {}: {error}", state_path.display()),
        }
        Self {
            metadata: ContainerMetadata::new(metadata_root),
            state_path,
            boot_id,
            catalog: Mutex::new(catalog),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Catalog> {
        self.catalog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Should the tree be walked now? Yes when `always` (a rule needs every new cgroup at
    /// once), when its descendant `counts` differ from the last walk's, when they cannot be
    /// read, or after [`WALK_AT_LEAST_EVERY`]. A yes counts as a walk.
    pub fn walk_due(&self, always: bool, counts: Option<(u64, u64)>) -> bool {
        let now = Instant::now();
        let mut catalog = self.lock();
        let due = always
            || counts.is_none()
            || catalog.walked.is_none_or(|(at, last)| {
                last != counts || now.duration_since(at) >= WALK_AT_LEAST_EVERY
            });
        if due {
            catalog.walked = Some((now, counts));
        }
        due
    }

    /// Takes in the cgroups that exist now (`paths` by id, from [`crate::cgroup::CgroupTree`]):
    /// [`Workloads::prepare`], [`Workloads::apply`] and [`Workloads::save_if_due`] at once.
    #[cfg(test)]
    pub fn refresh(&self, paths: HashMap<u64, String>) {
        self.apply(self.prepare(paths, Instant::now()));
        self.save_if_due();
    }

    /// Describes the cgroups of a walk made at `walked_at` that are new (or moved), and looks
    /// again for container names not found yet: the reads of the runtimes' metadata, done
    /// outside every lock but for a moment of the catalog's own.
    #[must_use]
    pub fn prepare(&self, paths: HashMap<u64, String>, walked_at: Instant) -> Walk {
        let wanted: Vec<(u64, String)> = {
            let catalog = self.lock();
            paths
                .iter()
                .filter(|(id, path)| match catalog.present.get(id) {
                    Some(known) if known.names.path == **path => {
                        let unnamed = known
                            .names
                            .container
                            .as_ref()
                            .is_some_and(|c| c.name.is_none());
                        unnamed && walked_at.duration_since(known.seen) < NAME_LOOKUP_FOR
                    }
                    _ => true,
                })
                .map(|(id, path)| (*id, path.clone()))
                .collect()
        };
        let described = wanted
            .into_iter()
            .map(|(id, path)| (id, CgroupNames::describe(&path, &self.metadata)))
            .collect();
        Walk {
            at: walked_at,
            paths,
            described,
        }
    }

    /// Makes `walk` the catalog's view of the cgroups that exist, keeping the names of those
    /// gone since; a walk older than the last one applied is dropped (two walks can finish in
    /// either order). Memory only: cheap under the daemon's core lock.
    pub fn apply(&self, walk: Walk) {
        let mut catalog = self.lock();
        if catalog.applied.is_some_and(|applied| walk.at < applied) {
            return;
        }
        catalog.applied = Some(walk.at);
        let Walk {
            at,
            paths,
            mut described,
        } = walk;
        let mut present = HashMap::with_capacity(paths.len());
        for (id, path) in paths {
            let known = catalog.present.remove(&id);
            let entry = match (described.remove(&id), known) {
                (Some(names), Some(known)) if known.names.path == path => Present {
                    names,
                    seen: known.seen,
                },
                (Some(names), _) => Present { names, seen: at },
                (None, Some(known)) => known,
                // Described by neither (a newer walk applied in between took it): next time.
                (None, None) => continue,
            };
            present.insert(id, entry);
        }
        let gone = std::mem::replace(&mut catalog.present, present);
        for (id, entry) in gone {
            if entry.names.is_named() {
                catalog.remember_removed(id, entry.names);
            }
        }
        // Named cgroups that exist are saved too: one that goes while the daemon is down keeps
        // its name.
        catalog.unsaved |= catalog.present.len() != catalog.saved_present;
    }

    /// Saves the names of removed (and named present) cgroups if they changed and the last
    /// save is [`SAVE_EVERY`] old.
    pub fn save_if_due(&self) {
        let now = Instant::now();
        let mut catalog = self.lock();
        let due = catalog
            .saved_at
            .is_none_or(|at| now.duration_since(at) >= SAVE_EVERY);
        if due {
            self.save_unsaved(&mut catalog, now);
        }
    }

    /// Saves the names of removed cgroups now, if they changed (when the daemon stops).
    pub fn flush(&self) {
        self.save_unsaved(&mut self.lock(), Instant::now());
    }

    fn save_unsaved(&self, catalog: &mut Catalog, now: Instant) {
        if !catalog.unsaved {
            return;
        }
        catalog.saved_at = Some(now);
        catalog.unsaved = false;
        catalog.saved_present = catalog.present.len();
        if let Err(error) = self.save(catalog) {
            log::warn!(
                "cannot save the names of removed cgroups to {}: {error}",
                self.state_path.display()
            );
        }
    }

    fn save(&self, catalog: &Catalog) -> io::Result<()> {
        let present = catalog
            .present
            .iter()
            .filter(|(id, entry)| entry.names.is_named() && !catalog.removed.contains_key(id))
            .map(|(id, entry)| (*id, entry.names.clone()));
        let file = StateFile {
            version: 1,
            boot_id: self.boot_id.clone(),
            removed: catalog
                .removed_order
                .iter()
                .filter_map(|id| Some((*id, catalog.removed.get(id)?.clone())))
                .chain(present)
                .collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
        crate::state_file::write_atomically(&self.state_path, &bytes)
    }

    /// The names of the cgroup `id`, present or removed.
    #[must_use]
    pub fn names(&self, id: u64) -> Option<CgroupNames> {
        let catalog = self.lock();
        catalog
            .present
            .get(&id)
            .map(|entry| &entry.names)
            .or_else(|| catalog.removed.get(&id))
            .cloned()
    }

    /// The existing cgroups that each hold the whole of the unit `unit` (one per systemd
    /// manager that runs it), as (id, path).
    #[must_use]
    pub fn unit_cgroups(&self, name: &str) -> Vec<(u64, String)> {
        self.present_where(|names| {
            names.unit.as_deref() == Some(name)
                && unit::unit_cgroup(&names.path, name) == Some(names.path.as_str())
        })
    }

    /// The existing cgroups of the containers `query` names (see [`Container::is_named`]).
    #[must_use]
    pub fn container_cgroups(&self, query: &str) -> Vec<(u64, String)> {
        self.present_where(|names| {
            names
                .container
                .as_ref()
                .is_some_and(|c| c.path == names.path && c.is_named(query))
        })
    }

    /// The names of the containers that exist now, sorted (for error messages).
    #[must_use]
    pub fn container_names(&self) -> Vec<String> {
        let catalog = self.lock();
        let mut names: Vec<String> = catalog
            .present
            .values()
            .filter_map(|entry| {
                let container = entry.names.container.as_ref()?;
                (container.path == entry.names.path).then(|| container.display_name())
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn present_where(&self, wanted: impl Fn(&CgroupNames) -> bool) -> Vec<(u64, String)> {
        let catalog = self.lock();
        let mut found: Vec<(u64, String)> = catalog
            .present
            .iter()
            .filter(|(_, entry)| wanted(&entry.names))
            .map(|(id, entry)| (*id, entry.names.path.clone()))
            .collect();
        found.sort();
        found
    }
}

impl Catalog {
    fn remember_removed(&mut self, id: u64, names: CgroupNames) {
        if self.removed.insert(id, names).is_none() {
            self.removed_order.push_back(id);
        }
        while self.removed_order.len() > MAX_REMOVED {
            if let Some(oldest) = self.removed_order.pop_front() {
                self.removed.remove(&oldest);
            }
        }
        self.unsaved = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::metadata::tests::{write, ID};

    fn paths(entries: &[(u64, &str)]) -> HashMap<u64, String> {
        entries
            .iter()
            .map(|(id, path)| (*id, (*path).to_owned()))
            .collect()
    }

    #[test]
    fn names_units_and_containers_and_keeps_them_after_removal() {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        write(
            root.path(),
            &format!("var/lib/docker/containers/{ID}/config.v2.json"),
            r#"{"Name": "/web"}"#,
        );
        let container = format!("/docker/{ID}");
        let workloads = Workloads::open(root.path().to_owned(), state.path());
        workloads.refresh(paths(&[
            (1, "/"),
            (2, "/system.slice/nginx.service"),
            (3, "/system.slice/nginx.service/worker"),
            (4, &container),
        ]));
        assert_eq!(
            workloads.names(3).unwrap().unit.as_deref(),
            Some("nginx.service")
        );
        assert_eq!(
            workloads.unit_cgroups("nginx.service"),
            [(2, "/system.slice/nginx.service".to_owned())]
        );
        assert_eq!(workloads.container_cgroups("web"), [(4, container.clone())]);
        assert_eq!(
            workloads.container_cgroups(&ID[..12]),
            [(4, container.clone())]
        );
        assert!(
            workloads.container_cgroups(&ID[..6]).is_empty(),
            "too short an id prefix"
        );
        assert_eq!(workloads.container_names(), ["web"]);

        // The service restarts (a new cgroup id), the container goes.
        workloads.refresh(paths(&[(1, "/"), (5, "/system.slice/nginx.service")]));
        assert_eq!(
            workloads.unit_cgroups("nginx.service"),
            [(5, "/system.slice/nginx.service".to_owned())]
        );
        assert!(workloads.container_cgroups("web").is_empty());
        let removed = workloads.names(4).unwrap();
        assert_eq!(removed.container.unwrap().display_name(), "web");
        assert_eq!(
            workloads.names(3).unwrap().unit.as_deref(),
            Some("nginx.service")
        );

        // A restarted daemon still knows the removed ones.
        let reopened = Workloads::open(root.path().to_owned(), state.path());
        assert_eq!(reopened.names(4).unwrap().path, container);
        assert_eq!(reopened.names(1), None, "never removed, so not saved");
    }

    #[test]
    fn walks_when_rules_need_it_or_the_tree_changed() {
        let state = tempfile::tempdir().unwrap();
        let workloads = Workloads::open(state.path().to_owned(), state.path());
        assert!(workloads.walk_due(false, Some((3, 0))), "the first time");
        assert!(!workloads.walk_due(false, Some((3, 0))));
        assert!(
            workloads.walk_due(true, Some((3, 0))),
            "a unit or container rule"
        );
        assert!(workloads.walk_due(false, Some((3, 1))), "a cgroup removed");
        assert!(!workloads.walk_due(false, Some((3, 1))));
        assert!(workloads.walk_due(false, None), "counts unknown");
    }

    #[test]
    fn a_container_named_late_gets_its_name_and_an_unnamed_one_its_short_id() {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let workloads = Workloads::open(root.path().to_owned(), state.path());
        let cgroup = format!("/libpod_parent/libpod-{ID}");
        workloads.refresh(paths(&[(7, &cgroup)]));
        let unnamed = workloads.names(7).unwrap().container.unwrap();
        assert_eq!(unnamed.display_name(), &ID[..12]);
        assert!(unnamed.is_named(&ID[..12]));
        write(
            root.path(),
            "var/lib/containers/storage/overlay-containers/containers.json",
            &format!(r#"[{{"id": "{ID}", "names": ["box"]}}]"#),
        );
        workloads.refresh(paths(&[(7, &cgroup)]));
        assert_eq!(
            workloads
                .names(7)
                .unwrap()
                .container
                .unwrap()
                .display_name(),
            "box"
        );
    }

    #[test]
    fn keeps_a_bounded_number_of_removed_cgroups_and_drops_another_boots() {
        let root = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        let workloads = Workloads::open(root.path().to_owned(), state.path());
        let count = u64::try_from(MAX_REMOVED).unwrap() + 10;
        for id in 1..=count {
            workloads.refresh(paths(&[(id, &format!("/system.slice/s{id}.service"))]));
        }
        workloads.refresh(HashMap::new());
        workloads.flush();
        assert_eq!(workloads.names(10), None, "among the oldest");
        assert!(workloads.names(count).is_some());

        let file = state.path().join(STATE_FILE);
        let text = fs::read_to_string(&file).unwrap();
        let mut saved: serde_json::Value = serde_json::from_str(&text).unwrap();
        saved["boot_id"] = "another boot".into();
        fs::write(&file, saved.to_string()).unwrap();
        let reopened = Workloads::open(root.path().to_owned(), state.path());
        assert_eq!(reopened.names(count), None);
        fs::write(&file, "{broken").unwrap();
        let reopened = Workloads::open(root.path().to_owned(), state.path());
        assert_eq!(reopened.names(count), None);
    }
}
