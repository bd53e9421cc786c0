//! The guests' initramfs: busybox (from Debian's busybox-static), the static `sockstatsd`,
//! `sockstats` and `vm-smoke`, and an `/init` that mounts what the daemon needs, brings up
//! loopback (the guests have no other network device), runs the suite and powers off.
//! Written directly in the cpio "newc" format the kernel unpacks (the host has no cpio).
use std::{fs, path::Path};

use anyhow::{Context as _, Result};

/// `/init`. Every line's output reaches the host over the serial console.
const INIT: &str = "#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /tmp /run /var/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
echo \"VMTEST kernel $(uname -r)\"
SOCKSTATSD=/sockstatsd /vm-smoke
echo \"VMTEST exit $?\"
poweroff -f
";

/// A newc archive being written.
struct Newc {
    out: Vec<u8>,
    next_inode: u32,
}

impl Newc {
    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.next_inode += 1;
        let name_size = u32::try_from(name.len() + 1).context("name too long")?;
        let file_size = u32::try_from(data.len()).context("file too large for newc")?;
        let fields = [
            self.next_inode,
            mode,
            0, // uid
            0, // gid
            1, // nlink
            0, // mtime
            file_size,
            0, // dev major
            0, // dev minor
            0, // rdev major
            0, // rdev minor
            name_size,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
        Ok(())
    }
}

const DIR: u32 = 0o040_755;
const EXECUTABLE: u32 = 0o100_755;

/// Writes the initramfs to `out` from the busybox binary and the static binaries in `bins`.
pub fn write(out: &Path, busybox: &Path, bins: &Path) -> Result<()> {
    let mut archive = Newc {
        out: Vec::new(),
        next_inode: 0,
    };
    for dir in ["bin", "proc", "sys", "dev", "tmp", "run", "var", "var/lib"] {
        archive.entry(dir, DIR, &[])?;
    }
    let read = |path: &Path| fs::read(path).with_context(|| format!("reading {}", path.display()));
    archive.entry("bin/busybox", EXECUTABLE, &read(busybox)?)?;
    for name in ["sockstatsd", "sockstats", "vm-smoke"] {
        archive.entry(name, EXECUTABLE, &read(&bins.join(name))?)?;
    }
    archive.entry("init", EXECUTABLE, INIT.as_bytes())?;
    archive.entry("TRAILER!!!", 0, &[])?;
    fs::write(out, archive.out).with_context(|| format!("writing {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newc_entries_are_aligned_and_sized() {
        let mut archive = Newc {
            out: Vec::new(),
            next_inode: 0,
        };
        archive.entry("init", EXECUTABLE, b"abc").unwrap();
        // 110-byte header + "init\0" = 115, padded to 116; 3 data bytes padded to 4.
        assert_eq!(archive.out.len(), 120);
        assert_eq!(&archive.out[..6], b"070701");
        assert_eq!(&archive.out[54..62], b"00000003"); // file size
        assert_eq!(&archive.out[94..102], b"00000005"); // name size
        assert_eq!(&archive.out[110..115], b"init\0");
    }
}
