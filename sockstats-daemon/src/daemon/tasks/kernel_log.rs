//! Forwards what the kernel programs log (cold paths only: full maps and the like) to the
//! daemon's log, until shutdown.
use crate::{daemon::shutdown::Shutdown, sys::kernel_logs};

pub async fn run(program_id: u32, mut shutdown: Shutdown) {
    let logger = match aya_log::EbpfLogger::init_from_id(program_id) {
        Ok(logger) => logger,
        Err(error) => {
            log::warn!("kernel program logs unavailable: {error}");
            return;
        }
    };
    let Ok(mut logger) = kernel_logs::pollable(logger) else {
        log::warn!("kernel program logs unavailable: cannot poll the log ring buffer");
        return;
    };
    loop {
        let ready = tokio::select! {
            ready = logger.readable_mut() => ready,
            () = shutdown.wait() => return,
        };
        let Ok(mut guard) = ready else {
            return;
        };
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}
