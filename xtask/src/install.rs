//! `cargo xtask install`: the binaries, the systemd unit, a sample rules file, shell
//! completions and man pages, under a prefix (and a staging `--destdir` for packagers).
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::workspace_root;

/// Where and what to install.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Installation prefix: binaries go to PREFIX/bin, the unit to PREFIX/lib/systemd/system,
    /// completions under PREFIX/share.
    #[arg(long, default_value = "/usr/local")]
    pub prefix: PathBuf,
    /// Stage everything under this directory instead of / (for packages and tests).
    #[arg(long, value_name = "DIR")]
    pub destdir: Option<PathBuf>,
    /// Install already built binaries from this directory instead of building in release mode
    /// (it must hold `examples/man_pages` too: `cargo build --bins --examples`).
    #[arg(long, value_name = "DIR")]
    pub binaries: Option<PathBuf>,
}

/// The man pages `examples/man_pages` writes (`sockstats_daemon::man`), below PREFIX/share/man.
/// Installing checks that the example wrote exactly these.
pub const MAN_PAGES: &[&str] = &[
    "man1/sockstats.1",
    "man1/sockstats-get.1",
    "man1/sockstats-watch.1",
    "man1/sockstats-history.1",
    "man1/sockstats-history-reset.1",
    "man1/sockstats-top.1",
    "man1/sockstats-quotas.1",
    "man1/sockstats-run.1",
    "man1/sockstats-rules.1",
    "man1/sockstats-rules-add.1",
    "man1/sockstats-rules-remove.1",
    "man1/sockstats-labels.1",
    "man1/sockstats-debug.1",
    "man1/sockstats-status.1",
    "man1/sockstats-completions.1",
    "man8/sockstatsd.8",
];

/// The rules file, outside the prefix (the daemon's default `--rules-file`).
pub const RULES_FILE: &str = "/etc/sockstats/rules.conf";

/// The config file, outside the prefix (the daemon's default `--config`).
pub const CONFIG_FILE: &str = "/etc/sockstats/sockstats.conf";

/// The files people edit (a Debian package's conffiles), each with the commented sample of
/// `dist/` it starts as: never overwritten once it exists.
pub const EDITED_FILES: [(&str, &str); 2] = [
    (RULES_FILE, "dist/rules.conf"),
    (CONFIG_FILE, "dist/sockstats.conf"),
];

/// Where zsh finds completions: Debian's zsh searches `/usr/share/zsh/vendor-completions` for
/// packaged ones and `/usr/local/share/zsh/site-functions` for local ones.
fn zsh_completions(prefix: &Path) -> &'static str {
    if prefix == Path::new("/usr") {
        "share/zsh/vendor-completions/_sockstats"
    } else {
        "share/zsh/site-functions/_sockstats"
    }
}

/// The completion scripts: (shell, path below the prefix).
fn completions(prefix: &Path) -> [(&'static str, &'static str); 3] {
    [
        ("bash", "share/bash-completion/completions/sockstats"),
        ("zsh", zsh_completions(prefix)),
        ("fish", "share/fish/vendor_completions.d/sockstats.fish"),
    ]
}

/// Every file an installation under `prefix` puts in place (absolute paths).
pub fn installed_files(prefix: &Path) -> Vec<PathBuf> {
    let mut files = vec![
        prefix.join("bin/sockstatsd"),
        prefix.join("bin/sockstats"),
        prefix.join("lib/systemd/system/sockstatsd.service"),
    ];
    files.extend(EDITED_FILES.iter().map(|(path, _)| PathBuf::from(path)));
    files.extend(
        completions(prefix)
            .iter()
            .map(|(_, path)| prefix.join(path)),
    );
    files.extend(
        MAN_PAGES
            .iter()
            .map(|page| prefix.join("share/man").join(page)),
    );
    files
}

/// Paths of one installation.
struct Layout {
    root: PathBuf,
    prefix: PathBuf,
}

impl Layout {
    /// `path` (absolute) under the staging root.
    fn staged(&self, path: &Path) -> PathBuf {
        self.root
            .join(path.strip_prefix("/").expect("install paths are absolute"))
    }

    fn under_prefix(&self, relative: &str) -> PathBuf {
        self.prefix.join(relative)
    }
}

fn copy_file(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", to.display()))?;
    eprintln!("xtask: installed {}", to.display());
    Ok(())
}

fn write_file(to: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(to, contents).with_context(|| format!("cannot write {}", to.display()))?;
    eprintln!("xtask: installed {}", to.display());
    Ok(())
}

