//! Keeping the kernel's rules equal to the daemon's: after every change, and every second
//! (the rule re-resolver task), since a cgroup that is removed and made again (a restarted
//! service) comes back with a new id.
use crate::daemon::state::{Core, Daemon};
use crate::{
    cgroup::CgroupTree,
    ops::Refusal,
    rules::{self, Selector},
};

/// Writes the core's rules to the kernel, cgroup paths resolved now. The caller holds the
/// core until the kernel has them, so two syncs never interleave (an older set written last
/// would undo a newer rule).
pub fn sync(core: &mut Core, cgroups: &CgroupTree) -> Result<(), Refusal> {
    let keys = rules::kernel_rules(
        core.rules.rules(),
        |label| core.labels.get_or_create(label),
        |path| cgroups.id_of(path),
    )
    .map_err(Refusal::RuleLabel)?;
    core.kernel.sync_rules(&keys).map_err(Refusal::WriteRules)
}

/// Drops temporary rules whose cgroup is gone, then writes the rules in force to the kernel.
pub fn resolve_and_sync(daemon: &Daemon) -> Result<(), Refusal> {
    let cgroups = daemon.cgroups();
    daemon.with_core(|core| {
        let gone = core
            .rules
            .remove_vanished_temporary(|path| cgroups.id_of(path).is_some())?;
        for rule in gone {
            log::info!(
                "temporary rule removed with its cgroup: {} (label {:?})",
                rule.selector,
                rule.label
            );
        }
        for path in cgroups.remove_empty_left_behind() {
            log::info!("removed the cgroup {path} a `sockstats run` left behind");
        }
        sync(core, cgroups)
    })
}

/// The connection `connection` closed (not the daemon stopping): its temporary rules go.
pub fn connection_closed(daemon: &Daemon, connection: u64) {
    daemon.with_core(|core| {
        let gone = match core.rules.remove_temporary(connection) {
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
                daemon.cgroups().remove_when_empty(path);
            }
        }
        if let Err(error) = sync(core, daemon.cgroups()) {
            log::warn!("{error}");
        }
    });
}

#[cfg(test)]
mod tests {
    use sockstats_common::{protocol::RuleSelector, OwnerKey};

    use super::*;
    use crate::ops::{
        add_rule,
        testing::{peer, Fixture},
    };

    #[test]
    fn temporary_rules_go_with_their_connection_or_their_cgroup() {
        let test = Fixture::new();
        test.make_cgroup("/accounted/run-1");
        test.make_cgroup("/accounted/run-2");
        let root = peer(0);
        for (path, connection) in [("/accounted/run-1", 1), ("/accounted/run-2", 2)] {
            let request = add_rule::AddRule {
                selector: &RuleSelector::cgroup(path),
                label: "job",
                temporary: true,
            };
            let peer = crate::ops::Peer { connection, ..root };
            add_rule::add_rule(&test.daemon, peer, &request).unwrap();
        }
        let run_2 = test.daemon.cgroups().id_of("/accounted/run-2").unwrap();
        test.with_kernel(|kernel| assert_eq!(kernel.rules.len(), 2));
        connection_closed(&test.daemon, 1);
        test.with_kernel(|kernel| {
            assert_eq!(
                kernel.rules.keys().copied().collect::<Vec<_>>(),
                [OwnerKey::cgroup(run_2)]
            );
        });
        std::fs::remove_dir(test.mount().join("accounted/run-2")).unwrap();
        resolve_and_sync(&test.daemon).unwrap();
        test.with_kernel(|kernel| assert!(kernel.rules.is_empty()));
        assert!(test.daemon.with_core(|core| core.rules.rules().is_empty()));
    }

    #[test]
    fn a_cgroup_made_again_is_followed_and_a_failed_write_is_reported() {
        let test = Fixture::new();
        test.make_cgroup("/accounted/web");
        let request = add_rule::AddRule {
            selector: &RuleSelector::cgroup("/accounted/web"),
            label: "web",
            temporary: false,
        };
        add_rule::add_rule(&test.daemon, peer(0), &request).unwrap();
        let first = test.daemon.cgroups().id_of("/accounted/web").unwrap();
        std::fs::remove_dir(test.mount().join("accounted/web")).unwrap();
        // Another directory takes the old inode number, if any; then the service's comes back.
        test.make_cgroup("/accounted/other");
        test.make_cgroup("/accounted/web");
        let second = test.daemon.cgroups().id_of("/accounted/web").unwrap();
        resolve_and_sync(&test.daemon).unwrap();
        test.with_kernel(|kernel| {
            assert_eq!(kernel.rules.get(&OwnerKey::cgroup(second)), Some(&1));
            if first != second {
                assert!(!kernel.rules.contains_key(&OwnerKey::cgroup(first)));
            }
            kernel.fail_rule_writes = true;
        });
        let failed = resolve_and_sync(&test.daemon).unwrap_err();
        assert_eq!(
            failed.to_string(),
            "cannot write the rules to the kernel: fake rule write failed"
        );
    }
}
