//! Every second: re-reads interface names over rtnetlink, so that an interface that exists
//! only briefly between two queries still gets its name.
use std::{sync::Arc, time::Duration};

use super::run_periodically;
use crate::daemon::{shutdown::Shutdown, state::Daemon};

pub async fn run(daemon: Arc<Daemon>, shutdown: Shutdown) {
    run_periodically(
        "interface follower",
        Duration::from_secs(1),
        shutdown,
        move || {
            daemon
                .interfaces()
                .refresh()
                .map_err(|error| format!("cannot list interfaces over rtnetlink: {error}"))
        },
    )
    .await;
}
