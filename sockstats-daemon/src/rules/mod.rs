//! Labeling rules: every socket made by a uid, or by a task in a cgroup subtree, a systemd
//! unit or a container, gets a label.
//!
//! Rules come from the rules file (read at start), from root clients (kept in the state dir, so
//! they survive restarts) and from `sockstats run` (temporary: gone when the connection that
//! added them closes). The kernel applies them when a socket is made (the `RULES` map); this
//! module owns what they are, checks them, and turns them into the kernel's keys. A unit or
//! container rule becomes one key per cgroup that holds the unit or container now, resolved
//! again every second ([`sync`]), so it follows restarts.
pub mod sync;

use std::{
    collections::BTreeMap,
    fmt, fs, io,
    path::{Component, Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use sockstats_common::{
    label_name::{self, LabelNameError},
    protocol::{RuleInfo, RuleSelector},
    OwnerKey, MAX_RULES,
};

/// File name of the client rules inside the state dir.
pub const RULES_STATE_FILE: &str = "rules.json";
/// Where `sockstatsd` reads rules at start unless told otherwise (a missing file is no rules).
pub const DEFAULT_RULES_FILE: &str = "/etc/sockstats/rules.conf";

/// Which sockets a rule labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    /// Sockets made by tasks running as this uid.
    Uid(u32),
    /// Sockets made by tasks in this cgroup or below it: a normalized path relative to the
    /// cgroup2 mount (`/` or `/a/b`).
    Cgroup(String),
    /// Sockets made by tasks in this systemd unit (see [`crate::workloads::unit`]).
    Unit(String),
    /// Sockets made by tasks in the containers this name or id names (see
    /// [`crate::workloads::catalog::Container::is_named`]).
    Container(String),
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Uid(uid) => write!(f, "uid {uid}"),
            Selector::Cgroup(path) => write!(f, "cgroup {path}"),
            Selector::Unit(name) => write!(f, "unit {name}"),
            Selector::Container(name) => write!(f, "container {name}"),
        }
    }
}

/// Where a rule came from; it decides who may remove it and whether it is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The rules file: changed by editing it and restarting the daemon.
    Config,
    /// A root client; saved in the state dir.
    Client,
    /// A root client that asked for a cgroup rule to last only as long as its connection
    /// (`sockstats run`). Also saved: a daemon restart breaks the connection but not the run,
    /// so a restarted daemon keeps the rule (`connection: None`) until its cgroup is gone.
    Temporary { connection: Option<u64> },
}

impl Source {
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Client => "client",
            Source::Temporary { .. } => "temporary",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub selector: Selector,
    pub label: String,
    pub source: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{}:{line}: {reason}", path.display())]
    Config {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("cannot read rules file {}: {source}", path.display())]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read saved rules {}: {reason}; fix or remove the file", path.display())]
    ReadState { path: PathBuf, reason: String },
    #[error("cannot save rules to {}: {source}", path.display())]
    WriteState {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("a rule for {selector} exists already (label {label:?}); remove it first")]
    Conflict { selector: Selector, label: String },
    #[error("no rule for {0}; `sockstats rules` lists them")]
    NotFound(Selector),
    #[error("the rule for {0} comes from the rules file: edit the file and restart sockstatsd")]
    FromConfig(Selector),
    #[error("bad cgroup path {path:?}: {reason}")]
    BadCgroup { path: String, reason: &'static str },
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    #[error("a rule names exactly one of uid, user, cgroup, unit or container")]
    BadSelector,
    #[error(
        "only cgroup rules can be temporary (a uid, unit or container outlives any connection)"
    )]
    TemporaryUid,
    #[error(
        "{0:?} is not a systemd unit name: write it whole, like nginx.service or session-3.scope"
    )]
    BadUnit(String),
    #[error("{0:?} is not a container name or id: write the name `sockstats get --by container` shows (no spaces), or an id of 12 hex digits or more")]
    BadContainer(String),
    #[error("there are {MAX_RULES} rules already, the most the kernel map holds")]
    TooMany,
    #[error(transparent)]
    BadLabel(#[from] LabelNameError),
}

