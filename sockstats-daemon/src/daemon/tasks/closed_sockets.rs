//! Five times a second: takes the records of the sockets that closed out of the kernel's ring
//! buffer and folds them into the peers of their labels (`get --peers`), before the ring fills.
use std::{sync::Arc, time::Duration};

use super::run_periodically;
use crate::daemon::{shutdown::Shutdown, state::Daemon};

/// How often the ring buffer is emptied: it holds 43,690 records, so up to about 200,000
/// closing sockets a second are all seen.
pub const INTERVAL: Duration = Duration::from_millis(200);

pub async fn run(daemon: Arc<Daemon>, shutdown: Shutdown) {
    run_periodically("closed-socket reader", INTERVAL, shutdown, move || {
        daemon.take_closed_sockets();
        Ok::<(), String>(())
    })
    .await;
}
