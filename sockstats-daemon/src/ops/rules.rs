//! `rules`: the labeling rules in force, whoever asks.
use sockstats_common::protocol::RulesReply;

use crate::{daemon::state::Daemon, rules::Rule};

#[must_use]
pub fn rules(daemon: &Daemon) -> RulesReply {
    // Under the core: the cgroups shown are those the kernel has (see `resolve_and_sync`).
    daemon.with_core(|core| reply(daemon, &core.rules.rules().iter().collect::<Vec<_>>()))
}

/// How `rules` (and the rule ops, for the rule they changed) show rules.
#[must_use]
pub fn reply(daemon: &Daemon, rules: &[&Rule]) -> RulesReply {
    RulesReply {
        rules: rules
            .iter()
            .map(|rule| {
                crate::rules::rule_info(rule, |selector| {
                    crate::rules::sync::cgroups_of(daemon, selector)
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ops::testing::Fixture,
        rules::{RuleSet, Selector},
    };

    #[test]
    fn lists_rules_with_their_state() {
        let test = Fixture::new();
        test.make_cgroup("/accounted/there");
        let config = vec![
            (
                Selector::Cgroup("/accounted/there".to_owned()),
                "a".to_owned(),
            ),
            (
                Selector::Cgroup("/accounted/gone".to_owned()),
                "b".to_owned(),
            ),
            (Selector::Uid(0), "c".to_owned()),
        ];
        let set = RuleSet::open(test.state_dir(), config).unwrap();
        test.daemon.with_core(|core| core.rules = set);
        let listed = rules(&test.daemon).rules;
        let shown: Vec<(&str, &str, bool)> = listed
            .iter()
            .map(|r| (r.label.as_str(), r.source.as_str(), r.active))
            .collect();
        assert_eq!(
            shown,
            [
                ("a", "config", true),
                ("b", "config", false),
                ("c", "config", true)
            ]
        );
    }
}
