//! A private apt for Debian's kernel packages: its own sources list, state and cache under
//! `target/vm/apt`, so other suites (bullseye-security, bookworm-security, sid) can be read
//! without touching the machine's `/etc/apt`. Only `apt-get update`, `apt-cache pkgnames` and
//! `apt-get download` run against it: nothing is installed.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{bail, Context as _, Result};

use crate::run;

/// The suites the kernels come from, signed with keys of the machine's
/// debian-archive-keyring.
const SOURCES: &str = "\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bullseye-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
";

/// Package lists younger than this are not fetched again.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

pub struct PrivateApt {
    root: PathBuf,
}

impl PrivateApt {
    /// Sets up the private apt tree under `root` (nothing is fetched yet).
    pub fn new(root: &Path) -> Result<Self> {
        for dir in ["etc/parts", "state/lists/partial", "cache/archives/partial"] {
            fs::create_dir_all(root.join(dir))
                .with_context(|| format!("creating {}", root.join(dir).display()))?;
        }
        fs::write(root.join("etc/sources.list"), SOURCES).context("writing the sources list")?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The options that point apt at this tree instead of the machine's.
    fn options(&self) -> Vec<String> {
        let at = |p: &str| self.root.join(p).display().to_string();
        [
            ("Dir::Etc::SourceList", at("etc/sources.list")),
            ("Dir::Etc::SourceParts", at("etc/parts")),
            ("Dir::Etc::Preferences", at("etc/preferences")),
            ("Dir::Etc::PreferencesParts", at("etc/parts")),
            ("Dir::State", at("state")),
            ("Dir::State::status", at("state/status")),
            ("Dir::Cache", at("cache")),
            ("APT::Architecture", "amd64".to_owned()),
            ("APT::Architectures", "amd64".to_owned()),
            ("Acquire::Languages", "none".to_owned()),
            // Downloads land in target/, which the unprivileged _apt user may not reach.
            ("APT::Sandbox::User", "root".to_owned()),
            (
                "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled",
                "false".to_owned(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled",
                "false".to_owned(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled",
                "false".to_owned(),
            ),
        ]
        .into_iter()
        .flat_map(|(key, value)| ["-o".to_owned(), format!("{key}={value}")])
        .collect()
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.args(self.options());
        command
    }

    /// The private apt in `slot`, set up under `root` and its lists read on first use.
    pub fn get_or_init<'a>(slot: &'a mut Option<Self>, root: &Path) -> Result<&'a Self> {
        if slot.is_none() {
            let apt = Self::new(root)?;
            apt.update()?;
            *slot = Some(apt);
        }
        Ok(slot.as_ref().expect("set above"))
    }

    /// Fetches the package lists unless they are fresh.
    pub fn update(&self) -> Result<()> {
        // apt wants a status file, even an empty one.
        let status = self.root.join("state/status");
        if !status.exists() {
            fs::write(&status, "").context("creating the private dpkg status")?;
        }
        let stamp = self.root.join("state/updated");
        let fresh = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age < LISTS_MAX_AGE);
        if fresh {
            return Ok(());
        }
        eprintln!("xtask: vm-test: reading Debian's kernel lists (private apt state)");
        run(self.command("apt-get").args(["update", "-q"]))?;
        fs::write(&stamp, "").context("stamping the package lists")?;
        Ok(())
    }

    /// Every package name the lists hold that starts with `prefix`.
    pub fn names_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let out = self
            .command("apt-cache")
            .args(["pkgnames", prefix])
            .output()
            .context("running apt-cache")?;
        if !out.status.success() {
            bail!(
                "apt-cache pkgnames {prefix} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect())
    }

    /// Downloads the `.deb` of `package` into `dir` and returns its path.
    pub fn download(&self, package: &str, dir: &Path) -> Result<PathBuf> {
        fs::create_dir_all(dir)?;
        run(self
            .command("apt-get")
            .args(["download", "-q", package])
            .current_dir(dir))?;
        let prefix = format!("{package}_");
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_deb = Path::new(&name)
                .extension()
                .is_some_and(|ext| ext.eq_ignore_ascii_case("deb"));
            if name.starts_with(&prefix) && is_deb {
                return Ok(entry.path());
            }
        }
        bail!(
            "apt-get download {package} left no .deb in {}",
            dir.display()
        )
    }
}
