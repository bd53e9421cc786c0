//! `cargo xtask install`: the binaries, the systemd unit, a sample rules file and shell
//! completions, under a prefix (and a staging `--destdir` for packagers).
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
    prefix: PathBuf,
    /// Stage everything under this directory instead of / (for packages and tests).
    #[arg(long, value_name = "DIR")]
    destdir: Option<PathBuf>,
    /// Install already built binaries from this directory instead of building in release mode.
    #[arg(long, value_name = "DIR")]
    binaries: Option<PathBuf>,
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

    let rules = layout.staged(Path::new("/etc/sockstats/rules.conf"));
    if rules.exists() {
        eprintln!("xtask: kept the existing {}", rules.display());
    } else {
        copy_file(&workspace_root().join("dist/rules.conf"), &rules, 0o644)?;
    }

    let sockstats = binaries.join("sockstats");
    for (shell, relative) in [
        ("bash", "share/bash-completion/completions/sockstats"),
        ("zsh", "share/zsh/site-functions/_sockstats"),
        ("fish", "share/fish/vendor_completions.d/sockstats.fish"),
    ] {
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
    if args.destdir.is_none() {
        eprintln!(
            "xtask: done; start it with `systemctl daemon-reload && systemctl enable --now sockstatsd`"
        );
    }
    Ok(())
}

/// The unit with its binaries in `bindir`.
fn render_unit(bindir: &Path) -> Result<String> {
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
