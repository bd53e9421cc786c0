//! `add_rule`: label every socket made from now on by a uid, or by tasks in a cgroup subtree,
//! a systemd unit or a container. Root only.
use sockstats_common::{
    protocol::{RuleSelector, RulesReply},
    MAX_CGROUP_DEPTH,
};

use super::{rules::reply, Peer, Refusal};
use crate::{
    daemon::state::Daemon,
    rules::sync as rule_sync,
    rules::{self, Rule, RuleError, Selector, Source},
    sys::owners,
};

/// An `add_rule` request.
#[derive(Debug, Clone, Copy)]
pub struct AddRule<'a> {
    pub selector: &'a RuleSelector,
    pub label: &'a str,
    /// Gone when the connection that added it closes (`sockstats run`); cgroup rules only.
    pub temporary: bool,
}

pub fn add_rule(daemon: &Daemon, peer: Peer, request: &AddRule<'_>) -> Result<RulesReply, Refusal> {
    peer.require_root("add rules")?;
    let selector = rules::selector_of(request.selector, owners::uid_of_user)?;
    match &selector {
        Selector::Cgroup(path) => check_cgroup(daemon, path)?,
        // A uid, unit or container outlives any connection: a temporary rule would stay in
        // the kernel if the daemon crashed.
        _ if request.temporary => return Err(RuleError::TemporaryUid.into()),
        Selector::Uid(_) => {}
        Selector::Unit(_) | Selector::Container(_) => check_running(daemon, &selector)?,
    }
    let rule = Rule {
        selector,
        label: request.label.to_owned(),
        source: if request.temporary {
            Source::Temporary {
                connection: Some(peer.connection),
            }
        } else {
            Source::Client
        },
    };
    daemon.with_core(|core| {
        // Register the label first: a bad name or a full registry refuses the rule, not the
        // sync.
        core.labels.get_or_create(&rule.label)?;
        core.rules.add(rule.clone())?;
        if let Err(error) = rule_sync::sync(core, daemon) {
            let _ = core.rules.remove(&rule.selector);
            let _ = rule_sync::sync(core, daemon);
            return Err(error);
        }
        Ok(())
    })?;
    log::info!(
        "rule added: sockets of {} get label {:?} ({})",
        rule.selector,
        rule.label,
        rule.source.name()
    );
    Ok(reply(daemon, &[&rule]))
}

/// A unit or container rule added by a client must name one that runs now, inside the
/// accounted subtree: a typo is refused rather than kept waiting. (The rules file may name
/// ones that are not running yet.)
fn check_running(daemon: &Daemon, selector: &Selector) -> Result<(), Refusal> {
    rule_sync::refresh_and_sync(daemon, true)?;
    let found = rule_sync::cgroups_of(daemon, selector);
    let Some((_, first)) = found.first() else {
        return Err(match selector {
            Selector::Container(name) => Refusal::NoSuchContainer {
                name: name.clone(),
                running: daemon.workloads().container_names(),
            },
            other => Refusal::NoSuchUnit {
                name: other.to_string().trim_start_matches("unit ").to_owned(),
            },
        });
    };
    let root = &daemon.info().cgroup_root;
    let inside = |path: &str| {
        std::fs::canonicalize(daemon.cgroups().directory(path))
            .is_ok_and(|dir| dir.starts_with(root))
    };
    if !found.iter().any(|(_, path)| inside(path)) {
        return Err(Refusal::CgroupOutsideRoot {
            path: first.clone(),
            root: root.clone(),
        });
    }
    Ok(())
}

