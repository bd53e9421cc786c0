//! Making sure the pin directory lives on a BPF file system, mounting one at /sys/fs/bpf if a
//! fresh machine has none.
use std::{
    fs, io,
    path::{Path, PathBuf},
};

use nix::{
    fcntl::{Flock, FlockArg},
    mount::{mount, MsFlags},
    sys::statfs::{statfs, BPF_FS_MAGIC},
};

/// Where bpffs is mounted by convention.
pub const BPFFS_MOUNT: &str = "/sys/fs/bpf";

#[derive(Debug, thiserror::Error)]
pub enum BpffsError {
    #[error("cannot inspect {}: {source}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot mount bpffs at {BPFFS_MOUNT}: {source} (mount it with `mount -t bpf bpf {BPFFS_MOUNT}`)")]
    Mount {
        #[source]
        source: io::Error,
    },
    #[error("{} is not on a BPF file system; choose a --bpffs-dir under {BPFFS_MOUNT} or mount one with `mount -t bpf bpf <dir>`", path.display())]
    NotBpffs { path: PathBuf },
    #[error("another sockstatsd owns the pins under {}: stop it first, or give this one its own --bpffs-dir", path.display())]
    Locked { path: PathBuf },
    #[error("cannot create pin directory {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn is_bpffs(path: &Path) -> Result<bool, BpffsError> {
    let stat = statfs(path).map_err(|e| BpffsError::Stat {
        path: path.to_owned(),
        source: io::Error::from(e),
    })?;
    Ok(stat.filesystem_type() == BPF_FS_MAGIC)
}

/// The deepest existing ancestor of `path` (or `path` itself).
fn existing_ancestor(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}

/// Ensures `dir` exists on a bpffs, mounting bpffs at /sys/fs/bpf when `dir` is below it and
/// nothing is mounted there yet.
pub fn prepare_pin_dir(dir: &Path) -> Result<(), BpffsError> {
    if !is_bpffs(existing_ancestor(dir))? {
        if dir.starts_with(BPFFS_MOUNT) && !is_bpffs(Path::new(BPFFS_MOUNT)).unwrap_or(false) {
            fs::create_dir_all(BPFFS_MOUNT).map_err(|source| BpffsError::Create {
                path: BPFFS_MOUNT.into(),
                source,
            })?;
            mount(
                Some("bpf"),
                BPFFS_MOUNT,
                Some("bpf"),
                MsFlags::empty(),
                None::<&str>,
            )
            .map_err(|e| BpffsError::Mount {
                source: io::Error::from(e),
            })?;
            log::info!("mounted bpffs at {BPFFS_MOUNT}");
        }
        if !is_bpffs(existing_ancestor(dir))? {
            return Err(BpffsError::NotBpffs {
                path: dir.to_owned(),
            });
        }
    }
    fs::create_dir_all(dir).map_err(|source| BpffsError::Create {
        path: dir.to_owned(),
        source,
    })
}

/// The pin directory, locked for one daemon (`flock`, released when the process exits, also on
/// a crash): two daemons sharing pins would both write the rules and fight over the links.
pub fn lock_pin_dir(dir: &Path) -> Result<Flock<fs::File>, BpffsError> {
    let directory = fs::File::open(dir).map_err(|source| BpffsError::Stat {
        path: dir.to_owned(),
        source,
    })?;
    Flock::lock(directory, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            BpffsError::Locked {
                path: dir.to_owned(),
            }
        } else {
            BpffsError::Stat {
                path: dir.to_owned(),
                source: io::Error::from(errno),
            }
        }
    })
}
