//! The package check `cargo xtask test` runs as root: `dpkg-deb --info`/`--contents`, a real
//! `apt-get install`, what it installed and started, and `apt-get remove --purge`.
use std::{fs, path::Path, process::Command};

use anyhow::{bail, Context as _, Result};

use super::{
    architecture, deb_file, package_files, version, BPFFS_DIR, PACKAGE, PREFIX, STATE_DIR,
};
use crate::{install, run, workspace_root};

pub(super) fn output(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether dpkg has `sockstats` installed (or half-installed, or its config files left).
pub(super) fn dpkg_knows_package() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Status}", PACKAGE])
        .output()
        .is_ok_and(|output| {
            output.status.success()
                && String::from_utf8_lossy(&output.stdout).trim() != "not-installed"
        })
}

/// Pids of processes running the packaged daemon.
pub(super) fn packaged_daemons() -> Vec<u32> {
    let daemon = Path::new(PREFIX).join("bin/sockstatsd");
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let exe = fs::read_link(entry.path().join("exe")).ok()?;
            (exe == daemon).then_some(pid)
        })
        .collect()
}

/// Refuses to touch a machine where the test's install and purge would change what is
/// someone's: an installed `sockstats`, or the default pins and state dir (removing the
/// package detaches the pinned programs, purging deletes the state dir).
pub(super) fn refuse_if_in_use() -> Result<()> {
    if dpkg_knows_package() {
        bail!(
            "a `{PACKAGE}` package is installed here (`dpkg -s {PACKAGE}`): the package test \
             installs and purges its own and will not replace yours; remove it first \
             (`apt-get remove --purge {PACKAGE}`) or run the test elsewhere"
        );
    }
    for (path, what) in [
        (
            BPFFS_DIR,
            "pinned programs of a sockstatsd with the default --bpffs-dir",
        ),
        (
            STATE_DIR,
            "the state of a sockstatsd with the default --state-dir",
        ),
    ] {
        if Path::new(path).exists() {
            bail!(
                "{path} exists ({what}): the package test's remove and purge would delete it; \
                 move it away (for the pins: `sockstatsd --uninstall`) or run the test elsewhere"
            );
        }
    }
    let edited = |path: &Path| {
        install::EDITED_FILES
            .iter()
            .any(|(file, _)| path == Path::new(file))
    };
    for installed in package_files() {
        if installed.exists() && !edited(&installed) {
            bail!(
                "{} exists and belongs to no package: the package test would overwrite it",
                installed.display()
            );
        }
    }
    for (file, _) in install::EDITED_FILES {
        if Path::new(file).exists() {
            bail!(
                "{file} exists (from `cargo xtask install`?): the package test's purge would delete it"
            );
        }
    }
    Ok(())
}

/// `dpkg-deb --info` and `--contents`: the control fields, the conffile, every expected path
/// with its owner and mode, and the maintainer scripts.
pub(super) fn check_archive(deb: &Path, arch: &str) -> Result<()> {
    let info = output(Command::new("dpkg-deb").arg("--info").arg(deb))?;
    for field in [
        format!("Package: {PACKAGE}"),
        format!("Version: {}", version()),
        format!("Architecture: {arch}"),
        "Depends: libc6".to_owned(),
    ] {
        if !info.lines().any(|line| line.trim().starts_with(&field)) {
            bail!("`dpkg-deb --info` lacks `{field}`:\n{info}");
        }
    }
    for script in ["postinst", "prerm", "postrm", "conffiles"] {
        if !info.contains(script) {
            bail!("`dpkg-deb --info` lists no {script}:\n{info}");
        }
    }
    let conffiles = output(
        Command::new("dpkg-deb")
            .arg("--info")
            .arg(deb)
            .arg("conffiles"),
    )?;
    if conffiles != super::conffiles() {
        bail!(
            "the conffiles are {conffiles:?}, not {:?}",
            super::conffiles()
        );
    }
    let contents = output(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
    let entries: Vec<(&str, &str, &str)> = contents
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((*fields.first()?, *fields.get(1)?, *fields.last()?))
        })
        .collect();
    for file in package_files() {
        let name = format!(".{}", file.display());
        let Some((mode, owner, _)) = entries.iter().find(|(_, _, path)| *path == name) else {
            bail!("the package lacks {}:\n{contents}", file.display());
        };
        let want = if file.starts_with("/usr/bin") {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        if *mode != want || *owner != "root/root" {
            bail!(
                "{} is {mode} {owner} in the package, not {want} root/root",
                file.display()
            );
        }
    }
    let expected: Vec<String> = package_files()
        .iter()
        .map(|file| format!(".{}", file.display()))
        .collect();
    for (mode, _, path) in &entries {
        if !mode.starts_with('d') && !expected.iter().any(|name| name == path) {
            bail!("the package holds {path}, which is not in xtask's list of package files");
        }
    }
    eprintln!(
        "xtask: {} holds the {} expected files",
        deb.display(),
        expected.len()
    );
    Ok(())
}

