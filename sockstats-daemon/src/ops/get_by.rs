//! `get_by`: payload bytes grouped by label, uid, cgroup, process, systemd unit or container,
//! split by destination if asked.
use sockstats_common::protocol::{GetByReply, Grouping};

use super::{
    naming::{group_names, live_sockets, snapshot},
    Refusal,
};
use crate::{daemon::state::Daemon, grouping};

pub fn get_by(daemon: &Daemon, by: Grouping, destinations: bool) -> Result<GetByReply, Refusal> {
    let (snapshot, label_names) = snapshot(daemon)?;
    let live = if by == Grouping::Process {
        live_sockets(daemon)?
    } else {
        Vec::new()
    };
    let groups = grouping::group_by_destination(&snapshot, by, &live);
    Ok(GetByReply {
        by,
        stats: group_names(daemon, by, &label_names, groups, destinations),
        covers: grouping::covers(by).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use sockstats_common::{protocol::ErrorCode, OwnerAccountKey, Totals};

    use super::*;
    use crate::{attribution::OwnerTotals, ops::testing::Fixture};

    #[test]
    fn groups_by_label_uid_cgroup_and_process() {
        let test = Fixture::new();
        test.make_cgroup("/accounted/job");
        let job = test.daemon.cgroups().id_of("/accounted/job").unwrap();
        test.daemon
            .with_core(|core| core.labels.get_or_create("web").unwrap());
        test.with_kernel(|kernel| {
            kernel.add_socket(10, 1, Totals::new(100, 1));
            kernel.sockets.get_mut(&10).unwrap().tgid = std::process::id();
            kernel.add_socket(11, 0, Totals::new(7, 0));
            let owner = OwnerAccountKey {
                uid: 0,
                cgroup_id: job,
                destination: 0,
            };
            kernel.snapshot.owners.insert(
                owner,
                OwnerTotals {
                    payload: Totals::new(107, 1),
                    live_sockets: 2,
                },
            );
        });
        let by_label = get_by(&test.daemon, Grouping::Label, false).unwrap();
        assert_eq!(by_label.by, Grouping::Label);
        assert_eq!(
            (
                by_label.stats["web"].tx_bytes,
                by_label.stats["web"].live_sockets
            ),
            (100, 1)
        );
        assert_eq!(by_label.stats["unlabeled"].tx_bytes, 7);
        let by_uid = get_by(&test.daemon, Grouping::Uid, false).unwrap();
        assert_eq!(
            (
                by_uid.stats["root"].tx_bytes,
                by_uid.stats["root"].live_sockets
            ),
            (107, 2)
        );
        let by_cgroup = get_by(&test.daemon, Grouping::Cgroup, false).unwrap();
        assert_eq!(by_cgroup.stats["/accounted/job"].rx_bytes, 1);
        let by_process = get_by(&test.daemon, Grouping::Process, false).unwrap();
        let me = crate::sys::owners::process_name(std::process::id());
        assert_eq!(by_process.stats[&me].tx_bytes, 100);
        assert_eq!(by_process.stats["(unknown owner)"].tx_bytes, 7);
        assert!(!by_process.covers.is_empty());
    }

    #[test]
    fn groups_by_unit_and_container_also_after_their_cgroups_are_gone() {
        let test = Fixture::new();
        let id = crate::workloads::metadata::tests::ID;
        let service = "/accounted/system.slice/web.service";
        let container = format!("/accounted/libpod_parent/libpod-{id}");
        let worker = format!("{service}/worker");
        for path in [worker.as_str(), container.as_str(), "/accounted/plain"] {
            test.make_cgroup(path);
        }
        crate::workloads::metadata::tests::write(
            &test.dir.path().join("runtimes"),
            "var/lib/containers/storage/overlay-containers/containers.json",
            &format!(r#"[{{"id": "{id}", "names": ["box"]}}]"#),
        );
        let cgroups = test.daemon.cgroups();
        let owners = [
            (cgroups.id_of(service).unwrap(), Totals::new(100, 1)),
            (cgroups.id_of(&worker).unwrap(), Totals::new(20, 2)),
            (cgroups.id_of(&container).unwrap(), Totals::new(3000, 30)),
            (
                cgroups.id_of("/accounted/plain").unwrap(),
                Totals::new(4, 0),
            ),
            (999_999_999, Totals::new(5, 5)), // removed before the daemon saw it
        ];
        test.with_kernel(|kernel| {
            for (cgroup_id, payload) in owners {
                let owner = OwnerAccountKey {
                    uid: 0,
                    cgroup_id,
                    destination: 0,
                };
                kernel.snapshot.owners.insert(
                    owner,
                    OwnerTotals {
                        payload,
                        live_sockets: 1,
                    },
                );
            }
        });
        let check = |test: &Fixture| {
            let by_unit = get_by(&test.daemon, Grouping::Unit, false).unwrap();
            assert_eq!(
                (
                    by_unit.stats["web.service"].tx_bytes,
                    by_unit.stats["web.service"].live_sockets
                ),
                (120, 2)
            );
            assert_eq!(by_unit.stats["(no unit)"].tx_bytes, 3004);
            assert_eq!(by_unit.stats["(unknown cgroup 999999999)"].tx_bytes, 5);
            let by_container = get_by(&test.daemon, Grouping::Container, false).unwrap();
            assert_eq!(by_container.stats["box"].rx_bytes, 30);
            assert_eq!(by_container.stats["(no container)"].tx_bytes, 124);
            assert_eq!(by_container.by, Grouping::Container);
        };
        check(&test);
        // The unit stops and the container goes; their closed sockets keep their names.
        for path in [worker.as_str(), service, container.as_str()] {
            std::fs::remove_dir(test.mount().join(path.trim_start_matches('/'))).unwrap();
        }
        check(&test);
    }

    #[test]
    fn a_failed_read_is_refused() {
        let test = Fixture::new();
        test.with_kernel(|kernel| kernel.fail_reads = true);
        assert_eq!(
            get_by(&test.daemon, Grouping::Uid, false)
                .unwrap_err()
                .code(),
            ErrorCode::Failed
        );
    }
}
