//! The Debian kernels vm-test boots: which package each name means, fetching it once into
//! `target/vm/kernels/<name>/`, and unpacking the kernel image.
//!
//! The cloud flavour is used (a third of the size, same BPF and networking configuration).
//! Where the kernel is compressed with zstd (6.12 and later) the uncompressed ELF `vmlinux`
//! is extracted and booted directly (QEMU boots it through its PVH note): the decompressor is
//! slow under TCG. The LZ4 kernels of 5.10 and 6.1 boot as they are.
use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, SystemTime},
};

use anyhow::{bail, Context as _, Result};

use super::apt::PrivateApt;

/// A kernel vm-test knows how to fetch.
#[derive(Debug, Clone, Copy)]
pub struct KernelSpec {
    /// What the user types: `5.10`, `6.1`, `6.12`, `newest`.
    pub name: &'static str,
    /// Package names are `<prefix><version><suffix>`; the highest version wins.
    prefix: &'static str,
    suffix: &'static str,
}

/// The kernels `cargo xtask vm-test` boots by default, oldest first.
pub const KERNELS: [KernelSpec; 4] = [
    // bullseye-security
    KernelSpec {
        name: "5.10",
        prefix: "linux-image-5.10.0-",
        suffix: "-cloud-amd64",
    },
    // bookworm-security
    KernelSpec {
        name: "6.1",
        prefix: "linux-image-6.1.0-",
        suffix: "-cloud-amd64",
    },
    // bookworm-security (the backport of trixie's kernel)
    KernelSpec {
        name: "6.12",
        prefix: "linux-image-6.12.",
        suffix: "+deb12-cloud-amd64",
    },
    // sid: the newest kernel Debian ships (linux-binary-* holds the image since 7.x)
    KernelSpec {
        name: "newest",
        prefix: "linux-binary-",
        suffix: "-cloud-amd64",
    },
];

/// A fetched kernel, ready to boot.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub spec: KernelSpec,
    /// The Debian package it came from.
    pub package: String,
    /// Its release (`uname -r`).
    pub release: String,
    /// What QEMU's `-kernel` gets: `vmlinux` where extracted, else `vmlinuz`.
    pub image: PathBuf,
}

/// A cached kernel is looked up again after this long (Debian ships security updates).
const CACHE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The numbers in `name` between `prefix` and `suffix`, if the middle is a version
/// (`46`, `117`, `7.2.13+deb14`) and not another flavour (`unsigned-…`, `…-rt`).
fn version_of(name: &str, spec: &KernelSpec) -> Option<Vec<u32>> {
    let middle = name.strip_prefix(spec.prefix)?.strip_suffix(spec.suffix)?;
    let ok = middle
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | 'd' | 'e' | 'b'));
    if !ok || !middle.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    middle
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().ok())
        .collect()
}

/// The newest package for `spec` among `names`.
fn newest(names: &[String], spec: &KernelSpec) -> Option<String> {
    names
        .iter()
        .filter_map(|name| version_of(name, spec).map(|v| (v, name)))
        .max()
        .map(|(_, name)| name.clone())
}

fn is_fresh(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < CACHE_MAX_AGE)
}

/// The kernel `spec`, from the cache under `vm_dir` or fetched with `apt`.
pub fn fetch(spec: KernelSpec, vm_dir: &Path, apt: &mut Option<PrivateApt>) -> Result<Kernel> {
    let dir = vm_dir.join("kernels").join(spec.name);
    let stamp = dir.join("package");
    if is_fresh(&stamp) {
        if let Some(kernel) = cached(spec, &dir) {
            return Ok(kernel);
        }
    }
    let apt = PrivateApt::get_or_init(apt, &vm_dir.join("apt"))?;
    let names = apt.names_with_prefix(spec.prefix)?;
    let Some(package) = newest(&names, &spec) else {
        bail!(
            "no Debian package {}<version>{} in bullseye-security, bookworm-security or sid",
            spec.prefix,
            spec.suffix
        );
    };
    if fs::read_to_string(&stamp).is_ok_and(|p| p.trim() == package) {
        if let Some(kernel) = cached(spec, &dir) {
            fs::write(&stamp, &package)?; // still the newest: fresh again
            return Ok(kernel);
        }
    }
    eprintln!("xtask: vm-test: fetching {package}");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    let deb = apt.download(&package, &vm_dir.join("debs"))?;
    unpack(&deb, &dir)?;
    fs::remove_file(&deb).context("removing the downloaded .deb")?;
    fs::write(&stamp, &package)?;
    cached(spec, &dir).with_context(|| format!("{package} holds no kernel image"))
}

