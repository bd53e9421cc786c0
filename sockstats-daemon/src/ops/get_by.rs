//! `get_by`: payload bytes grouped by label, uid, cgroup or process.
use sockstats_common::protocol::{GetByReply, Grouping};

use super::{
    naming::{group_names, live_sockets, snapshot},
    Refusal,
};
use crate::{daemon::state::Daemon, grouping};

pub fn get_by(daemon: &Daemon, by: Grouping) -> Result<GetByReply, Refusal> {
    let (snapshot, label_names) = snapshot(daemon)?;
    let live = if by == Grouping::Process {
        live_sockets(daemon)?
    } else {
        Vec::new()
    };
    let groups = grouping::group(&snapshot, by, &live);
    Ok(GetByReply {
        by,
        stats: group_names(daemon, &label_names, groups),
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
                pad: 0,
            };
            kernel.snapshot.owners.insert(
                owner,
                OwnerTotals {
                    payload: Totals::new(107, 1),
                    live_sockets: 2,
                },
            );
        });
        let by_label = get_by(&test.daemon, Grouping::Label).unwrap();
        assert_eq!(by_label.by, Grouping::Label);
        assert_eq!(
            (
                by_label.stats["web"].tx_bytes,
                by_label.stats["web"].live_sockets
            ),
            (100, 1)
        );
        assert_eq!(by_label.stats["unlabeled"].tx_bytes, 7);
        let by_uid = get_by(&test.daemon, Grouping::Uid).unwrap();
        assert_eq!(
            (
                by_uid.stats["root"].tx_bytes,
                by_uid.stats["root"].live_sockets
            ),
            (107, 2)
        );
        let by_cgroup = get_by(&test.daemon, Grouping::Cgroup).unwrap();
        assert_eq!(by_cgroup.stats["/accounted/job"].rx_bytes, 1);
        let by_process = get_by(&test.daemon, Grouping::Process).unwrap();
        let me = crate::sys::owners::process_name(std::process::id());
        assert_eq!(by_process.stats[&me].tx_bytes, 100);
        assert_eq!(by_process.stats["(unknown owner)"].tx_bytes, 7);
        assert!(!by_process.covers.is_empty());
    }

    #[test]
    fn a_failed_read_is_refused() {
        let test = Fixture::new();
        test.with_kernel(|kernel| kernel.fail_reads = true);
        assert_eq!(
            get_by(&test.daemon, Grouping::Uid).unwrap_err().code(),
            ErrorCode::Failed
        );
    }
}
