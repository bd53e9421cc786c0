//! `cargo xtask deb`: a Debian package, `target/deb/sockstats_<version>_<arch>.deb`, built with
//! `dpkg-deb --build` from a staged `cargo xtask install --prefix /usr` plus `DEBIAN/` (control,
//! conffiles and maintainer scripts that start nothing); and the package check `cargo xtask
//! test` runs as root: `dpkg-deb --info`/`--contents`, a real `apt-get install` and `apt-get
//! remove --purge`.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{install, run, workspace_root};

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

/// The highest `GLIBC_x.y` symbol version `binary` asks for, as `x.y`.
fn glibc_needed(binary: &[u8]) -> Option<String> {
    let needle = b"GLIBC_";
    let mut best: Option<(u32, u32)> = None;
    let mut at = 0;
    while let Some(offset) = binary[at..]
        .windows(needle.len())
        .position(|window| window == needle)
    {
        let start = at + offset + needle.len();
        let end = binary[start..]
            .iter()
            .position(|byte| !(byte.is_ascii_digit() || *byte == b'.'))
            .map_or(binary.len(), |length| start + length);
        let text = String::from_utf8_lossy(&binary[start..end]);
        let mut parts = text.split('.').map(str::parse::<u32>);
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            best = best.max(Some((major, minor)));
        }
        at = end.max(start);
    }
    best.map(|(major, minor)| format!("{major}.{minor}"))
}

/// The `Depends` field: glibc at least as new as the newest symbol version the binaries use,
/// and `libgcc_s` (Rust's standard library unwinds with it).
fn depends(binaries: &[Vec<u8>]) -> String {
    let glibc = binaries
        .iter()
        .filter_map(|binary| glibc_needed(binary))
        .max_by(|a, b| {
            let key = |v: &String| {
                v.split('.')
                    .map(|part| part.parse::<u32>().unwrap_or(0))
                    .collect::<Vec<_>>()
            };
            key(a).cmp(&key(b))
        });
    match glibc {
        Some(version) => format!("libc6 (>= {version}), libgcc-s1"),
        None => "libc6, libgcc-s1".to_owned(),
    }
}

/// What goes in `DEBIAN/control`.
struct Control<'a> {
    version: &'a str,
    arch: &'a str,
    installed_size_kib: u64,
    depends: &'a str,
    maintainer: &'a str,
}

fn render_control(control: &Control) -> String {
    format!(
        "\
Package: {PACKAGE}
Version: {version}
Architecture: {arch}
Maintainer: {maintainer}
Installed-Size: {size}
Depends: {depends}
Section: net
Priority: optional
Homepage: {homepage}
Description: exact per-label network bytes of every TCP/UDP socket (eBPF)
 sockstatsd counts, with eBPF programs in the kernel, the payload bytes every TCP
 and UDP socket of this host sends and receives, per label: programs label their
 sockets over a Unix socket, rules label them by uid or cgroup, and the sockstats
 command shows which part of your software spends the network.
 .
 Installing starts nothing: the systemd unit is installed disabled. Start it with
 `systemctl enable --now sockstatsd`.
",
        version = control.version,
        arch = control.arch,
        maintainer = control.maintainer,
        size = control.installed_size_kib,
        depends = control.depends,
        homepage = env!("CARGO_PKG_REPOSITORY"),
    )
}

/// `DEBFULLNAME <DEBEMAIL>` when both are set (Debian's convention), else the project.
fn maintainer() -> String {
    match (std::env::var("DEBFULLNAME"), std::env::var("DEBEMAIL")) {
        (Ok(name), Ok(email)) if !name.is_empty() && !email.is_empty() => {
            format!("{name} <{email}>")
        }
        _ => format!("sockstats developers <{}>", env!("CARGO_PKG_REPOSITORY")),
    }
}

/// After unpacking: nothing is started or enabled (the daemon loads programs into the running
/// kernel; that is the administrator's call). With systemd running, it learns of the unit; an
/// upgrade restarts a daemon that was running, as Debian's packages do.
const POSTINST: &str = r#"#!/bin/sh
# sockstats: starts nothing. The unit is installed disabled.
set -e
if [ "$1" = configure ]; then
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        if [ -n "$2" ]; then
            systemctl try-restart sockstatsd.service >/dev/null || true
        fi
    fi
    if [ -z "$2" ]; then
        echo "sockstats: sockstatsd is installed, not started; start it with: systemctl enable --now sockstatsd"
    fi
fi
exit 0
"#;

