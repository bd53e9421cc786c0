//! Reading a test daemon's usage history: waiting for a recording, and summing the buckets of
//! a reply per key.
use std::{
    collections::BTreeMap,
    thread,
    time::{Duration, Instant},
};

use sockstats_common::protocol::{ByteCounts, HistoryReply};

use crate::TestDaemon;

/// Waits up to `within` until the daemon's last recording went into its history (the first
/// one of a new file starts it from the kernel's totals of that moment).
pub fn wait_for_a_recording(daemon: &TestDaemon, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let health = daemon.client().status().expect("status").history;
        if health.is_some_and(|health| health.recording) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never recorded:\n{}",
            daemon.log()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Each key's bytes summed over every bucket of `reply` (no key's sum may be below zero).
#[must_use]
pub fn bucket_sums(reply: &HistoryReply) -> BTreeMap<String, ByteCounts> {
    let mut sums: BTreeMap<String, ByteCounts> = BTreeMap::new();
    for bucket in &reply.buckets {
        for (key, counts) in &bucket.stats {
            let sum = sums.entry(key.clone()).or_default();
            sum.tx_bytes = sum
                .tx_bytes
                .checked_add_signed(counts.tx_bytes)
                .unwrap_or_else(|| panic!("{key}'s history sums below zero: {reply:#?}"));
            sum.rx_bytes = sum
                .rx_bytes
                .checked_add_signed(counts.rx_bytes)
                .unwrap_or_else(|| panic!("{key}'s history sums below zero: {reply:#?}"));
        }
    }
    sums
}
