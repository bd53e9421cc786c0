//! The bytes of the running kernel's BTF, `/sys/kernel/btf/vmlinux` (5-6 MiB): mapped where
//! the kernel allows it, else read. Mapped, they are the kernel's own pages, which it maps
//! with `remap_pfn_range`: they add nothing to the daemon's RSS (measured on 6.18); read,
//! they are a heap buffer as large as the file. The mapping (and so the one `unsafe` of the
//! BTF readers) is here; what the bytes mean is [`super::btf`]'s business.
//!
//! Linux maps the file since 6.16 (`btf_sysfs_vmlinux_mmap`, read-only and private only):
//! <https://elixir.bootlin.com/linux/v6.16/source/kernel/bpf/sysfs_btf.c>.
use std::{
    fs::{self, File},
    io,
    ops::Deref,
    os::fd::AsRawFd,
    path::Path,
    ptr::{self, NonNull},
    slice,
};

/// Where the running kernel's BTF is.
pub const PATH: &str = "/sys/kernel/btf/vmlinux";

/// The bytes of a BTF blob.
pub enum BtfBytes {
    /// The running kernel's BTF, mapped.
    Mapped(Mapping),
    /// A copy in memory: any other blob, or the kernel's where it cannot be mapped.
    Read(Vec<u8>),
}

impl BtfBytes {
    /// The running kernel's BTF: mapped if the kernel allows it, else read.
    pub fn from_sys_fs() -> io::Result<Self> {
        let file = File::open(PATH)?;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(0);
        match Mapping::new(&file, len) {
            Ok(mapping) => Ok(Self::Mapped(mapping)),
            Err(error) => {
                log::debug!("cannot map {PATH} ({error}); reading it");
                Self::read(Path::new(PATH))
            }
        }
    }

    /// The file at `path`, read.
    pub fn read(path: &Path) -> io::Result<Self> {
        fs::read(path).map(Self::Read)
    }

    /// Is this the mapped kernel BTF (which takes no memory of the daemon's)?
    #[must_use]
    pub fn is_mapped(&self) -> bool {
        matches!(self, Self::Mapped(_))
    }
}

impl From<Vec<u8>> for BtfBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Read(bytes)
    }
}

impl Deref for BtfBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(mapping) => mapping,
            Self::Read(bytes) => bytes,
        }
    }
}

/// A read-only private mapping of the whole of `/sys/kernel/btf/vmlinux`, unmapped on drop.
///
/// Only that file is mapped: the kernel's BTF never changes and cannot be truncated, so the
/// mapped bytes stay what they were for as long as they are borrowed (a mapping of an ordinary
/// file could change under a `&[u8]`, or fault on truncation).
pub struct Mapping {
    start: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(file: &File, len: usize) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "empty file"));
        }
        // SAFETY: a new mapping at an address the kernel picks, so it overlaps no memory that
        // Rust owns; `file` is a valid descriptor for the duration of the call (the mapping
        // does not need it afterwards).
        let start = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = NonNull::new(start.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Self { start, len })
    }
}

impl Deref for Mapping {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `start..start + len` is mapped readable until `self` is dropped, and no
        // borrow of `self` outlives it; nothing writes to it (a read-only private mapping of
        // the kernel's BTF, which the kernel never changes).
        unsafe { slice::from_raw_parts(self.start.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `self` owns; the slices it lent borrowed `self`,
        // so none is left.
        let result = unsafe { libc::munmap(self.start.as_ptr().cast(), self.len) };
        if result != 0 {
            log::warn!(
                "cannot unmap the kernel's BTF: {}",
                io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_btf_reads_the_same_mapped_or_not() {
        let Ok(bytes) = BtfBytes::from_sys_fs() else {
            return; // no BTF on this machine
        };
        let read = BtfBytes::read(Path::new(PATH)).unwrap();
        assert!(!read.is_mapped());
        assert_eq!(&*bytes, &*read);
    }
}
