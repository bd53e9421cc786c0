//! How long a failing task waits before it tries again: its usual period after a success,
//! doubling with every failure in a row up to a cap, so a task that keeps failing logs a
//! few lines a minute rather than one per period.
use std::time::Duration;

/// The retry delay of one task.
#[derive(Debug, Clone)]
pub struct Backoff {
    period: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Every `period` while the work succeeds; up to `max` apart while it fails.
    #[must_use]
    pub fn new(period: Duration, max: Duration) -> Self {
        Self {
            period,
            max: max.max(period),
            failures: 0,
        }
    }

    /// The work succeeded: back to the usual period. Returns how many failures in a row
    /// came before (0: none).
    pub fn succeeded(&mut self) -> u32 {
        std::mem::take(&mut self.failures)
    }

    /// The work failed: the delay before the next try.
    pub fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        self.delay()
    }

    /// The delay before the next try.
    #[must_use]
    pub fn delay(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.period.saturating_mul(factor).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets_on_success() {
        let second = Duration::from_secs(1);
        let mut backoff = Backoff::new(second, Duration::from_secs(60));
        assert_eq!(backoff.delay(), second);
        let delays: Vec<u64> = (0..8).map(|_| backoff.failed().as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
        for _ in 0..100 {
            assert_eq!(backoff.failed(), Duration::from_secs(60));
        }
        assert_eq!(backoff.succeeded(), 108);
        assert_eq!(backoff.delay(), second);
        assert_eq!(backoff.succeeded(), 0);
    }
}