/// Checks a cgroup path and writes it one way: `/`, or `/a/b` without `.`, `..` or a
/// trailing slash.
pub fn normalize_cgroup(path: &str) -> Result<String, RuleError> {
    let bad = |reason| RuleError::BadCgroup {
        path: path.to_owned(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(bad(
            "it must start with / (it is relative to the cgroup2 mount)",
        ));
    }
    let mut normalized = String::new();
    for component in Path::new(path).components() {
        match component {
            Component::RootDir => {}
            Component::Normal(part) => {
                normalized.push('/');
                normalized.push_str(part.to_str().ok_or_else(|| bad("it is not UTF-8"))?);
            }
            _ => return Err(bad("it may not contain . or ..")),
        }
    }
    if normalized.is_empty() {
        normalized.push('/');
    }
    Ok(normalized)
}

/// The selector a client's [`RuleSelector`] names; `user` names go through `resolve_user`.
pub fn selector_of(
    selector: &RuleSelector,
    resolve_user: impl Fn(&str) -> Option<u32>,
) -> Result<Selector, RuleError> {
    let RuleSelector {
        uid,
        user,
        cgroup,
        unit,
        container,
    } = selector;
    let named = [
        uid.is_some(),
        user.is_some(),
        cgroup.is_some(),
        unit.is_some(),
        container.is_some(),
    ];
    if named.iter().filter(|named| **named).count() != 1 {
        return Err(RuleError::BadSelector);
    }
    if let Some(uid) = uid {
        return Ok(Selector::Uid(*uid));
    }
    if let Some(name) = user {
        return resolve_user(name)
            .map(Selector::Uid)
            .ok_or_else(|| RuleError::NoSuchUser(name.clone()));
    }
    if let Some(path) = cgroup {
        return Ok(Selector::Cgroup(normalize_cgroup(path)?));
    }
    if let Some(name) = unit {
        return unit_selector(name);
    }
    container_selector(container.as_deref().unwrap_or_default())
}

fn unit_selector(name: &str) -> Result<Selector, RuleError> {
    if crate::workloads::unit::is_unit_name(name) {
        Ok(Selector::Unit(name.to_owned()))
    } else {
        Err(RuleError::BadUnit(name.to_owned()))
    }
}

/// A container is named by what `get --by container` shows (Kubernetes names have `/`s) or
/// its id: anything printable without spaces.
fn container_selector(name: &str) -> Result<Selector, RuleError> {
    let printable = name.chars().all(|c| c.is_ascii_graphic());
    if name.is_empty() || name.len() > 255 || !printable {
        return Err(RuleError::BadContainer(name.to_owned()));
    }
    Ok(Selector::Container(name.to_owned()))
}

/// Parses a rules file: one rule per line, `uid <N> <label>`, `user <name> <label>`,
/// `cgroup <path> <label>`, `unit <unit> <label>` or `container <name or id> <label>`; `#`
/// starts a comment.
pub fn parse_config(
    text: &str,
    path: &Path,
    resolve_user: impl Fn(&str) -> Option<u32>,
) -> Result<Vec<(Selector, String)>, RuleError> {
    let mut rules: Vec<(Selector, String)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let error = |reason: String| RuleError::Config {
            path: path.to_owned(),
            line: index + 1,
            reason,
        };
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [kind, value, label] = words[..] else {
            return Err(error(format!(
                "expected `uid <N> <label>`, `user <name> <label>`, `cgroup <path> <label>`, `unit <unit> <label>` or `container <name> <label>`, got {line:?}"
            )));
        };
        let selector = match kind {
            "uid" => Selector::Uid(
                value
                    .parse()
                    .map_err(|_| error(format!("{value:?} is not a uid")))?,
            ),
            "user" => Selector::Uid(
                resolve_user(value).ok_or_else(|| error(format!("no user named {value:?}")))?,
            ),
            "cgroup" => {
                Selector::Cgroup(normalize_cgroup(value).map_err(|e| error(e.to_string()))?)
            }
            "unit" => unit_selector(value).map_err(|e| error(e.to_string()))?,
            "container" => container_selector(value).map_err(|e| error(e.to_string()))?,
            other => {
                return Err(error(format!(
                    "unknown rule kind {other:?}: use uid, user, cgroup, unit or container"
                )))
            }
        };
        label_name::validate(label).map_err(|e| error(e.to_string()))?;
        if let Some((_, first)) = rules.iter().find(|(s, _)| *s == selector) {
            return Err(error(format!(
                "a second rule for {selector} (the first gives label {first:?})"
            )));
        }
        rules.push((selector, label.to_owned()));
    }
    Ok(rules)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    rules: Vec<(Selector, String)>,
    /// Temporary rules of runs that were going on when the file was written.
    #[serde(default)]
    temporary: Vec<(Selector, String)>,
}

/// The rules in force.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    state_path: PathBuf,
}

