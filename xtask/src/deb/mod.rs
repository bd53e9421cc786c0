//! `cargo xtask deb`: a Debian package, `target/deb/sockstats_<version>_<arch>.deb`, built with
//! `dpkg-deb --build` from a staged `cargo xtask install --prefix /usr` plus `DEBIAN/` (control,
//! conffiles and maintainer scripts that start nothing); and the package check `cargo xtask
//! test` runs as root: `dpkg-deb --info`/`--contents`, a real `apt-get install` and `apt-get
//! remove --purge`.
mod check;
mod control;

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{install, run, workspace_root};
use control::{
    copyright, depends, maintainer, render_control, render_script, Control, POSTINST, POSTRM, PRERM,
};

pub use check::{check_built, check_package};

/// What to package.
#[derive(Debug, clap::Args)]
pub struct DebArgs {
    /// Package already built binaries from this directory (with `examples/man_pages`) instead
    /// of building in release mode.
    #[arg(long, value_name = "DIR")]
    pub binaries: Option<PathBuf>,
    /// Then, as root, check it as `cargo xtask test` does: `dpkg-deb --info`/`--contents`, a
    /// real `apt-get install`, what it installed and started (nothing), `apt-get remove
    /// --purge`, what is left (nothing). Refuses where a `sockstats` package is installed.
    #[arg(long)]
    pub check: bool,
}

/// The package's name.
pub const PACKAGE: &str = "sockstats";

/// Where the package puts everything but the rules file.
const PREFIX: &str = "/usr";

/// The daemon's defaults that the maintainer scripts deal with on remove and purge.
const BPFFS_DIR: &str = "/sys/fs/bpf/sockstats";

const STATE_DIR: &str = "/var/lib/sockstats";

const COPYRIGHT: &str = "/usr/share/doc/sockstats/copyright";

/// The Debian version of a Cargo version: a pre-release (`0.2.0-rc.1`) sorts before its
/// release in Cargo, which Debian spells with a tilde (`0.2.0~rc.1`).
fn debian_version(cargo_version: &str) -> String {
    cargo_version.replacen('-', "~", 1)
}

/// The package's version: the workspace's.
pub fn version() -> String {
    debian_version(env!("CARGO_PKG_VERSION"))
}

