//! `remove_rule`: remove the rule of a uid or cgroup. Root only; rules of the rules file stay.
use sockstats_common::protocol::{RuleSelector, RulesReply};

use super::{rules::reply, Peer, Refusal};
use crate::{daemon::state::Daemon, rules, rules::sync as rule_sync, sys::owners};

pub fn remove_rule(
    daemon: &Daemon,
    peer: Peer,
    selector: &RuleSelector,
) -> Result<RulesReply, Refusal> {
    peer.require_root("remove rules")?;
    let selector = rules::selector_of(selector, owners::uid_of_user)?;
    let rule = daemon.with_core(|core| {
        let rule = core.rules.remove(&selector)?;
        // The rule is gone from the daemon's set; if the kernel write fails now, the next
        // second's sync retries it.
        if let Err(error) = rule_sync::sync(core, daemon) {
            log::warn!("{error}; retrying within a second");
        }
        Ok::<_, Refusal>(rule)
    })?;
    log::info!("rule removed: {} (label {:?})", rule.selector, rule.label);
    Ok(reply(daemon, &[&rule]))
}

#[cfg(test)]
mod tests {
    use sockstats_common::{protocol::ErrorCode, OwnerKey};

    use super::*;
    use crate::{
        ops::{
            add_rule,
            testing::{peer, Fixture},
        },
        rules::{RuleSet, Selector},
    };

    #[test]
    fn removes_client_rules_only() {
        let test = Fixture::new();
        let added = add_rule::AddRule {
            selector: &RuleSelector::uid(1000),
            label: "alice",
            temporary: false,
        };
        add_rule::add_rule(&test.daemon, peer(0), &added).unwrap();
        test.with_kernel(|kernel| assert!(kernel.rules.contains_key(&OwnerKey::uid(1000))));
        let not_root = remove_rule(&test.daemon, peer(1), &RuleSelector::uid(1000)).unwrap_err();
        assert_eq!(not_root.code(), ErrorCode::NotPermitted);
        let reply = remove_rule(&test.daemon, peer(0), &RuleSelector::uid(1000)).unwrap();
        assert_eq!(reply.rules[0].label, "alice");
        test.with_kernel(|kernel| assert!(kernel.rules.is_empty()));
        let missing = remove_rule(&test.daemon, peer(0), &RuleSelector::uid(1000)).unwrap_err();
        assert_eq!(missing.code(), ErrorCode::NotFound);
        assert_eq!(
            missing.to_string(),
            "no rule for uid 1000; `sockstats rules` lists them"
        );

        // A rule of the rules file can only be changed there.
        let config = RuleSet::open(
            test.state_dir(),
            vec![(Selector::Uid(33), "www".to_owned())],
        )
        .unwrap();
        test.daemon.with_core(|core| core.rules = config);
        let from_file = remove_rule(&test.daemon, peer(0), &RuleSelector::uid(33)).unwrap_err();
        assert_eq!(from_file.code(), ErrorCode::NotPermitted);
    }
}