/// Before removing (not upgrading): stop and disable the service, then detach the programs,
/// which otherwise stay attached and counting with nothing left to detach them.
const PRERM: &str = r#"#!/bin/sh
set -e
if [ "$1" = remove ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop sockstatsd.service >/dev/null 2>&1 || true
    fi
    if command -v systemctl >/dev/null 2>&1; then
        systemctl --no-reload disable sockstatsd.service >/dev/null 2>&1 || true
    fi
    if [ -d @BPFFS_DIR@ ]; then
        RUST_LOG_STYLE=never /usr/bin/sockstatsd --uninstall --bpffs-dir @BPFFS_DIR@ \
            || echo "sockstats: could not detach the programs pinned under @BPFFS_DIR@ (is a sockstatsd still running?)" >&2
    fi
fi
exit 0
"#;

/// After removing: systemd forgets the unit; purging also deletes the state dir (labels and
/// the rules clients added). dpkg deletes the rules file, a conffile, on purge itself.
const POSTRM: &str = r#"#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
    fi
fi
if [ "$1" = purge ]; then
    rm -rf @STATE_DIR@
fi
exit 0
"#;

fn render_script(script: &str) -> String {
    script
        .replace("@BPFFS_DIR@", BPFFS_DIR)
        .replace("@STATE_DIR@", STATE_DIR)
}

fn copyright() -> String {
    format!(
        "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: sockstats
Source: {repository}

Files: *
Copyright: the sockstats developers
License: {license}
 sockstats is dual-licensed: MIT or Apache-2.0, at your option. The Apache
 License 2.0 is in /usr/share/common-licenses/Apache-2.0; the MIT license:
 .
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the \"Software\"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all
 copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
",
        repository = env!("CARGO_PKG_REPOSITORY"),
        license = env!("CARGO_PKG_LICENSE"),
    )
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
    write(
        &debian.join("conffiles"),
        &format!("{}\n", install::RULES_FILE),
        0o644,
    )?;
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

fn output(command: &mut Command) -> Result<String> {
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
fn dpkg_knows_package() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Status}", PACKAGE])
        .output()
        .is_ok_and(|output| {
            output.status.success()
                && String::from_utf8_lossy(&output.stdout).trim() != "not-installed"
        })
}

/// Pids of processes running the packaged daemon.
fn packaged_daemons() -> Vec<u32> {
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
fn refuse_if_in_use() -> Result<()> {
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
    for installed in package_files() {
        if installed.exists() && installed != Path::new(install::RULES_FILE) {
            bail!(
                "{} exists and belongs to no package: the package test would overwrite it",
                installed.display()
            );
        }
    }
    if Path::new(install::RULES_FILE).exists() {
        bail!(
            "{} exists (from `cargo xtask install`?): the package test's purge would delete it",
            install::RULES_FILE
        );
    }
    Ok(())
}

/// `dpkg-deb --info` and `--contents`: the control fields, the conffile, every expected path
/// with its owner and mode, and the maintainer scripts.
fn check_archive(deb: &Path, arch: &str) -> Result<()> {
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
    if conffiles.trim() != install::RULES_FILE {
        bail!(
            "the conffiles are {conffiles:?}, not {}",
            install::RULES_FILE
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
    run(crate::cargo()
        .args([
            "run",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "deb",
            "--binaries",
        ])
        .arg(binaries))?;
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

fn check_installed() -> Result<()> {
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

fn check_removed() -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_file_has_every_required_field() {
        let control = render_control(&Control {
            version: "0.1.0",
            arch: "amd64",
            installed_size_kib: 12_345,
            depends: "libc6 (>= 2.34), libgcc-s1",
            maintainer: "A Person <a@example.org>",
        });
        for line in [
            "Package: sockstats\n",
            "Version: 0.1.0\n",
            "Architecture: amd64\n",
            "Maintainer: A Person <a@example.org>\n",
            "Installed-Size: 12345\n",
            "Depends: libc6 (>= 2.34), libgcc-s1\n",
            "Description: exact per-label",
        ] {
            assert!(control.contains(line), "{line:?} missing from:\n{control}");
        }
        assert!(control.ends_with('\n') && !control.contains("\n\n"));
        // Every continuation line of the description starts with a space.
        let description = control.split_once("Description:").unwrap().1;
        for line in description.lines().skip(1) {
            assert!(line.starts_with(' '), "{line:?}");
        }
    }

    #[test]
    fn versions_follow_debian_ordering() {
        assert_eq!(debian_version("0.1.0"), "0.1.0");
        assert_eq!(debian_version("0.2.0-rc.1"), "0.2.0~rc.1");
    }

    #[test]
    fn glibc_requirement_is_the_newest_symbol_version() {
        let binary = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_PRIVATE\0GLIBC_2.17\0GLIBC_2.3\0";
        assert_eq!(glibc_needed(binary).as_deref(), Some("2.34"));
        assert_eq!(glibc_needed(b"no versions"), None);
        assert_eq!(
            depends(&[b"GLIBC_2.28".to_vec(), b"GLIBC_2.9 GLIBC_2.33".to_vec()]),
            "libc6 (>= 2.33), libgcc-s1"
        );
        assert_eq!(depends(&[Vec::new()]), "libc6, libgcc-s1");
    }

    #[test]
    fn the_package_holds_binaries_unit_rules_completions_man_pages_and_copyright() {
        let files = package_files();
        for file in [
            "/usr/bin/sockstatsd",
            "/usr/bin/sockstats",
            "/usr/lib/systemd/system/sockstatsd.service",
            "/etc/sockstats/rules.conf",
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
        assert_eq!(files.len(), 8 + install::MAN_PAGES.len());
    }

    #[test]
    fn maintainer_scripts_start_nothing_and_parse() {
        for script in [POSTINST, PRERM, POSTRM] {
            let script = render_script(script);
            assert!(!script.contains('@'), "{script}");
            // The commands, not the messages that tell the user what to run.
            let commands: Vec<&str> = script
                .lines()
                .filter(|line| !line.trim_start().starts_with(['#', '|']))
                .filter(|line| !line.trim_start().starts_with("echo"))
                .collect();
            for forbidden in ["systemctl start", "systemctl enable", "invoke start"] {
                assert!(
                    !commands.iter().any(|line| line.contains(forbidden)),
                    "{forbidden} in:\n{script}"
                );
            }
            let status = Command::new("sh")
                .args(["-n", "-c", &script])
                .status()
                .expect("sh runs");
            assert!(status.success(), "sh -n rejects:\n{script}");
        }
        assert!(render_script(PRERM)
            .contains("sockstatsd --uninstall --bpffs-dir /sys/fs/bpf/sockstats"));
        assert!(render_script(POSTRM).contains("rm -rf /var/lib/sockstats"));
    }
}
