//! Keeping the kernel's rules equal to the daemon's: after every change, and every second
//! (the rule re-resolver task), since a cgroup that is removed and made again (a restarted
//! service or container) comes back with a new id.
use crate::daemon::state::{Core, Daemon};
use crate::{
    ops::Refusal,
    rules::{self, Selector},
};

/// The cgroups (id, path) `selector` applies to now: a cgroup rule's own, while it exists;
/// those that hold a unit or a container, from the daemon's last walk of the cgroup tree
/// ([`Daemon::refresh_workloads`]); none for a uid.
#[must_use]
pub fn cgroups_of(daemon: &Daemon, selector: &Selector) -> Vec<(u64, String)> {
    match selector {
        Selector::Uid(_) => Vec::new(),
        Selector::Cgroup(path) => daemon
            .cgroups()
            .id_of(path)
            .map(|id| (id, path.clone()))
            .into_iter()
            .collect(),
        Selector::Unit(name) => daemon.workloads().unit_cgroups(name),
        Selector::Container(name) => daemon.workloads().container_cgroups(name),
    }
}

/// Writes the core's rules to the kernel, cgroups resolved now. The caller holds the core
/// until the kernel has them, so two syncs never interleave (an older set written last would
/// undo a newer rule).
pub fn sync(core: &mut Core, daemon: &Daemon) -> Result<(), Refusal> {
    let keys = rules::kernel_rules(
        core.rules.rules(),
        |label| core.labels.get_or_create(label),
        |selector| cgroups_of(daemon, selector),
    )
    .map_err(Refusal::RuleLabel)?;
    core.kernel.sync_rules(&keys).map_err(Refusal::WriteRules)
}

/// Names what is new in the cgroup tree (when a walk is due), drops temporary rules whose
/// cgroup is gone, then writes the rules in force to the kernel: every second.
pub fn resolve_and_sync(daemon: &Daemon) -> Result<(), Refusal> {
    refresh_and_sync(daemon, false)
}

/// As [`resolve_and_sync`]; with `force`, the tree is walked whatever its counts say (before
/// units and containers are named, before a rule's unit or container is looked for).
///
/// The walk and the reads of container metadata happen outside the core (they are the slow
/// part on a host of many cgroups); what they found is taken in under the core together with
/// the kernel's rules, so `rules` never shows a cgroup the kernel does not have yet.
pub fn refresh_and_sync(daemon: &Daemon, force: bool) -> Result<(), Refusal> {
    let cgroups = daemon.cgroups();
    let workload_rules = daemon.with_core(|core| {
        core.rules
            .rules()
            .iter()
            .any(|rule| matches!(rule.selector, Selector::Unit(_) | Selector::Container(_)))
    });
    let workloads = daemon.workloads();
    let walk = workloads
        .walk_due(force || workload_rules, cgroups.descendant_counts())
        .then(|| workloads.prepare(cgroups.paths_by_id(), std::time::Instant::now()));
    let synced = daemon.with_core(|core| {
        if let Some(walk) = walk {
            workloads.apply(walk);
        }
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
        sync(core, daemon)
    });
    workloads.save_if_due();
    synced
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
        if let Err(error) = sync(core, daemon) {
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
    fn unit_and_container_rules_follow_restarts() {
        let test = Fixture::new();
        let service = "/accounted/system.slice/web.service";
        let id = crate::workloads::metadata::tests::ID;
        let container = format!("/accounted/docker/{id}");
        test.make_cgroup(&format!("{service}/worker"));
        test.make_cgroup(&container);
        test.make_cgroup("/elsewhere.service");
        crate::workloads::metadata::tests::write(
            &test.dir.path().join("runtimes"),
            &format!("var/lib/docker/containers/{id}/config.v2.json"),
            r#"{"Name": "/shop"}"#,
        );
        for (selector, label) in [
            (RuleSelector::unit("web.service"), "web"),
            (RuleSelector::container("shop"), "shop"),
        ] {
            let request = add_rule::AddRule {
                selector: &selector,
                label,
                temporary: false,
            };
            let reply = add_rule::add_rule(&test.daemon, peer(0), &request).unwrap();
            assert!(reply.rules[0].active, "{selector:?}");
        }
        let outside = add_rule::AddRule {
            selector: &RuleSelector::unit("elsewhere.service"),
            label: "x",
            temporary: false,
        };
        let refused = add_rule::add_rule(&test.daemon, peer(0), &outside).unwrap_err();
        assert!(
            refused.to_string().contains("outside the subtree"),
            "{refused}"
        );
        let rules = crate::ops::rules::rules(&test.daemon);
        assert_eq!(rules.rules[0].cgroups, [service]);
        assert_eq!(rules.rules[1].cgroups, std::slice::from_ref(&container));

        let keys = |test: &Fixture| {
            let cgroups = test.daemon.cgroups();
            let expected = [
                (OwnerKey::cgroup(cgroups.id_of(service).unwrap()), 1),
                (OwnerKey::cgroup(cgroups.id_of(&container).unwrap()), 2),
            ];
            test.with_kernel(|kernel| {
                let mut keys: Vec<_> = kernel.rules.iter().map(|(k, v)| (*k, *v)).collect();
                keys.sort();
                let mut expected = expected.to_vec();
                expected.sort();
                assert_eq!(keys, expected);
            });
        };
        keys(&test);
        // The unit and the container restart: new cgroups, new ids.
        std::fs::remove_dir(
            test.mount()
                .join("accounted/system.slice/web.service/worker"),
        )
        .unwrap();
        std::fs::remove_dir(test.mount().join("accounted/system.slice/web.service")).unwrap();
        std::fs::remove_dir(test.mount().join(container.trim_start_matches('/'))).unwrap();
        test.make_cgroup("/accounted/placeholder");
        test.make_cgroup(service);
        test.make_cgroup(&container);
        resolve_and_sync(&test.daemon).unwrap();
        keys(&test);
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