impl RuleSet {
    /// The rules of `config` plus the client rules saved in `state_dir`. A saved rule for a
    /// selector the file also names is dropped: the file wins.
    pub fn open(state_dir: &Path, config: Vec<(Selector, String)>) -> Result<Self, RuleError> {
        let state_path = state_dir.join(RULES_STATE_FILE);
        let saved = match fs::read(&state_path) {
            Ok(bytes) => {
                serde_json::from_slice::<StateFile>(&bytes).map_err(|e| RuleError::ReadState {
                    path: state_path.clone(),
                    reason: e.to_string(),
                })?
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => StateFile::default(),
            Err(error) => {
                return Err(RuleError::ReadState {
                    path: state_path,
                    reason: error.to_string(),
                })
            }
        };
        let mut rules: Vec<Rule> = config
            .into_iter()
            .map(|(selector, label)| Rule {
                selector,
                label,
                source: Source::Config,
            })
            .collect();
        let saved_rules = saved.rules.into_iter().map(|r| (r, Source::Client));
        let temporary = saved
            .temporary
            .into_iter()
            .map(|r| (r, Source::Temporary { connection: None }));
        for ((selector, label), source) in saved_rules.chain(temporary) {
            if rules.iter().any(|rule| rule.selector == selector) {
                log::warn!("the rules file overrides the saved rule for {selector}");
                continue;
            }
            rules.push(Rule {
                selector,
                label,
                source,
            });
        }
        Ok(Self { rules, state_path })
    }

    #[must_use]
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Adds `rule`; refuses a second rule for the same selector.
    pub fn add(&mut self, rule: Rule) -> Result<(), RuleError> {
        label_name::validate(&rule.label)?;
        if let Some(existing) = self.rules.iter().find(|r| r.selector == rule.selector) {
            return Err(RuleError::Conflict {
                selector: rule.selector,
                label: existing.label.clone(),
            });
        }
        if self.rules.len() >= MAX_RULES as usize {
            return Err(RuleError::TooMany);
        }
        self.rules.push(rule);
        if let Err(error) = self.save() {
            self.rules.pop();
            return Err(error);
        }
        Ok(())
    }

    /// Removes the rule for `selector`, unless it comes from the rules file.
    pub fn remove(&mut self, selector: &Selector) -> Result<Rule, RuleError> {
        let index = self
            .rules
            .iter()
            .position(|r| r.selector == *selector)
            .ok_or_else(|| RuleError::NotFound(selector.clone()))?;
        if self.rules[index].source == Source::Config {
            return Err(RuleError::FromConfig(selector.clone()));
        }
        let rule = self.rules.remove(index);
        if let Err(error) = self.save() {
            self.rules.insert(index, rule);
            return Err(error);
        }
        Ok(rule)
    }

    /// Removes the temporary rules of `connection` (it closed). Returns them.
    pub fn remove_temporary(&mut self, connection: u64) -> Result<Vec<Rule>, RuleError> {
        self.remove_where(|r| {
            r.source
                == Source::Temporary {
                    connection: Some(connection),
                }
        })
    }

    /// Removes the temporary rules whose cgroup no longer exists (`exists` says). Returns them.
    pub fn remove_vanished_temporary(
        &mut self,
        exists: impl Fn(&str) -> bool,
    ) -> Result<Vec<Rule>, RuleError> {
        self.remove_where(|r| {
            matches!(r.source, Source::Temporary { .. })
                && matches!(&r.selector, Selector::Cgroup(path) if !exists(path))
        })
    }

    fn remove_where(&mut self, gone: impl Fn(&Rule) -> bool) -> Result<Vec<Rule>, RuleError> {
        if !self.rules.iter().any(&gone) {
            return Ok(Vec::new());
        }
        let (removed, kept): (Vec<Rule>, Vec<Rule>) =
            std::mem::take(&mut self.rules).into_iter().partition(&gone);
        self.rules = kept;
        self.save()?;
        Ok(removed)
    }

    fn save(&self) -> Result<(), RuleError> {
        let of = |keep: fn(Source) -> bool| {
            self.rules
                .iter()
                .filter(|r| keep(r.source))
                .map(|r| (r.selector.clone(), r.label.clone()))
                .collect()
        };
        let file = StateFile {
            version: 1,
            rules: of(|s| s == Source::Client),
            temporary: of(|s| matches!(s, Source::Temporary { .. })),
        };
        let write_error = |source| RuleError::WriteState {
            path: self.state_path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("rules serialize");
        crate::state_file::write_atomically(&self.state_path, &bytes).map_err(write_error)
    }
}

/// The kernel's rules: key → label id, for every rule whose cgroups exist now (`cgroups`
/// gives the (id, path) of those a selector applies to, none for a uid: the daemon's is
/// [`sync::cgroups_of`]; `label_id` resolves a label name). Two rules for one cgroup (a unit rule and a
/// cgroup rule for its path): the rule listed first wins.
pub fn kernel_rules<E>(
    rules: &[Rule],
    mut label_id: impl FnMut(&str) -> Result<u32, E>,
    cgroups: impl Fn(&Selector) -> Vec<(u64, String)>,
) -> Result<BTreeMap<OwnerKey, u32>, E> {
    let mut keys = BTreeMap::new();
    for rule in rules {
        let rule_keys = match &rule.selector {
            Selector::Uid(uid) => vec![OwnerKey::uid(*uid)],
            other => cgroups(other)
                .into_iter()
                .map(|(id, _)| OwnerKey::cgroup(id))
                .collect(),
        };
        if rule_keys.is_empty() {
            continue;
        }
        let label = label_id(&rule.label)?;
        for key in rule_keys {
            keys.entry(key).or_insert(label);
        }
    }
    Ok(keys)
}

/// How a rule is shown to clients.
#[must_use]
pub fn rule_info(rule: &Rule, cgroups: impl Fn(&Selector) -> Vec<(u64, String)>) -> RuleInfo {
    let selector = match &rule.selector {
        Selector::Uid(uid) => RuleSelector::uid(*uid),
        Selector::Cgroup(path) => RuleSelector::cgroup(path),
        Selector::Unit(name) => RuleSelector::unit(name),
        Selector::Container(name) => RuleSelector::container(name),
    };
    let found = cgroups(&rule.selector);
    let (active, cgroup_id, paths) = match &rule.selector {
        Selector::Uid(_) => (true, None, Vec::new()),
        Selector::Cgroup(_) => (
            !found.is_empty(),
            found.first().map(|(id, _)| *id),
            Vec::new(),
        ),
        Selector::Unit(_) | Selector::Container(_) => (
            !found.is_empty(),
            None,
            found.into_iter().map(|(_, path)| path).collect(),
        ),
    };
    RuleInfo {
        selector,
        label: rule.label.clone(),
        source: rule.source.name().to_owned(),
        active,
        cgroup_id,
        cgroups: paths,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(name: &str) -> Option<u32> {
        (name == "www-data").then_some(33)
    }

    #[test]
    fn parses_the_rules_file_and_points_at_bad_lines() {
        let text = "# web traffic\ncgroup /system.slice/nginx.service/ web\n\nuser www-data www # by user\nuid 0 root-things\nunit postgresql.service db\ncontainer shop/cart-1/cart cart\n";
        let rules = parse_config(text, Path::new("rules.conf"), users).unwrap();
        assert_eq!(
            rules,
            [
                (
                    Selector::Cgroup("/system.slice/nginx.service".to_owned()),
                    "web".to_owned()
                ),
                (Selector::Uid(33), "www".to_owned()),
                (Selector::Uid(0), "root-things".to_owned()),
                (
                    Selector::Unit("postgresql.service".to_owned()),
                    "db".to_owned()
                ),
                (
                    Selector::Container("shop/cart-1/cart".to_owned()),
                    "cart".to_owned()
                ),
            ]
        );
        for (text, needle) in [
            ("uid x web\n", "rules.conf:1: \"x\" is not a uid"),
            ("\nuser nobody-here a\n", "rules.conf:2: no user named"),
            ("cgroup relative/x a\n", "must start with /"),
            ("cgroup /a/../b a\n", ". or .."),
            ("pid 7 a\n", "unknown rule kind"),
            (
                "unit nginx web\n",
                "rules.conf:1: \"nginx\" is not a systemd unit name",
            ),
            ("unit web.slice web\n", "is not a systemd unit name"),
            ("uid 7\n", "expected `uid <N> <label>`"),
            ("uid 7 bad*label\n", "rules.conf:1:"),
            (
                "uid 7 a\nuid 7 b\n",
                "rules.conf:2: a second rule for uid 7",
            ),
        ] {
            let error = parse_config(text, Path::new("rules.conf"), users)
                .unwrap_err()
                .to_string();
            assert!(error.contains(needle), "{text:?}: {error}");
        }
    }

    #[test]
    fn normalizes_cgroup_paths() {
        assert_eq!(normalize_cgroup("/").unwrap(), "/");
        assert_eq!(normalize_cgroup("//a//b/").unwrap(), "/a/b");
        assert!(normalize_cgroup("a").is_err());
        assert!(normalize_cgroup("/a/./b").is_ok_and(|p| p == "/a/b"));
        assert!(normalize_cgroup("/a/..").is_err());
    }

    #[test]
    fn selectors_name_exactly_one_thing() {
        assert_eq!(
            selector_of(&RuleSelector::user("www-data"), users).unwrap(),
            Selector::Uid(33)
        );
        assert!(matches!(
            selector_of(&RuleSelector::user("nope"), users),
            Err(RuleError::NoSuchUser(_))
        ));
        let both = RuleSelector {
            uid: Some(1),
            cgroup: Some("/a".to_owned()),
            ..RuleSelector::default()
        };
        assert!(matches!(
            selector_of(&both, users),
            Err(RuleError::BadSelector)
        ));
        assert!(matches!(
            selector_of(&RuleSelector::default(), users),
            Err(RuleError::BadSelector)
        ));
    }

    #[test]
    fn client_rules_persist_config_rules_cannot_be_removed_temporary_ones_go_with_their_connection()
    {
        let dir = tempfile::tempdir().unwrap();
        let config = vec![(Selector::Uid(33), "www".to_owned())];
        let mut set = RuleSet::open(dir.path(), config.clone()).unwrap();
        let client = |selector, label: &str, source| Rule {
            selector,
            label: label.to_owned(),
            source,
        };
        set.add(client(Selector::Uid(1000), "alice", Source::Client))
            .unwrap();
        set.add(client(
            Selector::Cgroup("/run-1".to_owned()),
            "job",
            Source::Temporary {
                connection: Some(7),
            },
        ))
        .unwrap();
        assert!(matches!(
            set.add(client(Selector::Uid(33), "other", Source::Client)),
            Err(RuleError::Conflict { .. })
        ));
        assert!(matches!(
            set.add(client(Selector::Uid(5), "bad label", Source::Client)),
            Err(RuleError::BadLabel(_))
        ));
        assert!(matches!(
            set.remove(&Selector::Uid(33)),
            Err(RuleError::FromConfig(_))
        ));
        assert!(matches!(
            set.remove(&Selector::Uid(4)),
            Err(RuleError::NotFound(_))
        ));
        // A restart keeps client rules, and temporary ones until their cgroup is gone.
        let mut reopened = RuleSet::open(dir.path(), config.clone()).unwrap();
        assert_eq!(reopened.rules().len(), 3);
        assert_eq!(
            reopened.rules()[2].source,
            Source::Temporary { connection: None }
        );
        assert!(reopened
            .remove_vanished_temporary(|_| true)
            .unwrap()
            .is_empty());
        assert_eq!(
            reopened.remove_vanished_temporary(|_| false).unwrap().len(),
            1
        );

        assert!(set.remove_temporary(8).unwrap().is_empty());
        assert_eq!(set.remove_temporary(7).unwrap().len(), 1);
        assert_eq!(set.rules().len(), 2);
        let reopened = RuleSet::open(dir.path(), config.clone()).unwrap();
        assert_eq!(reopened.rules(), set.rules());
        set.remove(&Selector::Uid(1000)).unwrap();
        let reopened = RuleSet::open(dir.path(), config).unwrap();
        assert_eq!(reopened.rules().len(), 1);
    }

    #[test]
    fn kernel_rules_skip_cgroups_that_do_not_exist() {
        let rules = [
            Rule {
                selector: Selector::Uid(33),
                label: "www".to_owned(),
                source: Source::Config,
            },
            Rule {
                selector: Selector::Cgroup("/there".to_owned()),
                label: "jobs".to_owned(),
                source: Source::Client,
            },
            Rule {
                selector: Selector::Cgroup("/gone".to_owned()),
                label: "old".to_owned(),
                source: Source::Client,
            },
        ];
        // Ids that tell the labels apart: their lengths differ.
        let ids = |name: &str| u32::try_from(name.len());
        let cgroups = |selector: &Selector| match selector {
            Selector::Cgroup(path) if path == "/there" => vec![(99, path.clone())],
            _ => Vec::new(),
        };
        let keys = kernel_rules(&rules, ids, cgroups).unwrap();
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            [(OwnerKey::uid(33), 3), (OwnerKey::cgroup(99), 4)]
        );
        let info = rule_info(&rules[2], |_: &Selector| Vec::new());
        assert!(!info.active);
        assert_eq!(info.selector, RuleSelector::cgroup("/gone"));
    }
}