/// This machine's Debian architecture (`dpkg --print-architecture`).
pub fn architecture() -> Result<String> {
    let output = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .context("cannot run `dpkg --print-architecture` (is this Debian?)")?;
    if !output.status.success() {
        bail!("`dpkg --print-architecture` failed");
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `target/deb/sockstats_<version>_<arch>.deb`, relative to the workspace root.
pub fn deb_file(arch: &str) -> PathBuf {
    PathBuf::from(format!("target/deb/{PACKAGE}_{}_{arch}.deb", version()))
}

/// Every file the package holds (absolute paths; man pages compressed, as Debian ships them).
pub fn package_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = install::installed_files(Path::new(PREFIX))
        .into_iter()
        .map(|path| {
            if path.starts_with("/usr/share/man") {
                PathBuf::from(format!("{}.gz", path.display()))
            } else {
                path
            }
        })
        .collect();
    files.push(PathBuf::from(COPYRIGHT));
    files
}

/// The `DEBIAN/conffiles` list: dpkg keeps a user's edits of these on upgrade (asking when
/// the packaged sample changed too) and deletes them only on purge.
pub(super) fn conffiles() -> String {
    install::EDITED_FILES
        .iter()
        .flat_map(|(path, _)| [*path, "\n"])
        .collect()
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

/// `path` (absolute) below `root`.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").expect("package paths are absolute"))
}

/// Sum of the files' sizes in KiB, each rounded up, as `dpkg-gencontrol` counts.
fn installed_size_kib(root: &Path, files: &[PathBuf]) -> Result<u64> {
    let mut total = 0;
    for file in files {
        let path = under(root, file);
        let size = fs::metadata(&path)
            .with_context(|| format!("{} was not staged", path.display()))?
            .len();
        total += size.div_ceil(1024);
    }
    Ok(total)
}

/// Builds the package from the binaries in `binaries`; returns its path (workspace-relative).
pub fn build(binaries: &Path) -> Result<PathBuf> {
    let root = workspace_root();
    let arch = architecture()?;
    let staging = root.join("target/deb/root");
    if staging.exists() {
        fs::remove_dir_all(&staging)
            .with_context(|| format!("cannot remove {}", staging.display()))?;
    }
    install::install(
        &install::InstallArgs {
            prefix: PathBuf::from(PREFIX),
            destdir: Some(staging.clone()),
            binaries: Some(binaries.to_owned()),
        },
        || unreachable!("the binaries are given"),
    )?;
    for page in install::MAN_PAGES {
        let staged = staging.join("usr/share/man").join(page);
        run(Command::new("gzip").arg("-9nf").arg(&staged))?;
    }
    // As Debian's packages are (dh_strip): no symbol tables or debug info.
    for binary in ["sockstatsd", "sockstats"] {
        run(Command::new("strip")
            .arg("--strip-unneeded")
            .arg(staging.join("usr/bin").join(binary)))?;
    }
    write(&under(&staging, Path::new(COPYRIGHT)), &copyright(), 0o644)?;

    let files = package_files();
    let executables: Vec<Vec<u8>> = ["sockstatsd", "sockstats"]
        .iter()
        .map(|name| {
            let path = staging.join("usr/bin").join(name);
            fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
        })
        .collect::<Result<_>>()?;
    let version = version();
    let control = render_control(&Control {
        version: &version,
        arch: &arch,
        installed_size_kib: installed_size_kib(&staging, &files)?,
        depends: &depends(&executables),
        maintainer: &maintainer(),
    });
    let debian = staging.join("DEBIAN");
    write(&debian.join("control"), &control, 0o644)?;
    write(&debian.join("conffiles"), &conffiles(), 0o644)?;
    write(&debian.join("postinst"), &render_script(POSTINST), 0o755)?;
    write(&debian.join("prerm"), &render_script(PRERM), 0o755)?;
    write(&debian.join("postrm"), &render_script(POSTRM), 0o755)?;
    // Staged directories get the umask's modes; packaged ones are 0755.
    run(Command::new("find")
        .arg(&staging)
        .args(["-type", "d", "-exec", "chmod", "0755", "{}", "+"]))?;

    let deb = deb_file(&arch);
    run(Command::new("dpkg-deb")
        .current_dir(&root)
        .args(["--root-owner-group", "--build"])
        .arg(&staging)
        .arg(&deb))?;
    eprintln!("xtask: built {}", deb.display());
    Ok(deb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_debian_ordering() {
        assert_eq!(debian_version("0.1.0"), "0.1.0");
        assert_eq!(debian_version("0.2.0-rc.1"), "0.2.0~rc.1");
    }

    #[test]
    fn the_package_holds_binaries_unit_config_files_completions_man_pages_and_copyright() {
        let files = package_files();
        for file in [
            "/usr/bin/sockstatsd",
            "/usr/bin/sockstats",
            "/usr/lib/systemd/system/sockstatsd.service",
            "/etc/sockstats/rules.conf",
            "/etc/sockstats/sockstats.conf",
            "/usr/share/bash-completion/completions/sockstats",
            "/usr/share/zsh/vendor-completions/_sockstats",
            "/usr/share/fish/vendor_completions.d/sockstats.fish",
            "/usr/share/man/man1/sockstats.1.gz",
            "/usr/share/man/man1/sockstats-get.1.gz",
            "/usr/share/man/man8/sockstatsd.8.gz",
            "/usr/share/doc/sockstats/copyright",
        ] {
            assert!(files.contains(&PathBuf::from(file)), "{file} missing");
        }
        assert_eq!(files.len(), 9 + install::MAN_PAGES.len());
    }
}
