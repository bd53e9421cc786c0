//! Finding the cgroup v2 hierarchy and the cgroup whose subtree the daemon accounts.
//!
//! The unified hierarchy is at /sys/fs/cgroup on pure-v2 hosts and /sys/fs/cgroup/unified on
//! hybrid ones, so it is looked up in /proc/self/mountinfo, never assumed.
mod tree;

pub use tree::CgroupTree;

use std::{
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::{Component, Path, PathBuf},
};

/// How the cgroups `sockstats run` makes for its commands are named: this, then the pid of
/// `sockstats run` and a nonce. The daemon removes such a cgroup (and no other) once it is
/// empty when its run died without cleaning up.
pub const RUN_CGROUP_PREFIX: &str = "sockstats-run-";

/// Is `path` (relative to the cgroup2 mount) a cgroup `sockstats run` made?
#[must_use]
pub fn is_run_cgroup(path: &str) -> bool {
    Path::new(path)
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with(RUN_CGROUP_PREFIX))
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read /proc/self/mountinfo: {0}")]
    MountInfo(#[source] io::Error),
    #[error("no cgroup v2 (cgroup2) file system is mounted; mount one with `mount -t cgroup2 none /sys/fs/cgroup`")]
    NoCgroup2,
    #[error("cgroup root {}: {source}", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup root {} is not inside the cgroup v2 mount {}", path.display(), mount.display())]
    NotInMount { path: PathBuf, mount: PathBuf },
}

/// The cgroup whose subtree is accounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupRoot {
    /// The directory, e.g. /sys/fs/cgroup/unified or a test's child cgroup.
    pub path: PathBuf,
    /// The cgroup v2 id (the directory's inode number).
    pub id: u64,
    /// Depth below the mount; 0 for the mount itself (the whole host).
    pub level: u32,
}

/// Decodes the octal escapes (`\040` for a space) mountinfo uses in paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            if let Ok(value) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount point of the first cgroup2 file system in a mountinfo text.
#[must_use]
pub fn find_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fs_type = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fs_type == "cgroup2").then(|| PathBuf::from(unescape(mount_point)))
    })
}

/// This host's cgroup v2 mount point.
pub fn cgroup2_mount() -> Result<PathBuf, CgroupError> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(CgroupError::MountInfo)?;
    find_cgroup2_mount(&mountinfo).ok_or(CgroupError::NoCgroup2)
}

/// Resolves the accounted cgroup: `path` if given (it must be inside `mount`), else the mount.
pub fn resolve_root(mount: &Path, path: Option<&Path>) -> Result<CgroupRoot, CgroupError> {
    let path = path.unwrap_or(mount);
    let root_error = |source| CgroupError::Root {
        path: path.to_owned(),
        source,
    };
    let canonical = fs::canonicalize(path).map_err(root_error)?;
    let mount = fs::canonicalize(mount).map_err(root_error)?;
    let relative = canonical
        .strip_prefix(&mount)
        .map_err(|_| CgroupError::NotInMount {
            path: canonical.clone(),
            mount: mount.clone(),
        })?;
    let level = relative
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let id = fs::metadata(&canonical).map_err(root_error)?.ino();
    Ok(CgroupRoot {
        path: canonical,
        id,
        level: u32::try_from(level).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_on_hybrid_and_pure_hosts() {
        let hybrid = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        assert_eq!(
            find_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure =
            "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            find_cgroup2_mount(pure),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let spaced = "29 23 0:26 / /mnt/my\\040cgroups rw - cgroup2 none rw\n";
        assert_eq!(
            find_cgroup2_mount(spaced),
            Some(PathBuf::from("/mnt/my cgroups"))
        );
        assert_eq!(
            find_cgroup2_mount("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"),
            None
        );
    }

    #[test]
    fn resolves_level_and_refuses_paths_outside_the_mount() {
        let mount = tempfile::tempdir().unwrap();
        let child = mount.path().join("a/b");
        fs::create_dir_all(&child).unwrap();
        let root = resolve_root(mount.path(), Some(&child)).unwrap();
        assert_eq!(root.level, 2);
        assert_eq!(root.id, fs::metadata(&child).unwrap().ino());
        assert_eq!(resolve_root(mount.path(), None).unwrap().level, 0);
        let elsewhere = tempfile::tempdir().unwrap();
        assert!(matches!(
            resolve_root(mount.path(), Some(elsewhere.path())),
            Err(CgroupError::NotInMount { .. })
        ));
    }
}
