//! The exports waiting for the collector, and what happens to each: delivered, retried with
//! back-off, refused, or dropped when too many wait. Pure bookkeeping with the time passed in,
//! so the policy is tested without a network or a clock.
//!
//! - Exports are sent oldest first, one at a time; while the oldest fails with an error worth
//!   retrying (a connection error, a timeout, 429 or 5xx) nothing newer is sent before it, and
//!   it is retried after [`RETRY_FIRST`] doubling up to [`RETRY_MAX`] (the project's
//!   [`Backoff`]), or later when the collector's `Retry-After` says so (up to
//!   [`RETRY_AFTER_MAX`]). The first delivery after failures sends the rest at once.
//! - Any other answer (4xx but 429, a redirect) refuses that export for good: it is counted and
//!   dropped, and the next one is sent.
//! - At most [`QUEUE_LIMIT`] exports, of at most [`QUEUE_MAX_BYTES`] in all, wait; a new one
//!   then drops the oldest (counted). The counters are cumulative, so the newest export carries
//!   every byte the dropped ones did.
use std::{
    collections::VecDeque,
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use sockstats_common::protocol::OtlpDebug;
use tokio::time::Instant;

use crate::daemon::tasks::backoff::Backoff;

/// Exports kept while the collector cannot take them (the newest ones).
pub const QUEUE_LIMIT: usize = 30;
/// The most bytes they may hold together (an export of 1,000 labels on two interfaces is about
/// 1.4 MiB); the newest export is kept whatever its size.
pub const QUEUE_MAX_BYTES: usize = 16 << 20;
/// The first retry of a failed export comes after twice this; each failure in a row doubles it.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
pub const RETRY_MAX: Duration = Duration::from_secs(60);
/// The longest a collector's `Retry-After` is followed.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);

/// One reading of the counters, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub body: Bytes,
    /// When the counters were read.
    pub taken: SystemTime,
}

/// How one attempt to send an export ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The collector took it (2xx). `rejected` points and its message, if it said some were
    /// not accepted (OTLP's partial success).
    Delivered { rejected: Option<String> },
    /// Worth trying again: the collector is down, slow, overloaded or failing.
    Retry(String),
    /// The same, and the collector said when (`Retry-After`): not before then.
    RetryAfter(String, Duration),
    /// The collector will never take this export.
    Refused(String),
}

/// What the owner of the outbox should do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send the next export now (if any waits).
    Continue,
    /// Try again after this long.
    RetryIn(Duration),
}

/// The queue and its counts (as `sockstats debug` shows them).
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Export>,
    limit: usize,
    max_bytes: usize,
    /// The bytes of the exports in `queue`.
    bytes: usize,
    backoff: Backoff,
    retry_at: Option<Instant>,
    status: OtlpDebug,
}