/// Builds the package of the debug binaries, checks it with `dpkg-deb`, installs it with
/// `apt-get`, checks what it installed and that it started nothing, purges it and checks that
/// nothing of it is left. Root only.
pub fn check_package(binaries: &Path) -> Result<()> {
    eprintln!("xtask: the Debian package: dpkg-deb checks, a real install and purge");
    refuse_if_in_use()?;
    run(crate::xtask().args(["deb", "--binaries"]).arg(binaries))?;
    check_built()
}

/// Checks the package `cargo xtask deb` built: [`check_package`] without the build.
pub fn check_built() -> Result<()> {
    refuse_if_in_use()?;
    let root = workspace_root();
    let arch = architecture()?;
    let deb = deb_file(&arch);
    check_archive(&root.join(&deb), &arch)?;
    let installed = run(Command::new("apt-get")
        .current_dir(&root)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends"])
        .arg(format!("./{}", deb.display())))
    .and_then(|()| check_installed());
    // Purged also when a check failed (or the install stopped halfway): the test leaves
    // nothing behind.
    let removed = if dpkg_knows_package() {
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["remove", "--purge", "-y", PACKAGE]))
    } else {
        Ok(())
    };
    installed?;
    removed?;
    check_removed()?;
    eprintln!("xtask: the package installs, starts nothing and purges cleanly");
    Ok(())
}

pub(super) fn check_installed() -> Result<()> {
    for file in package_files() {
        if !file.is_file() {
            bail!("`apt-get install` did not install {}", file.display());
        }
    }
    let daemons = packaged_daemons();
    if !daemons.is_empty() {
        bail!("installing the package started sockstatsd (pids {daemons:?})");
    }
    let enabled = Path::new("/etc/systemd/system/multi-user.target.wants/sockstatsd.service");
    if enabled.exists() {
        bail!(
            "installing the package enabled the unit ({})",
            enabled.display()
        );
    }
    let version = output(Command::new("/usr/bin/sockstats").arg("--version"))?;
    if version.trim() != format!("sockstats {}", env!("CARGO_PKG_VERSION")) {
        bail!("/usr/bin/sockstats --version says {version:?}");
    }
    output(Command::new("/usr/bin/sockstatsd").arg("--help"))?;
    eprintln!("xtask: the package installed every file and started nothing");
    Ok(())
}

pub(super) fn check_removed() -> Result<()> {
    if dpkg_knows_package() {
        bail!("dpkg still knows {PACKAGE} after `apt-get remove --purge`");
    }
    for file in package_files() {
        if file.exists() {
            bail!("{} is left after `apt-get remove --purge`", file.display());
        }
    }
    for dir in ["/etc/sockstats", "/usr/share/doc/sockstats", STATE_DIR] {
        if Path::new(dir).exists() {
            bail!("{dir} is left after `apt-get remove --purge`");
        }
    }
    Ok(())
}
