//! The one shutdown signal: SIGTERM (or SIGINT) triggers it once, and every task holds a
//! [`Shutdown`] that sees it (as mini-redis' `Shutdown`).
use std::time::Duration;

use tokio::sync::watch;

/// Triggers the shutdown of everything holding a [`Shutdown`] of its channel.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A task's view of the shutdown signal. Clone one for every task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new signal, not yet triggered.
#[must_use]
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger(sender), Shutdown(receiver))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Has shutdown been triggered?
    #[must_use]
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once shutdown is triggered (or its trigger is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }

    /// Sleeps for `duration`; `false` when shutdown came first.
    pub async fn sleep(&mut self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.wait() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_holder_sees_the_trigger() {
        let (trigger, mut first) = channel();
        let mut second = first.clone();
        assert!(first.sleep(Duration::from_millis(5)).await);
        assert!(!first.is_triggered());
        let waiting = tokio::spawn(async move { second.wait().await });
        trigger.trigger();
        waiting.await.unwrap();
        assert!(first.is_triggered());
        assert!(!first.sleep(Duration::from_secs(3600)).await);
    }
}
