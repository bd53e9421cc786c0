//! `labels`: the registered label names and their stable ids.
use sockstats_common::protocol::{LabelInfo, LabelsReply};

use crate::daemon::state::Daemon;

#[must_use]
pub fn labels(daemon: &Daemon) -> LabelsReply {
    let labels = daemon.with_core(|core| {
        core.labels
            .iter()
            .map(|(id, name)| LabelInfo {
                name: name.to_owned(),
                id,
            })
            .collect()
    });
    LabelsReply { labels }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::Fixture;

    #[test]
    fn lists_names_in_id_order() {
        let test = Fixture::new();
        assert!(labels(&test.daemon).labels.is_empty());
        test.daemon.with_core(|core| {
            core.labels.get_or_create("web").unwrap();
            core.labels.get_or_create("db").unwrap();
        });
        let listed: Vec<(String, u32)> = labels(&test.daemon)
            .labels
            .into_iter()
            .map(|l| (l.name, l.id))
            .collect();
        assert_eq!(listed, [("web".to_owned(), 1), ("db".to_owned(), 2)]);
    }
}
