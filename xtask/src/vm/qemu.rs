//! Booting one kernel with the initramfs under QEMU (TCG: KVM is unusable on these machines)
//! and reading the suite's `VMTEST` lines from the serial console.
//!
//! The guest has no network device (`-nic none`): only its own loopback.
use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

/// How long one guest may take from boot to power-off.
const GUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// What one guest reported.
#[derive(Debug, Default)]
pub struct GuestReport {
    /// `uname -r` inside the guest.
    pub kernel: Option<String>,
    /// The payload hook set and the reason.
    pub hooks: Option<String>,
    /// What the daemon said the kernel cannot do.
    pub limits: Vec<String>,
    /// (check, `ok` or `FAIL <why>`), in order.
    pub checks: Vec<(String, String)>,
    /// The suite's failure count, if it ran to the end.
    pub failures: Option<u32>,
    pub elapsed: Duration,
    /// The whole console output, for a failure report.
    pub console: String,
}

/// Boots `image` with `initramfs` and collects the report. `hooks`: the daemon's
/// `--payload-hooks` in the guest.
pub fn boot(image: &Path, initramfs: &Path, hooks: &str) -> Result<GuestReport> {
    let started = Instant::now();
    let output = Command::new("timeout")
        .args(["--kill-after=10", &GUEST_TIMEOUT.as_secs().to_string()])
        .arg("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1024", "-smp", "2"])
        .args([
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(image)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init SOCKSTATS_PAYLOAD_HOOKS={hooks}"
        ))
        .output()
        .context("running qemu-system-x86_64 under timeout")?;
    let console = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    let mut report = parse(&console);
    report.elapsed = started.elapsed();
    report.console = console;
    Ok(report)
}

/// The `VMTEST` lines of a console log.
fn parse(console: &str) -> GuestReport {
    let mut report = GuestReport::default();
    for line in console.lines() {
        // The firmware's terminal escapes may precede the first line on the same line.
        let Some(at) = line.find("VMTEST ") else {
            continue;
        };
        let rest = line[at + "VMTEST ".len()..].trim();
        let (key, value) = rest.split_once(' ').unwrap_or((rest, ""));
        match key {
            "kernel" => report.kernel = Some(value.to_owned()),
            "hooks" => report.hooks = Some(value.to_owned()),
            "limit" => report.limits.push(value.to_owned()),
            "check" => {
                let (name, result) = value.split_once(' ').unwrap_or((value, ""));
                report.checks.push((name.to_owned(), result.to_owned()));
            }
            "end" => report.failures = value.trim().parse().ok(),
            _ => {}
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_suites_lines_among_kernel_noise() {
        let console =
            "[    1.0] random: crng\n\x1bc\x1b[?7lVMTEST kernel 5.10.0-46-cloud-amd64\r\n\
                       VMTEST hooks fexit tp_btf: none\nVMTEST check tcp/ipv4 ok\n\
                       VMTEST check udp/ipv6 FAIL counted 1 moved 2\nVMTEST end 1\n";
        let report = parse(console);
        assert_eq!(report.kernel.as_deref(), Some("5.10.0-46-cloud-amd64"));
        assert_eq!(report.hooks.as_deref(), Some("fexit tp_btf: none"));
        assert_eq!(report.checks.len(), 2);
        assert_eq!(report.checks[1].1, "FAIL counted 1 moved 2");
        assert_eq!(report.failures, Some(1));
    }
}