/// The kernel unpacked in `dir`, if it is complete.
fn cached(spec: KernelSpec, dir: &Path) -> Option<Kernel> {
    let package = fs::read_to_string(dir.join("package")).ok()?;
    let release = fs::read_to_string(dir.join("release")).ok()?;
    let image = [dir.join("vmlinux"), dir.join("vmlinuz")]
        .into_iter()
        .find(|p| p.exists())?;
    Some(Kernel {
        spec,
        package: package.trim().to_owned(),
        release: release.trim().to_owned(),
        image,
    })
}

/// Takes the kernel image out of `deb` into `dir` (`vmlinuz`, `release`, and `vmlinux` where
/// it can be extracted).
fn unpack(deb: &Path, dir: &Path) -> Result<()> {
    let tree = dir.join("tree");
    fs::create_dir_all(&tree)?;
    let mut tar = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let status = Command::new("tar")
        .args(["-x", "-C"])
        .arg(&tree)
        .args([
            "--wildcards",
            "./boot/vmlinuz-*",
            "./usr/lib/modules/*/vmlinuz",
        ])
        .stdin(tar.stdout.take().context("dpkg-deb stdout")?)
        .stderr(Stdio::null())
        .status()
        .context("running tar")?;
    let _ = tar.wait();
    // tar fails on the pattern the package does not have; what matters is what was found.
    let _ = status;
    let (image, release) = find_image(&tree)?;
    fs::rename(&image, dir.join("vmlinuz"))?;
    fs::write(dir.join("release"), &release)?;
    fs::remove_dir_all(&tree)?;
    if let Some(vmlinux) = extract_vmlinux(&dir.join("vmlinuz"))? {
        fs::write(dir.join("vmlinux"), vmlinux)?;
    }
    Ok(())
}

/// The kernel image in an unpacked package and its release.
fn find_image(tree: &Path) -> Result<(PathBuf, String)> {
    if let Ok(entries) = fs::read_dir(tree.join("boot")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(release) = name.strip_prefix("vmlinuz-") {
                return Ok((entry.path(), release.to_owned()));
            }
        }
    }
    if let Ok(entries) = fs::read_dir(tree.join("usr/lib/modules")) {
        for entry in entries.flatten() {
            let image = entry.path().join("vmlinuz");
            if image.exists() {
                let release = entry.file_name().to_string_lossy().into_owned();
                return Ok((image, release));
            }
        }
    }
    bail!("no vmlinuz in the package")
}

/// The uncompressed ELF kernel inside a zstd-compressed bzImage, or `None` for other
/// compressions (booted as they are). The payload's place is in the boot protocol header
/// (2.08+): <https://docs.kernel.org/arch/x86/boot.html>.
fn extract_vmlinux(bzimage: &Path) -> Result<Option<Vec<u8>>> {
    let data = fs::read(bzimage)?;
    let word = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let setup_sects = match data.get(0x1f1) {
        Some(0) | None => 4,
        Some(n) => usize::from(*n),
    };
    let (Some(offset), Some(length)) = (word(0x248), word(0x24c)) else {
        return Ok(None);
    };
    let start = (setup_sects + 1) * 512 + offset;
    let Some(payload) = data.get(start..start + length) else {
        return Ok(None);
    };
    if !payload.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(None);
    }
    let mut zstd = Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running zstd")?;
    let mut stdin = zstd.stdin.take().context("zstd stdin")?;
    let payload = payload.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        // The payload ends with the uncompressed size, which zstd reports as trailing data.
        let _ = stdin.write_all(&payload);
    });
    let out = zstd.wait_with_output().context("zstd")?;
    let _ = writer.join();
    // zstd exits non-zero for the trailing size word; the ELF it wrote before is whole.
    Ok(out.stdout.starts_with(b"\x7fELF").then_some(out.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_newest_abi_of_the_flavour() {
        let names: Vec<String> = [
            "linux-image-6.12.99+deb12-cloud-amd64",
            "linux-image-6.12.117+deb12-cloud-amd64",
            "linux-image-6.12.117+deb12-rt-amd64",
            "linux-image-6.12.117+deb12-cloud-amd64-dbg",
            "linux-image-6.12.111+deb12-cloud-amd64",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(
            newest(&names, &KERNELS[2]).as_deref(),
            Some("linux-image-6.12.117+deb12-cloud-amd64")
        );
        let sid: Vec<String> = [
            "linux-binary-7.2.13+deb14-cloud-amd64",
            "linux-binary-unsigned-7.2.13+deb14-cloud-amd64",
            "linux-binary-7.10.1+deb14-cloud-amd64",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(
            newest(&sid, &KERNELS[3]).as_deref(),
            Some("linux-binary-7.10.1+deb14-cloud-amd64")
        );
        assert_eq!(newest(&sid, &KERNELS[0]), None);
    }
}
