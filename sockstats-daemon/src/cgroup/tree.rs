//! The cgroup v2 tree: cgroups named by path (a cgroup's id is its directory's inode number),
//! and the cgroups `sockstats run` left behind, removed once empty.
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::{DirEntryExt as _, MetadataExt as _},
    path::{Path, PathBuf},
    sync::Mutex,
};

use sockstats_common::MAX_CGROUP_DEPTH;

/// The cgroup v2 tree, to name cgroups by path.
pub struct CgroupTree {
    mount: PathBuf,
    /// Cgroups of `sockstats run`s that died before removing them (paths relative to the
    /// mount): removed once empty.
    left_behind: Mutex<Vec<String>>,
}

impl CgroupTree {
    #[must_use]
    pub fn new(mount: PathBuf) -> Self {
        Self {
            mount,
            left_behind: Mutex::new(Vec::new()),
        }
    }

    /// Remembers the cgroup at `path` to remove once it is empty, if `sockstats run` made it
    /// (see [`crate::cgroup::is_run_cgroup`]; no other cgroup is ever removed).
    pub fn remove_when_empty(&self, path: &str) {
        if !crate::cgroup::is_run_cgroup(path) {
            return;
        }
        let mut left_behind = self.left_behind.lock().expect("left-behind cgroups lock");
        if !left_behind.iter().any(|known| known == path) {
            left_behind.push(path.to_owned());
        }
    }

    /// Removes the remembered cgroups that are empty now (the kernel refuses to remove one
    /// with processes or children: those are kept for the next call). Returns the removed.
    pub fn remove_empty_left_behind(&self) -> Vec<String> {
        let mut left_behind = self.left_behind.lock().expect("left-behind cgroups lock");
        let mut removed = Vec::new();
        left_behind.retain(|path| match fs::remove_dir(self.directory(path)) {
            Ok(()) => {
                removed.push(path.clone());
                false
            }
            Err(error) => error.kind() != std::io::ErrorKind::NotFound,
        });
        removed
    }

    /// The directory of `path` (`/` or `/a/b`, relative to the mount).
    #[must_use]
    pub fn directory(&self, path: &str) -> PathBuf {
        self.mount.join(path.trim_start_matches('/'))
    }

    /// The id of the cgroup at `path`, if it exists.
    #[must_use]
    pub fn id_of(&self, path: &str) -> Option<u64> {
        let metadata = fs::metadata(self.directory(path)).ok()?;
        metadata.is_dir().then(|| metadata.ino())
    }

    /// The path (relative to the mount) of every cgroup, by id.
    #[must_use]
    pub fn paths_by_id(&self) -> HashMap<u64, String> {
        let mut paths = HashMap::new();
        if let Ok(metadata) = fs::metadata(&self.mount) {
            paths.insert(metadata.ino(), "/".to_owned());
            walk(&self.mount, "", 0, &mut paths);
        }
        paths
    }

    /// The whole tree's `nr_descendants` and `nr_dying_descendants` (from the mount's
    /// `cgroup.stat`): one read that changes when cgroups are made or removed.
    #[must_use]
    pub fn descendant_counts(&self) -> Option<(u64, u64)> {
        let text = fs::read_to_string(self.mount.join("cgroup.stat")).ok()?;
        let count = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.trim().parse().ok())
        };
        Some((count("nr_descendants ")?, count("nr_dying_descendants ")?))
    }
}

/// Adds the cgroups below `directory` (`relative` to the mount) to `paths`. A cgroup's id is
/// its directory's inode number, which the directory listing gives: no `stat` per cgroup.
fn walk(directory: &Path, relative: &str, depth: u32, paths: &mut HashMap<u64, String>) {
    if depth >= MAX_CGROUP_DEPTH {
        return;
    }
    let Ok(entries) = fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let child = format!("{relative}/{}", entry.file_name().to_string_lossy());
            paths.insert(entry.ino(), child.clone());
            walk(&entry.path(), &child, depth + 1, paths);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cgroups_by_the_inode_of_their_directory() {
        let mount = tempfile::tempdir().unwrap();
        fs::create_dir_all(mount.path().join("a/b")).unwrap();
        let tree = CgroupTree::new(mount.path().to_owned());
        let id = tree.id_of("/a/b").unwrap();
        let paths = tree.paths_by_id();
        assert_eq!(paths[&id], "/a/b");
        assert_eq!(paths[&tree.id_of("/").unwrap()], "/");
        assert_eq!(tree.id_of("/missing"), None);
    }

    #[test]
    fn only_a_left_behind_run_cgroup_is_removed_and_only_once_empty() {
        let mount = tempfile::tempdir().unwrap();
        let run = "/svc/sockstats-run-12-345";
        fs::create_dir_all(mount.path().join("svc/sockstats-run-12-345/busy")).unwrap();
        fs::create_dir_all(mount.path().join("svc/nginx.service")).unwrap();
        let tree = CgroupTree::new(mount.path().to_owned());
        tree.remove_when_empty(run);
        tree.remove_when_empty(run);
        tree.remove_when_empty("/svc/nginx.service");
        // Not empty (a child here; processes in a real cgroup): kept for later.
        assert!(tree.remove_empty_left_behind().is_empty());
        fs::remove_dir(mount.path().join("svc/sockstats-run-12-345/busy")).unwrap();
        assert_eq!(tree.remove_empty_left_behind(), [run]);
        assert!(tree.id_of(run).is_none());
        assert!(tree.remove_empty_left_behind().is_empty());
        assert!(
            tree.id_of("/svc/nginx.service").is_some(),
            "not a run's cgroup"
        );
    }
}
