//! The bytes of the running kernel's BTF, `/sys/kernel/btf/vmlinux` (5-6 MiB): mapped where
//! the kernel allows it, else read. Mapped, they are the kernel's own pages, which it maps
//! with `remap_pfn_range`: they add nothing to the daemon's RSS (measured on 6.18); read,
//! they are a heap buffer as large as the file. The mapping itself (its `unsafe`) is
//! [`crate::sys::btf_mapping`]; what the bytes mean is [`super::btf`]'s business.
//!
//! Linux maps the file since 6.16 (`btf_sysfs_vmlinux_mmap`, read-only and private only):
//! <https://elixir.bootlin.com/linux/v6.16/source/kernel/bpf/sysfs_btf.c>.
use std::{fs, io, ops::Deref, path::Path};

pub use crate::sys::btf_mapping::Mapping;
/// Where the running kernel's BTF is.
pub use crate::sys::btf_mapping::KERNEL_BTF as PATH;

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
        match Mapping::kernel_btf() {
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