impl Outbox {
    /// An empty outbox for `endpoint`, exporting every `interval`.
    #[must_use]
    pub fn new(endpoint: String, interval: Duration, limit: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            limit: limit.max(1),
            max_bytes: QUEUE_MAX_BYTES,
            bytes: 0,
            backoff: Backoff::new(RETRY_FIRST, RETRY_MAX),
            retry_at: None,
            status: OtlpDebug {
                endpoint,
                interval_seconds: interval.as_secs_f64(),
                queue_limit: limit.max(1) as u64,
                ..OtlpDebug::default()
            },
        }
    }

    /// The same with a byte bound other than [`QUEUE_MAX_BYTES`].
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Queues `export`, dropping the oldest waiting ones while the queue would be too long or
    /// too large. Returns whether any was dropped.
    pub fn push(&mut self, export: Export) -> bool {
        let mut dropped = false;
        while !self.queue.is_empty()
            && (self.queue.len() >= self.limit || self.bytes + export.body.len() > self.max_bytes)
        {
            self.pop();
            self.status.dropped += 1;
            dropped = true;
        }
        self.bytes += export.body.len();
        self.queue.push_back(export);
        self.status.queued = self.queue.len() as u64;
        dropped
    }

    fn pop(&mut self) {
        if let Some(export) = self.queue.pop_front() {
            self.bytes -= export.body.len();
        }
    }

    /// The oldest export, if one waits and its retry time (if any) has come.
    #[must_use]
    pub fn due(&self, now: Instant) -> Option<&Export> {
        let head = self.queue.front()?;
        self.retry_at.is_none_or(|at| now >= at).then_some(head)
    }

    /// When the oldest export may be sent (`None`: nothing waits).
    #[must_use]
    pub fn due_at(&self, now: Instant) -> Option<Instant> {
        self.queue.front()?;
        Some(self.retry_at.unwrap_or(now))
    }

    /// Settles the attempt to send the oldest export: `outcome` at `now` (wall clock `wall`).
    pub fn settle(&mut self, outcome: Outcome, now: Instant, wall: SystemTime) -> Next {
        let next = match outcome {
            Outcome::Delivered { rejected } => {
                self.pop();
                self.status.sent += 1;
                self.status.last_success_at = Some(rfc3339(wall));
                if let Some(rejected) = rejected {
                    self.error(rejected, wall);
                }
                let failures = self.backoff.succeeded();
                if failures > 0 {
                    log::info!(
                        "otlp: {} takes exports again after {failures} failed tries",
                        self.status.endpoint
                    );
                }
                self.retry_at = None;
                Next::Continue
            }
            Outcome::Refused(reason) => {
                if let Some(export) = self.queue.front() {
                    log::warn!(
                        "otlp: the export read at {} is dropped: {reason}",
                        rfc3339(export.taken)
                    );
                }
                self.pop();
                self.status.refused += 1;
                self.error(reason, wall);
                self.backoff.succeeded();
                self.retry_at = None;
                Next::Continue
            }
            Outcome::Retry(reason) => self.retry(reason, Duration::ZERO, now, wall),
            Outcome::RetryAfter(reason, after) => self.retry(reason, after, now, wall),
        };
        self.status.queued = self.queue.len() as u64;
        next
    }

    /// The oldest export failed: retried after the back-off's delay, or `after` if the
    /// collector asked for longer (up to [`RETRY_AFTER_MAX`]).
    fn retry(&mut self, reason: String, after: Duration, now: Instant, wall: SystemTime) -> Next {
        self.status.failed += 1;
        let delay = self.backoff.failed().max(after.min(RETRY_AFTER_MAX));
        log::warn!(
            "otlp: cannot export to {}: {reason}; trying again in {} s ({} export(s) waiting)",
            self.status.endpoint,
            delay.as_secs(),
            self.queue.len()
        );
        self.error(reason, wall);
        self.retry_at = Some(now + delay);
        Next::RetryIn(delay)
    }

    /// Remembers `reason` as the last error.
    pub fn error(&mut self, reason: String, wall: SystemTime) {
        self.status.last_error = Some(reason);
        self.status.last_error_at = Some(rfc3339(wall));
    }

    /// The counts and last error, as `sockstats debug` shows them.
    #[must_use]
    pub fn status(&self) -> &OtlpDebug {
        &self.status
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(n: u8) -> Export {
        Export {
            body: Bytes::from(vec![n]),
            taken: SystemTime::UNIX_EPOCH,
        }
    }

    fn outbox(limit: usize) -> Outbox {
        Outbox::new(
            "http://c/v1/metrics".to_owned(),
            Duration::from_secs(60),
            limit,
        )
    }

    fn head(outbox: &Outbox, now: Instant) -> Option<u8> {
        outbox.due(now).map(|e| e.body[0])
    }

    const WALL: SystemTime = SystemTime::UNIX_EPOCH;
    fn delivered() -> Outcome {
        Outcome::Delivered { rejected: None }
    }

    #[test]
    fn retries_the_oldest_with_backoff_then_drains_in_order() {
        let start = Instant::now();
        let mut outbox = outbox(10);
        assert_eq!(outbox.due_at(start), None);
        outbox.push(export(1));
        assert_eq!(head(&outbox, start), Some(1));
        let mut now = start;
        let mut delays = Vec::new();
        for _ in 0..7 {
            let Next::RetryIn(delay) =
                outbox.settle(Outcome::Retry("connection refused".to_owned()), now, WALL)
            else {
                panic!("not retried");
            };
            delays.push(delay.as_secs());
            // Not before its time, also when newer exports arrive meanwhile.
            assert_eq!(head(&outbox, now + delay - Duration::from_millis(1)), None);
            assert_eq!(outbox.due_at(now), Some(now + delay));
            now += delay;
            assert_eq!(head(&outbox, now), Some(1));
        }
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60]);
        outbox.push(export(2));
        outbox.push(export(3));
        assert_eq!(outbox.status().failed, 7);
        assert_eq!(outbox.status().queued, 3);
        assert_eq!(
            outbox.status().last_error.as_deref(),
            Some("connection refused")
        );
        // The collector is back: everything goes, oldest first, without waiting.
        let mut sent = Vec::new();
        while let Some(n) = head(&outbox, now) {
            sent.push(n);
            assert_eq!(outbox.settle(delivered(), now, WALL), Next::Continue);
        }
        assert_eq!(sent, [1, 2, 3]);
        let status = outbox.status();
        assert_eq!((status.sent, status.failed, status.queued), (3, 7, 0));
        assert!(status.last_success_at.is_some());
        // The back-off starts again from the first delay.
        outbox.push(export(4));
        assert_eq!(
            outbox.settle(Outcome::Retry("503".to_owned()), now, WALL),
            Next::RetryIn(Duration::from_secs(2))
        );
    }

    #[test]
    fn a_collectors_retry_after_is_followed_when_longer_than_the_backoff() {
        let now = Instant::now();
        let mut outbox = outbox(10);
        outbox.push(export(1));
        let after = |secs| Outcome::RetryAfter("429".to_owned(), Duration::from_secs(secs));
        assert_eq!(
            outbox.settle(after(1), now, WALL),
            Next::RetryIn(Duration::from_secs(2))
        );
        assert_eq!(
            outbox.settle(after(30), now, WALL),
            Next::RetryIn(Duration::from_secs(30))
        );
        assert_eq!(
            outbox.settle(after(86_400), now, WALL),
            Next::RetryIn(RETRY_AFTER_MAX)
        );
        assert_eq!(
            head(&outbox, now + RETRY_AFTER_MAX - Duration::from_secs(1)),
            None
        );
        assert_eq!(outbox.status().failed, 3);
    }

    #[test]
    fn a_refused_export_is_dropped_and_the_next_one_sent() {
        let now = Instant::now();
        let mut outbox = outbox(10);
        outbox.push(export(1));
        outbox.push(export(2));
        let next = outbox.settle(Outcome::Refused("400 Bad Request".to_owned()), now, WALL);
        assert_eq!(next, Next::Continue);
        assert_eq!(head(&outbox, now), Some(2));
        let status = outbox.status();
        assert_eq!(
            (status.refused, status.failed, status.sent, status.queued),
            (1, 0, 0, 1)
        );
        assert_eq!(status.last_error.as_deref(), Some("400 Bad Request"));
        assert_eq!(
            status.last_error_at.as_deref(),
            Some("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let now = Instant::now();
        let mut outbox = outbox(3);
        let dropped: Vec<bool> = (1..=5).map(|n| outbox.push(export(n))).collect();
        assert_eq!(dropped, [false, false, false, true, true]);
        assert_eq!(outbox.status().dropped, 2);
        assert_eq!(outbox.status().queued, 3);
        assert_eq!(outbox.status().queue_limit, 3);
        let mut left = Vec::new();
        while let Some(n) = head(&outbox, now) {
            left.push(n);
            outbox.settle(delivered(), now, WALL);
        }
        assert_eq!(left, [3, 4, 5], "the newest are kept");
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_too() {
        let now = Instant::now();
        let mut outbox = outbox(10).with_max_bytes(3);
        let big = |n: u8, len: usize| Export {
            body: Bytes::from(vec![n; len]),
            taken: SystemTime::UNIX_EPOCH,
        };
        assert!(!outbox.push(big(1, 1)));
        assert!(!outbox.push(big(2, 2)));
        // 1 + 2 + 2 > 3: the oldest goes, then 2 + 2 > 3: the next too.
        assert!(outbox.push(big(3, 2)));
        assert_eq!((outbox.status().queued, outbox.status().dropped), (1, 2));
        // An export larger than the bound is still kept, alone.
        assert!(outbox.push(big(4, 5)));
        assert_eq!(head(&outbox, now), Some(4));
        outbox.settle(delivered(), now, WALL);
        assert_eq!(outbox.bytes, 0);
        assert!(!outbox.push(big(5, 3)));
    }

    #[test]
    fn a_partial_success_counts_as_sent_and_says_what_was_rejected() {
        let now = Instant::now();
        let mut outbox = outbox(3);
        outbox.push(export(1));
        let rejected = Some("the collector rejected 2 point(s): bad unit".to_owned());
        assert_eq!(
            outbox.settle(
                Outcome::Delivered {
                    rejected: rejected.clone()
                },
                now,
                WALL
            ),
            Next::Continue
        );
        assert_eq!(outbox.status().sent, 1);
        assert_eq!(outbox.status().last_error, rejected);
    }
}