/// Installs, building the release binaries with `build` unless `--binaries` names them.
pub fn install(args: &InstallArgs, build_release: impl FnOnce() -> Result<()>) -> Result<()> {
    if !args.prefix.is_absolute() {
        bail!(
            "--prefix must be an absolute path, got {}",
            args.prefix.display()
        );
    }
    let binaries = if let Some(dir) = &args.binaries {
        dir.clone()
    } else {
        build_release()?;
        workspace_root().join("target/release")
    };
    let layout = Layout {
        root: args.destdir.clone().unwrap_or_else(|| PathBuf::from("/")),
        prefix: args.prefix.clone(),
    };
    let bindir = layout.under_prefix("bin");
    for binary in ["sockstatsd", "sockstats"] {
        let built = binaries.join(binary);
        if !built.exists() {
            bail!(
                "{} is not built (run `cargo xtask build --release`)",
                built.display()
            );
        }
        copy_file(&built, &layout.staged(&bindir.join(binary)), 0o755)?;
    }

    let unit = layout.staged(&layout.under_prefix("lib/systemd/system/sockstatsd.service"));
    write_file(&unit, render_unit(&bindir)?.as_bytes())?;

    for (path, sample) in EDITED_FILES {
        let edited = layout.staged(Path::new(path));
        if edited.exists() {
            eprintln!("xtask: kept the existing {}", edited.display());
        } else {
            copy_file(&workspace_root().join(sample), &edited, 0o644)?;
        }
    }

    let sockstats = binaries.join("sockstats");
    for (shell, relative) in completions(&layout.prefix) {
        let output = Command::new(&sockstats)
            .args(["completions", shell])
            .output()
            .with_context(|| format!("cannot run {}", sockstats.display()))?;
        if !output.status.success() {
            bail!("`sockstats completions {shell}` failed");
        }
        write_file(
            &layout.staged(&layout.under_prefix(relative)),
            &output.stdout,
        )?;
    }
    install_man_pages(&binaries, &layout.staged(&layout.under_prefix("share/man")))?;
    if args.destdir.is_none() {
        eprintln!(
            "xtask: done; start it with `systemctl daemon-reload && systemctl enable --now sockstatsd`"
        );
    }
    Ok(())
}

/// Writes the man pages below `mandir` with the internal `man_pages` example (built with the
/// binaries), and checks it wrote exactly [`MAN_PAGES`].
fn install_man_pages(binaries: &Path, mandir: &Path) -> Result<()> {
    let generator = binaries.join("examples/man_pages");
    if !generator.exists() {
        bail!(
            "{} is not built (run `cargo build --bins --examples`, with --release for target/release)",
            generator.display()
        );
    }
    let output = Command::new(&generator)
        .arg(mandir)
        .output()
        .with_context(|| format!("cannot run {}", generator.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            generator.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut written: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    for page in &written {
        eprintln!("xtask: installed {}", page.display());
    }
    let mut expected: Vec<PathBuf> = MAN_PAGES.iter().map(|page| mandir.join(page)).collect();
    written.sort();
    expected.sort();
    if written != expected {
        bail!(
            "the man pages written ({written:?}) are not xtask's MAN_PAGES ({expected:?}): update xtask/src/install.rs"
        );
    }
    Ok(())
}

/// The unit with its binaries in `bindir`.
pub fn render_unit(bindir: &Path) -> Result<String> {
    let template = fs::read_to_string(workspace_root().join("dist/sockstatsd.service"))
        .context("cannot read dist/sockstatsd.service")?;
    Ok(template.replace("@BINDIR@", &bindir.display().to_string()))
}

/// Checks the unit with `systemd-analyze verify` (where systemd is installed), pointing it at
/// the binaries in `bindir`: any complaint (an unknown or misspelt setting, say) fails.
pub fn verify_unit(bindir: &Path) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("sockstats-unit-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let unit = dir.join("sockstatsd.service");
    fs::write(&unit, render_unit(bindir)?)?;
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output();
    let _ = fs::remove_dir_all(&dir);
    let Ok(output) = output else {
        eprintln!("xtask: systemd-analyze is not installed; the unit was not verified");
        return Ok(());
    };
    let complaints = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || !complaints.trim().is_empty() {
        bail!("systemd-analyze verify dist/sockstatsd.service:\n{complaints}");
    }
    eprintln!("xtask: dist/sockstatsd.service verified with systemd-analyze");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_install_lists_every_file_under_the_prefix_and_the_edited_files() {
        let files = installed_files(Path::new("/usr/local"));
        for file in [
            "/usr/local/bin/sockstatsd",
            "/usr/local/bin/sockstats",
            "/usr/local/lib/systemd/system/sockstatsd.service",
            "/etc/sockstats/rules.conf",
            "/etc/sockstats/sockstats.conf",
            "/usr/local/share/bash-completion/completions/sockstats",
            "/usr/local/share/zsh/site-functions/_sockstats",
            "/usr/local/share/fish/vendor_completions.d/sockstats.fish",
            "/usr/local/share/man/man1/sockstats.1",
            "/usr/local/share/man/man1/sockstats-rules-add.1",
            "/usr/local/share/man/man8/sockstatsd.8",
        ] {
            assert!(files.contains(&PathBuf::from(file)), "{file} missing");
        }
        assert_eq!(files.len(), 8 + MAN_PAGES.len());
    }

    #[test]
    fn zsh_completions_go_where_debians_zsh_looks() {
        let files = installed_files(Path::new("/usr"));
        assert!(files.contains(&PathBuf::from(
            "/usr/share/zsh/vendor-completions/_sockstats"
        )));
    }
}