/// A cgroup rule must name an existing cgroup inside the accounted subtree, no deeper than the
/// kernel looks.
fn check_cgroup(daemon: &Daemon, path: &str) -> Result<(), Refusal> {
    let directory = daemon.cgroups().directory(path);
    if daemon.cgroups().id_of(path).is_none() {
        return Err(Refusal::NoSuchCgroup {
            path: path.to_owned(),
            directory,
        });
    }
    let root = &daemon.info().cgroup_root;
    let inside = std::fs::canonicalize(&directory).is_ok_and(|dir| dir.starts_with(root));
    if !inside {
        return Err(Refusal::CgroupOutsideRoot {
            path: path.to_owned(),
            root: root.clone(),
        });
    }
    if path.split('/').filter(|part| !part.is_empty()).count() >= MAX_CGROUP_DEPTH as usize {
        return Err(Refusal::CgroupTooDeep {
            path: path.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sockstats_common::{protocol::ErrorCode, OwnerKey};

    use super::*;
    use crate::ops::testing::{peer, Fixture};

    fn request<'a>(selector: &'a RuleSelector, label: &'a str) -> AddRule<'a> {
        AddRule {
            selector,
            label,
            temporary: false,
        }
    }

    #[test]
    fn root_adds_uid_and_cgroup_rules_which_reach_the_kernel() {
        let test = Fixture::new();
        test.make_cgroup("/accounted/web");
        let uid = RuleSelector::uid(1000);
        let reply = add_rule(&test.daemon, peer(0), &request(&uid, "alice")).unwrap();
        assert_eq!(reply.rules.len(), 1);
        assert_eq!(reply.rules[0].label, "alice");
        assert_eq!(reply.rules[0].source, "client");
        let cgroup = RuleSelector::cgroup("/accounted/web/");
        let reply = add_rule(&test.daemon, peer(0), &request(&cgroup, "web")).unwrap();
        let id = test.daemon.cgroups().id_of("/accounted/web").unwrap();
        assert_eq!(
            reply.rules[0].selector,
            RuleSelector::cgroup("/accounted/web")
        );
        assert_eq!(reply.rules[0].cgroup_id, Some(id));
        assert!(reply.rules[0].active);
        test.with_kernel(|kernel| {
            assert_eq!(kernel.rules.get(&OwnerKey::uid(1000)), Some(&1));
            assert_eq!(kernel.rules.get(&OwnerKey::cgroup(id)), Some(&2));
        });
        // Saved in the state dir: a restarted daemon has them.
        let saved = rules::RuleSet::open(test.state_dir(), Vec::new()).unwrap();
        assert_eq!(saved.rules().len(), 2);
    }

    /// Each (selector, label, temporary) is refused with its code and a message holding its
    /// needle.
    fn assert_refused(test: &Fixture, cases: Vec<(RuleSelector, &str, bool, ErrorCode, &str)>) {
        for (selector, label, temporary, code, needle) in cases {
            let request = AddRule {
                selector: &selector,
                label,
                temporary,
            };
            let refused = add_rule(&test.daemon, peer(0), &request).unwrap_err();
            assert_eq!(refused.code(), code, "{selector:?}: {refused}");
            assert!(
                refused.to_string().contains(needle),
                "{selector:?}: {refused}"
            );
        }
    }

    #[test]
    fn unit_and_container_rules_must_name_running_ones_and_cannot_be_temporary() {
        let test = Fixture::new();
        let cases: Vec<(RuleSelector, &str, bool, ErrorCode, &str)> = vec![
            (
                RuleSelector::unit("nginx"),
                "x",
                false,
                ErrorCode::BadRequest,
                "not a systemd unit name: write it whole",
            ),
            (
                RuleSelector::unit("nginx.service"),
                "x",
                false,
                ErrorCode::NotFound,
                "no unit nginx.service is running here",
            ),
            (
                RuleSelector::unit("web.service"),
                "x",
                true,
                ErrorCode::BadRequest,
                "only cgroup rules can be temporary",
            ),
            (
                RuleSelector::container("no-such-box"),
                "x",
                false,
                ErrorCode::NotFound,
                "no container no-such-box is running here (running: none)",
            ),
            (
                RuleSelector::container("has space"),
                "x",
                false,
                ErrorCode::BadRequest,
                "not a container name or id",
            ),
        ];
        assert_refused(&test, cases);
    }

    #[test]
    fn refusals_carry_their_codes() {
        let test = Fixture::new();
        let deep = format!("/accounted{}", "/d".repeat(MAX_CGROUP_DEPTH as usize));
        test.make_cgroup(&deep);
        test.make_cgroup("/elsewhere");
        let uid = RuleSelector::uid(5);
        let not_root = add_rule(&test.daemon, peer(1000), &request(&uid, "x")).unwrap_err();
        assert_eq!(not_root.code(), ErrorCode::NotPermitted);
        assert_eq!(
            not_root.to_string(),
            "only root may add rules; this client runs as uid 1000"
        );
        let cases: Vec<(RuleSelector, &str, bool, ErrorCode, &str)> = vec![
            (
                RuleSelector::cgroup("/accounted/missing"),
                "x",
                false,
                ErrorCode::NotFound,
                "does not exist",
            ),
            (
                RuleSelector::cgroup("/elsewhere"),
                "x",
                false,
                ErrorCode::BadRequest,
                "outside the subtree",
            ),
            (
                RuleSelector::cgroup(&deep),
                "x",
                false,
                ErrorCode::BadRequest,
                "deeper than",
            ),
            (
                RuleSelector::cgroup("relative"),
                "x",
                false,
                ErrorCode::BadRequest,
                "must start with /",
            ),
            (
                RuleSelector::default(),
                "x",
                false,
                ErrorCode::BadRequest,
                "exactly one of uid, user, cgroup, unit or container",
            ),
            (
                RuleSelector::user("no-such-user-here"),
                "x",
                false,
                ErrorCode::NotFound,
                "no user named",
            ),
            (
                RuleSelector::uid(5),
                "x",
                true,
                ErrorCode::BadRequest,
                "only cgroup rules can be temporary",
            ),
            (
                RuleSelector::uid(5),
                "bad label",
                false,
                ErrorCode::BadLabel,
                "label name has ' '",
            ),
        ];
        assert_refused(&test, cases);
        add_rule(
            &test.daemon,
            peer(0),
            &request(&RuleSelector::user("root"), "root-things"),
        )
        .unwrap();
        let conflict = add_rule(
            &test.daemon,
            peer(0),
            &request(&RuleSelector::uid(0), "other"),
        )
        .unwrap_err();
        assert_eq!(conflict.code(), ErrorCode::Conflict);
        test.with_kernel(|kernel| assert_eq!(kernel.rules.len(), 1));
    }

    #[test]
    fn a_rule_the_kernel_cannot_take_is_not_kept() {
        let test = Fixture::new();
        test.with_kernel(|kernel| kernel.fail_rule_writes = true);
        let uid = RuleSelector::uid(7);
        let refused = add_rule(&test.daemon, peer(0), &request(&uid, "seven")).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::Failed);
        assert!(test.daemon.with_core(|core| core.rules.rules().is_empty()));
    }
}
