//! The daemon's Unix socket file: a stale file is replaced only when no daemon answers on it,
//! and the mode is set before `listen`, so no client ever sees a wider mode.
use std::{
    fs, io,
    os::unix::{
        fs::{FileTypeExt as _, PermissionsExt as _},
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
};

use nix::sys::socket::{
    bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};

#[derive(Debug, thiserror::Error)]
pub enum SocketFileError {
    #[error("another sockstatsd is already serving on {}; stop it first or choose another --socket", path.display())]
    InUse { path: PathBuf },
    #[error("{} exists and is not a socket; refusing to remove it", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot set up the socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Refuses early (before the programs load) when another daemon answers on `path`.
pub fn check_not_in_use(path: &Path) -> Result<(), SocketFileError> {
    if UnixStream::connect(path).is_ok() {
        return Err(SocketFileError::InUse {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Binds a listening socket at `path` with permissions `mode` and, if given, group `gid`.
pub fn bind_listener(
    path: &Path,
    mode: u32,
    gid: Option<u32>,
) -> Result<UnixListener, SocketFileError> {
    let io_error = |source: io::Error| SocketFileError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error)?;
    }
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(SocketFileError::InUse {
                    path: path.to_owned(),
                });
            }
            log::info!("removing stale socket {}", path.display());
            fs::remove_file(path).map_err(io_error)?;
        }
        Ok(_) => {
            return Err(SocketFileError::NotASocket {
                path: path.to_owned(),
            })
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(error)),
    }
    let nix_error = |e: nix::Error| io_error(io::Error::from(e));
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(nix_error)?;
    let address = UnixAddr::new(path).map_err(nix_error)?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &address).map_err(nix_error)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io_error)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_error)?;
    listen(&fd, Backlog::new(1024).map_err(nix_error)?).map_err(nix_error)?;
    Ok(UnixListener::from(fd))
}
