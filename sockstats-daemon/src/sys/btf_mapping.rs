//! A read-only mapping of the running kernel's BTF, the one file the daemon maps (the BTF
//! readers in `kernel::vmlinux` and `kernel::btf` use it as a byte slice).
//!
//! Linux maps the file since 6.16 (`btf_sysfs_vmlinux_mmap`, read-only and private only):
//! <https://elixir.bootlin.com/linux/v6.16/source/kernel/bpf/sysfs_btf.c>.
use std::{
    fs::File,
    io,
    ops::Deref,
    os::fd::AsRawFd,
    ptr::{self, NonNull},
    slice,
};

/// Where the running kernel's BTF is.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

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
    /// Maps [`KERNEL_BTF`], where the kernel allows it (Linux 6.16+).
    pub fn kernel_btf() -> io::Result<Self> {
        let file = File::open(KERNEL_BTF)?;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(0);
        Self::new(&file, len)
    }

    /// Maps `len` bytes of `file`, which must be [`KERNEL_BTF`] (see the type's docs).
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
