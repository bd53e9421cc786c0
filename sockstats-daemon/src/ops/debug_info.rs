//! `debug_info`: what a maintainer needs: hooks, program run statistics, map fill, counters,
//! and the OTLP exporter's state.
use sockstats_common::protocol::{DebugReply, ProgramDebug};

use super::status::counters_by_name;
use crate::daemon::state::Daemon;

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

#[must_use]
pub fn debug_info(daemon: &Daemon) -> DebugReply {
    let (counters, maps, live_sockets, stats, labels) = daemon.with_core(|core| {
        (
            core.kernel.counters().unwrap_or_default(),
            core.kernel.fill(),
            core.kernel.live_sockets(&core.label_ids()),
            core.kernel.program_stats(),
            core.labels.len() as u64,
        )
    });
    let info = daemon.info();
    let programs = info
        .programs
        .iter()
        .map(|program| {
            let run = program
                .prog_id
                .and_then(|id| stats.get(&id))
                .copied()
                .unwrap_or_default();
            #[expect(clippy::cast_precision_loss, reason = "an average for display")]
            let average_ns =
                (run.run_count > 0).then(|| run.run_time_ns as f64 / run.run_count as f64);
            ProgramDebug {
                name: program.name.clone(),
                hook: program.hook.clone(),
                prog_id: program.prog_id,
                run_count: run.run_count,
                run_time_ns: run.run_time_ns,
                average_ns,
            }
        })
        .collect();
    DebugReply {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        kernel: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        uptime_seconds: info.started.elapsed().as_secs_f64(),
        bpf_stats_enabled: read_trimmed("/proc/sys/kernel/bpf_stats_enabled").as_deref()
            == Some("1"),
        payload_hooks: info.payload_hooks.clone(),
        kernel_limits: info.kernel_limits.clone(),
        programs,
        maps,
        counters: counters_by_name(counters),
        live_sockets,
        labels,
        socket: info.socket.display().to_string(),
        cgroup_root: info.cgroup_root.display().to_string(),
        bpffs_dir: info.bpffs_dir.display().to_string(),
        state_dir: info.state_dir.display().to_string(),
        otlp: daemon.exporter().get(),
        history: daemon.history().map(|history| history.status()),
    }
}

#[cfg(test)]
mod tests {
    use sockstats_common::protocol::{MapFill, ProgramStatus};

    use super::*;
    use crate::{kernel::interface::ProgramRunStats, ops::testing::Fixture};

    #[test]
    fn joins_program_statistics_to_the_attached_programs() {
        let programs = vec![
            ProgramStatus {
                name: "a".to_owned(),
                hook: "tp_btf/a".to_owned(),
                prog_id: Some(40),
            },
            ProgramStatus {
                name: "b".to_owned(),
                hook: "tp_btf/b".to_owned(),
                prog_id: None,
            },
        ];
        let test = Fixture::with_info(|info| info.programs = programs);
        test.daemon
            .with_core(|core| core.labels.get_or_create("web").unwrap());
        let fill = MapFill {
            name: "RULES".to_owned(),
            entries: 3,
            capacity: 4096,
        };
        test.with_kernel(|kernel| {
            kernel.programs.insert(
                40,
                ProgramRunStats {
                    run_count: 4,
                    run_time_ns: 1000,
                },
            );
            kernel.fill = vec![fill.clone()];
        });
        let reply = debug_info(&test.daemon);
        assert_eq!(reply.programs[0].run_count, 4);
        assert_eq!(reply.programs[0].average_ns, Some(250.0));
        assert_eq!(reply.programs[1].run_count, 0);
        assert_eq!(reply.programs[1].average_ns, None);
        assert_eq!(reply.maps, [fill]);
        assert_eq!(reply.labels, 1);
        assert_eq!(
            reply.socket,
            test.daemon.info().socket.display().to_string()
        );
        assert_eq!(reply.otlp, None, "no exporter runs");
    }

    #[test]
    fn shows_what_the_exporter_published() {
        let test = Fixture::new();
        let published = sockstats_common::protocol::OtlpDebug {
            endpoint: "http://127.0.0.1:4318/v1/metrics".to_owned(),
            failed: 2,
            last_error: Some("connection refused".to_owned()),
            ..Default::default()
        };
        test.daemon.exporter().publish(&published);
        assert_eq!(debug_info(&test.daemon).otlp, Some(published));
    }
}
