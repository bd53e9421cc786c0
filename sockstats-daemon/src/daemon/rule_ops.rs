//! The rule requests (`add_rule`, `remove_rule`, `rules`) and keeping the kernel's rules equal
//! to the daemon's: after every change, and every second, since a cgroup that is removed and
//! made again (a restarted service) comes back with a new id.
use std::sync::MutexGuard;

use sockstats_common::{
    protocol::{encode_ok, ErrorCode, RuleSelector, RulesReply},
    MAX_CGROUP_DEPTH,
};

use super::{
    refusal::{Peer, Refusal},
    state::Daemon,
};
use crate::{
    rules::{self, Rule, RuleError, RuleSet, Selector, Source},
    sys::owners,
};

/// Writes the rules in force to the kernel (cgroup paths resolved now), after dropping
/// temporary rules whose cgroup is gone.
pub fn apply(daemon: &Daemon) -> Result<(), String> {
    let mut set = daemon.rules.lock().expect("rules lock");
    let gone = set
        .remove_vanished_temporary(|path| daemon.cgroups.id_of(path).is_some())
        .map_err(|error| error.to_string())?;
    for rule in gone {
        log::info!(
            "temporary rule removed with its cgroup: {} (label {:?})",
            rule.selector,
            rule.label
        );
    }
    for path in daemon.cgroups.remove_empty_left_behind() {
        log::info!("removed the cgroup {path} a `sockstats run` left behind");
    }
    apply_locked(daemon, &set)
}

/// Writes `set` to the kernel. The caller holds the rules lock until the kernel has them, so
/// two syncs never interleave (an older set written last would undo a newer rule).
fn apply_locked(daemon: &Daemon, set: &MutexGuard<'_, RuleSet>) -> Result<(), String> {
    let keys = {
        let mut registry = daemon.registry.lock().expect("registry lock");
        rules::kernel_rules(
            set.rules(),
            |label| registry.get_or_create(label),
            |path| daemon.cgroups.id_of(path),
        )
        .map_err(|error| format!("cannot register a rule's label: {error}"))?
    };
    daemon
        .kernel
        .lock()
        .expect("kernel lock")
        .sync_rules(&keys)
        .map_err(|error| format!("cannot write the rules to the kernel: {error}"))
}

fn refusal(error: &RuleError) -> Refusal {
    let code = match error {
        RuleError::Conflict { .. } => ErrorCode::Conflict,
        RuleError::NotFound(_) | RuleError::NoSuchUser(_) => ErrorCode::NotFound,
        RuleError::FromConfig(_) => ErrorCode::NotPermitted,
        RuleError::BadLabel(_) => ErrorCode::BadLabel,
        RuleError::TooMany => ErrorCode::LimitReached,
        RuleError::BadCgroup { .. } | RuleError::BadSelector | RuleError::TemporaryUid => {
            ErrorCode::BadRequest
        }
        _ => ErrorCode::Failed,
    };
    Refusal::new(code, error.to_string())
}

fn reply(daemon: &Daemon, rules: &[&Rule]) -> String {
    encode_ok(&RulesReply {
        rules: rules
            .iter()
            .map(|rule| rules::rule_info(rule, |path| daemon.cgroups.id_of(path)))
            .collect(),
    })
}

