//! What happens when a recording crosses a quota's threshold ([`crate::history::quota`]): a
//! warning in the log, and the config's `quota-command` run with the crossing in its
//! environment (README, "Quotas and alerts"). The command runs on a thread of its own, without a shell,
//! for at most [`COMMAND_TIMEOUT`]; its exit status is logged. Nothing waits for it: neither
//! the recording nor any request.
use std::{
    path::Path,
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::history::{
    quota::{ratio, Crossing},
    rfc3339,
};

/// How long a quota command may run before it is killed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a running command is looked at.
const POLL: Duration = Duration::from_millis(50);

/// The environment a quota command gets for `crossing` (beside the daemon's own).
#[must_use]
pub fn environment(crossing: &Crossing) -> Vec<(&'static str, String)> {
    let quota = &crossing.quota;
    vec![
        ("SOCKSTATS_QUOTA", quota.text.clone()),
        ("SOCKSTATS_LABEL", quota.label_name().to_owned()),
        ("SOCKSTATS_INTERFACE", quota.interface_name()),
        ("SOCKSTATS_METERED", u8::from(quota.metered).to_string()),
        ("SOCKSTATS_DIRECTION", quota.direction.name().to_owned()),
        ("SOCKSTATS_PERIOD", quota.period.name().to_owned()),
        ("SOCKSTATS_PERIOD_START", rfc3339(crossing.period_start)),
        ("SOCKSTATS_PERIOD_END", rfc3339(crossing.period_end)),
        ("SOCKSTATS_USED_BYTES", crossing.used.to_string()),
        ("SOCKSTATS_LIMIT_BYTES", quota.limit.to_string()),
        ("SOCKSTATS_WARN_PERCENT", quota.warn_percent.to_string()),
        ("SOCKSTATS_THRESHOLD", crossing.threshold.name().to_owned()),
        (
            "SOCKSTATS_USED_RATIO",
            format!("{:.6}", ratio(quota, crossing.used)),
        ),
    ]
}

/// Logs `crossing` and starts `command` for it, if there is one; returns at once.
pub fn announce(crossing: &Crossing, command: Option<&Path>) {
    let quota = &crossing.quota;
    log::warn!(
        "quota {:?}: {} threshold crossed: {} of {} bytes ({:.1} %) in the {} from {}",
        quota.text,
        crossing.threshold.name(),
        crossing.used,
        quota.limit,
        ratio(quota, crossing.used) * 100.0,
        quota.period.name(),
        rfc3339(crossing.period_start),
    );
    let Some(command) = command else {
        return;
    };
    let command = command.to_owned();
    let environment = environment(crossing);
    let name = format!("{} ({})", quota.text, crossing.threshold.name());
    let spawned = std::thread::Builder::new()
        .name("quota-command".to_owned())
        .spawn(move || {
            let outcome = run(&command, &environment, COMMAND_TIMEOUT);
            match outcome {
                Ok(status) if status.success() => {
                    log::info!("quota command {} for {name}: exited 0", command.display());
                }
                Ok(status) => {
                    log::warn!("quota command {} for {name}: {status}", command.display());
                }
                Err(error) => {
                    log::warn!("quota command {} for {name}: {error}", command.display());
                }
            }
        });
    if let Err(error) = spawned {
        log::warn!(
            "quota command for {:?} not run: cannot start a thread: {error}",
            quota.text
        );
    }
}

/// Why a quota command did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start it: {0}; check that quota-command names an executable file")]
    Spawn(std::io::Error),
    #[error("killed after {} s: make it finish sooner (or start its slow work in the background)", .0.as_secs())]
    Timeout(Duration),
    #[error("cannot wait for it: {0}")]
    Wait(std::io::Error),
}

/// Runs `command` with `environment`, no arguments, stdin from /dev/null, and kills it after
/// `timeout`. Blocks: call it on a thread of its own.
pub fn run(
    command: &Path,
    environment: &[(&'static str, String)],
    timeout: Duration,
) -> Result<ExitStatus, CommandError> {
    let mut child = Command::new(command)
        .envs(environment.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .spawn()
        .map_err(CommandError::Spawn)?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().map_err(CommandError::Wait)? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            // It may have ended just now: then kill fails and wait reaps it.
            let _ = child.kill();
            let _ = child.wait();
            return Err(CommandError::Timeout(timeout));
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::parsed;
    use sockstats_common::protocol::QuotaThreshold;

    fn crossing() -> Crossing {
        let quota = parsed("quota backups interface=wwan0 month 10KiB warn=50%")
            .unwrap()
            .quotas
            .remove(0);
        Crossing {
            quota,
            threshold: QuotaThreshold::Warn,
            period_start: 1_764_547_200, // 2025-12-01
            period_end: 1_767_225_600,   // 2026-01-01
            used: 5120,
        }
    }

    #[test]
    fn the_environment_names_the_crossing() {
        let environment = environment(&crossing());
        let value = |name: &str| {
            environment
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(
            value("SOCKSTATS_QUOTA"),
            "quota backups interface=wwan0 month 10KiB warn=50%"
        );
        assert_eq!(value("SOCKSTATS_LABEL"), "backups");
        assert_eq!(value("SOCKSTATS_INTERFACE"), "wwan0");
        assert_eq!(value("SOCKSTATS_PERIOD"), "month");
        assert_eq!(value("SOCKSTATS_PERIOD_START"), "2025-12-01T00:00:00Z");
        assert_eq!(value("SOCKSTATS_PERIOD_END"), "2026-01-01T00:00:00Z");
        assert_eq!(value("SOCKSTATS_USED_BYTES"), "5120");
        assert_eq!(value("SOCKSTATS_LIMIT_BYTES"), "10240");
        assert_eq!(value("SOCKSTATS_THRESHOLD"), "warn");
        assert_eq!(value("SOCKSTATS_USED_RATIO"), "0.500000");
        assert_eq!(value("SOCKSTATS_DIRECTION"), "both");
    }

    #[test]
    fn runs_a_command_with_the_environment_and_kills_a_slow_one() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        let script = dir.path().join("alert");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$SOCKSTATS_THRESHOLD $SOCKSTATS_USED_BYTES\" > {}\nexit 3\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let status = run(&script, &environment(&crossing()), COMMAND_TIMEOUT).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "warn 5120\n");

        let slow = dir.path().join("slow");
        std::fs::write(&slow, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let started = Instant::now();
        let error = run(&slow, &[], Duration::from_millis(200)).unwrap_err();
        assert!(matches!(error, CommandError::Timeout(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));

        let error = run(&dir.path().join("missing"), &[], COMMAND_TIMEOUT).unwrap_err();
        assert!(error.to_string().starts_with("cannot start it"), "{error}");
    }
}
