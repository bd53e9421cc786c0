//! Every second: re-resolves the cgroups of rules (a cgroup made again, a restarted service,
//! has a new id) and drops temporary rules whose cgroup is gone.
use std::{sync::Arc, time::Duration};

use super::run_periodically;
use crate::{
    daemon::{shutdown::Shutdown, state::Daemon},
    rules::sync as rule_sync,
};

pub async fn run(daemon: Arc<Daemon>, shutdown: Shutdown) {
    run_periodically(
        "rule re-resolver",
        Duration::from_secs(1),
        shutdown,
        move || rule_sync::resolve_and_sync(&daemon),
    )
    .await;
}
