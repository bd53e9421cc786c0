//! `get`: payload bytes per label, every registered label included.
use sockstats_common::protocol::{ByteCounts, GetReply};

use super::{
    naming::{byte_counts, label_name, snapshot},
    Refusal,
};
use crate::{attribution, daemon::state::Daemon};

pub fn get(daemon: &Daemon) -> Result<GetReply, Refusal> {
    let (snapshot, label_names) = snapshot(daemon)?;
    let current_interface = daemon.interfaces().current_interface();
    let mut reply = GetReply {
        current_interface_metered: current_interface
            .as_deref()
            .is_some_and(|name| daemon.info().config.metered.matches(name)),
        current_interface,
        overflow: byte_counts(snapshot.overflow()),
        ..GetReply::default()
    };
    for name in label_names.values() {
        reply.stats.insert(name.clone(), ByteCounts::default());
    }
    for (id, totals) in attribution::per_label(&snapshot) {
        reply
            .stats
            .insert(label_name(&label_names, id), byte_counts(totals));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use sockstats_common::{protocol::ErrorCode, Counter, Totals};

    use super::*;
    use crate::ops::testing::Fixture;

    #[test]
    fn the_current_interface_is_metered_when_a_metered_glob_matches_it() {
        // The fixture's default route is eth0; the default globs are cellular ones.
        let plain = get(&Fixture::new().daemon).unwrap();
        assert_eq!(plain.current_interface.as_deref(), Some("eth0"));
        assert!(!plain.current_interface_metered);
        let metered = Fixture::with_info(|info| {
            info.config =
                crate::config::parse("metered usb* eth?", std::path::Path::new("test.conf"))
                    .unwrap();
        });
        assert!(get(&metered.daemon).unwrap().current_interface_metered);
        let text = sockstats_common::text::get_table(&get(&metered.daemon).unwrap(), false);
        assert!(
            text.ends_with("current interface: eth0 (metered)\n"),
            "{text}"
        );
    }

    #[test]
    fn every_label_with_its_bytes_unknown_ids_by_number_and_the_overflow() {
        let test = Fixture::new();
        test.daemon.with_core(|core| {
            core.labels.get_or_create("web").unwrap();
            core.labels.get_or_create("idle").unwrap();
        });
        test.with_kernel(|kernel| {
            kernel.add_socket(10, 1, Totals::new(1000, 20));
            kernel.add_socket(11, 1, Totals::new(5, 0));
            kernel.add_socket(12, 0, Totals::new(0, 7));
            kernel.add_socket(13, 9, Totals::new(3, 3));
            kernel.snapshot.counters[Counter::OverflowTxBytes as usize] = 42;
        });
        let reply = get(&test.daemon).unwrap();
        let stats: Vec<(&str, u64, u64)> = reply
            .stats
            .iter()
            .map(|(name, c)| (name.as_str(), c.tx_bytes, c.rx_bytes))
            .collect();
        assert_eq!(
            stats,
            [
                ("#9", 3, 3),
                ("idle", 0, 0),
                ("unlabeled", 0, 7),
                ("web", 1005, 20)
            ]
        );
        assert_eq!(
            reply.overflow,
            ByteCounts {
                tx_bytes: 42,
                rx_bytes: 0
            }
        );
        assert_eq!(reply.current_interface.as_deref(), Some("eth0"));
    }

    #[test]
    fn a_failed_read_is_refused_with_the_reason() {
        let test = Fixture::new();
        test.with_kernel(|kernel| kernel.fail_reads = true);
        let refused = get(&test.daemon).unwrap_err();
        assert_eq!(refused.code(), ErrorCode::Failed);
        assert_eq!(
            refused.to_string(),
            "cannot read the kernel maps: fake map read failed"
        );
    }
}