pub fn add_rule(
    daemon: &Daemon,
    peer: Peer,
    selector: &RuleSelector,
    label: &str,
    temporary: bool,
) -> Result<String, Refusal> {
    peer.require_root("add rules")?;
    let selector = rules::selector_of(selector, owners::uid_of_user).map_err(|e| refusal(&e))?;
    match &selector {
        Selector::Cgroup(path) => check_cgroup(daemon, path)?,
        // A uid outlives any connection: a temporary one would stay in the kernel if the
        // daemon crashed.
        Selector::Uid(_) if temporary => return Err(refusal(&RuleError::TemporaryUid)),
        Selector::Uid(_) => {}
    }
    // Register the label first: a bad name or a full registry refuses the rule, not the sync.
    daemon
        .registry
        .lock()
        .expect("registry lock")
        .get_or_create(label)
        .map_err(Refusal::from)?;
    let rule = Rule {
        selector,
        label: label.to_owned(),
        source: if temporary {
            Source::Temporary {
                connection: Some(peer.connection),
            }
        } else {
            Source::Client
        },
    };
    let mut set = daemon.rules.lock().expect("rules lock");
    set.add(rule.clone()).map_err(|e| refusal(&e))?;
    if let Err(error) = apply_locked(daemon, &set) {
        let _ = set.remove(&rule.selector);
        let _ = apply_locked(daemon, &set);
        return Err(Refusal::from(error));
    }
    drop(set);
    log::info!(
        "rule added: sockets of {} get label {:?} ({})",
        rule.selector,
        rule.label,
        rule.source.name()
    );
    Ok(reply(daemon, &[&rule]))
}

/// A cgroup rule must name an existing cgroup inside the accounted subtree, no deeper than the
/// kernel looks.
fn check_cgroup(daemon: &Daemon, path: &str) -> Result<(), Refusal> {
    let directory = daemon.cgroups.directory(path);
    if daemon.cgroups.id_of(path).is_none() {
        return Err(Refusal::new(
            ErrorCode::NotFound,
            format!(
                "cgroup {path} does not exist ({} is not a directory); for a cgroup that comes and goes, put the rule in the rules file",
                directory.display()
            ),
        ));
    }
    let root = &daemon.info.cgroup_root;
    let inside = std::fs::canonicalize(&directory).is_ok_and(|dir| dir.starts_with(root));
    if !inside {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!(
                "cgroup {path} is outside the subtree this daemon accounts ({}); its sockets would never be counted",
                root.display()
            ),
        ));
    }
    if path.split('/').filter(|part| !part.is_empty()).count() >= MAX_CGROUP_DEPTH as usize {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!("cgroup {path} is deeper than the {MAX_CGROUP_DEPTH} levels the kernel programs look at"),
        ));
    }
    Ok(())
}

pub fn remove_rule(
    daemon: &Daemon,
    peer: Peer,
    selector: &RuleSelector,
) -> Result<String, Refusal> {
    peer.require_root("remove rules")?;
    let selector = rules::selector_of(selector, owners::uid_of_user).map_err(|e| refusal(&e))?;
    let mut set = daemon.rules.lock().expect("rules lock");
    let rule = set.remove(&selector).map_err(|e| refusal(&e))?;
    // The rule is gone from the daemon's set; if the kernel write fails now, the next
    // second's sync retries it.
    if let Err(error) = apply_locked(daemon, &set) {
        log::warn!("{error}; retrying within a second");
    }
    drop(set);
    log::info!("rule removed: {} (label {:?})", rule.selector, rule.label);
    Ok(reply(daemon, &[&rule]))
}

pub fn list_rules(daemon: &Daemon) -> String {
    let set = daemon.rules.lock().expect("rules lock");
    let rules: Vec<&Rule> = set.rules().iter().collect();
    reply(daemon, &rules)
}

/// The connection `connection` closed (not the daemon stopping): its temporary rules go.
pub fn connection_closed(daemon: &Daemon, connection: u64) {
    let mut set = daemon.rules.lock().expect("rules lock");
    let gone = match set.remove_temporary(connection) {
        Ok(gone) => gone,
        Err(error) => {
            log::warn!("{error}");
            return;
        }
    };
    if gone.is_empty() {
        return;
    }
    for rule in &gone {
        log::info!(
            "temporary rule removed with its connection: {} (label {:?})",
            rule.selector,
            rule.label
        );
        // A `sockstats run` that died: its cgroup goes once its command has exited.
        if let Selector::Cgroup(path) = &rule.selector {
            daemon.cgroups.remove_when_empty(path);
        }
    }
    if let Err(error) = apply_locked(daemon, &set) {
        log::warn!("{error}");
    }
}
