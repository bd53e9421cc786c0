//! The rule requests (`add_rule`, `remove_rule`, `rules`) and keeping the kernel's rules equal
//! to the daemon's: after every change, and every second, since a cgroup that is removed and
//! made again (a restarted service) comes back with a new id.
use sockstats_common::protocol::{encode_ok, ErrorCode, RuleSelector, RulesReply};

use super::{
    refusal::{Peer, Refusal},
    state::Daemon,
};
use crate::{
    labels::RegistryError,
    rules::{self, Rule, RuleError, Source},
    sys::owners,
};

/// Writes the rules in force to the kernel (cgroup paths resolved now).
pub fn apply(daemon: &Daemon) -> Result<(), String> {
    let set = daemon.rules.lock().expect("rules lock");
    let keys = {
        let mut registry = daemon.registry.lock().expect("registry lock");
        rules::kernel_rules(
            set.rules(),
            |label| registry.get_or_create(label),
            |path| daemon.cgroups.id_of(path),
        )
        .map_err(|error| format!("cannot register a rule's label: {error}"))?
    };
    drop(set);
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
        RuleError::BadCgroup { .. } | RuleError::BadSelector => ErrorCode::BadRequest,
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
    if let rules::Selector::Cgroup(path) = &selector {
        check_cgroup(daemon, path)?;
    }
    // Register the label first: a bad name or a full registry refuses the rule, not the sync.
    daemon
        .registry
        .lock()
        .expect("registry lock")
        .get_or_create(label)
        .map_err(|error| match error {
            RegistryError::BadName(_) => Refusal::new(ErrorCode::BadLabel, error.to_string()),
            RegistryError::Full { .. } => Refusal::new(ErrorCode::LimitReached, error.to_string()),
            other => Refusal::from(other.to_string()),
        })?;
    let rule = Rule {
        selector,
        label: label.to_owned(),
        source: if temporary {
            Source::Temporary {
                connection: peer.connection,
            }
        } else {
            Source::Client
        },
    };
    daemon
        .rules
        .lock()
        .expect("rules lock")
        .add(rule.clone())
        .map_err(|e| refusal(&e))?;
    if let Err(error) = apply(daemon) {
        let _ = daemon
            .rules
            .lock()
            .expect("rules lock")
            .remove(&rule.selector);
        let _ = apply(daemon);
        return Err(Refusal::from(error));
    }
    log::info!(
        "rule added: sockets of {} get label {:?} ({})",
        rule.selector,
        rule.label,
        rule.source.name()
    );
    Ok(reply(daemon, &[&rule]))
}

/// A cgroup rule must name an existing cgroup inside the accounted subtree.
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
    Ok(())
}

pub fn remove_rule(
    daemon: &Daemon,
    peer: Peer,
    selector: &RuleSelector,
) -> Result<String, Refusal> {
    peer.require_root("remove rules")?;
    let selector = rules::selector_of(selector, owners::uid_of_user).map_err(|e| refusal(&e))?;
    let rule = daemon
        .rules
        .lock()
        .expect("rules lock")
        .remove(&selector)
        .map_err(|e| refusal(&e))?;
    apply(daemon)?;
    log::info!("rule removed: {} (label {:?})", rule.selector, rule.label);
    Ok(reply(daemon, &[&rule]))
}

pub fn list_rules(daemon: &Daemon) -> String {
    let set = daemon.rules.lock().expect("rules lock");
    let rules: Vec<&Rule> = set.rules().iter().collect();
    reply(daemon, &rules)
}

/// The connection `connection` closed: its temporary rules go.
pub fn connection_closed(daemon: &Daemon, connection: u64) {
    let gone = daemon
        .rules
        .lock()
        .expect("rules lock")
        .remove_temporary(connection);
    if gone.is_empty() {
        return;
    }
    for rule in &gone {
        log::info!(
            "temporary rule removed with its connection: {} (label {:?})",
            rule.selector,
            rule.label
        );
    }
    if let Err(error) = apply(daemon) {
        log::warn!("{error}");
    }
}
