//! `status`: is the daemon up and are its programs attached; the kernel's counters.
use std::collections::BTreeMap;

use sockstats_common::{protocol::StatusReply, Counter};

use crate::{daemon::state::Daemon, kernel::interface::Counters};

#[must_use]
pub fn status(daemon: &Daemon) -> StatusReply {
    let (live_sockets, counters) = daemon.with_core(|core| {
        (
            core.kernel.live_sockets(&core.label_ids()),
            // A failed read shows as zeros: `status` answers whatever the maps do.
            core.kernel.counters().unwrap_or_default(),
        )
    });
    let info = daemon.info();
    StatusReply {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attached: !info.programs.is_empty() && info.programs.iter().all(|p| p.prog_id.is_some()),
        programs: info.programs.clone(),
        payload_hooks: info.payload_hooks.clone(),
        kernel_limits: info.kernel_limits.clone(),
        cgroup_root: info.cgroup_root.display().to_string(),
        bpffs_dir: info.bpffs_dir.display().to_string(),
        state_dir: info.state_dir.display().to_string(),
        socket_states: if info.states_by_cookie {
            "hash_by_cookie"
        } else {
            "socket_storage"
        }
        .to_owned(),
        live_sockets,
        counters: counters_by_name(counters),
        history: daemon.history().map(|history| history.status()),
    }
}

/// The counters by their names.
#[must_use]
pub fn counters_by_name(counters: Counters) -> BTreeMap<String, u64> {
    Counter::ALL
        .iter()
        .zip(counters)
        .map(|(c, v)| (c.name().to_owned(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use sockstats_common::{protocol::ProgramStatus, Totals};

    use super::*;
    use crate::ops::testing::Fixture;

    fn program(prog_id: Option<u32>) -> ProgramStatus {
        ProgramStatus {
            name: "sock_send_length".to_owned(),
            hook: "tp_btf/sock_send_length".to_owned(),
            prog_id,
        }
    }

    #[test]
    fn attached_only_when_every_program_is_and_counters_by_name() {
        let test =
            Fixture::with_info(|info| info.programs = vec![program(Some(4)), program(Some(5))]);
        test.with_kernel(|kernel| {
            kernel.add_socket(1, 0, Totals::default());
            kernel.add_socket(2, 0, Totals::default());
            kernel.snapshot.counters[Counter::ALL[1] as usize] = 17;
        });
        let reply = status(&test.daemon);
        assert!(reply.attached);
        assert_eq!(reply.live_sockets, 2);
        assert_eq!(reply.counters.len(), Counter::ALL.len());
        assert_eq!(reply.counters[Counter::ALL[1].name()], 17);
        assert_eq!(reply.state_dir, test.state_dir().display().to_string());

        let detached =
            Fixture::with_info(|info| info.programs = vec![program(Some(4)), program(None)]);
        assert!(!status(&detached.daemon).attached);
        assert!(
            !status(&Fixture::new().daemon).attached,
            "no programs is not attached"
        );
        // Counters that cannot be read show as zeros; status still answers.
        test.with_kernel(|kernel| kernel.fail_reads = true);
        assert!(status(&test.daemon).counters.values().all(|v| *v == 0));
    }
}
