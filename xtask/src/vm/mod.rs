//! `cargo xtask vm-test [KERNEL…]`: the exact-count smoke suite on real Debian kernels.
//!
//! Fetches and caches the kernels (a private apt state under `target/vm`, never the machine's
//! `/etc/apt`), builds static `sockstatsd`, `sockstats` and `vm-smoke` binaries, packs them with
//! busybox into an initramfs, boots each kernel under QEMU TCG and runs `vm-smoke` inside
//! (see tests/src/bin/vm-smoke.rs), then prints a check × kernel table. Fails on any check
//! that did not pass, and on a guest that did not finish.
mod apt;
mod initramfs;
mod kernel;
mod qemu;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

use crate::{cargo, run, setup, workspace_root};
use apt::PrivateApt;
use kernel::{Kernel, KernelSpec, KERNELS};
use qemu::GuestReport;

/// Host packages vm-test needs: QEMU, and zstd to unpack zstd-compressed kernels.
const PACKAGES: [&str; 2] = ["qemu-system-x86", "zstd"];
/// The target of the static binaries (glibc, statically linked).
const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// One guest to boot: a kernel, and the payload hooks its daemon may use.
#[derive(Debug, Clone, Copy)]
struct Run {
    spec: KernelSpec,
    /// `auto`, or `fexit` to test the fallback where the tracepoints exist.
    hooks: &'static str,
}

/// The default matrix: every kernel as the daemon would run there, and the fexit fallback
/// forced on the kernels that have the tracepoints.
const FORCED_FEXIT: [&str; 2] = ["6.12", "newest"];

/// Runs the suite on `names` (`5.10`, `6.1`, `6.12`, `newest`, each optionally `:fexit`;
/// the whole default matrix when empty).
pub fn vm_test(names: &[String]) -> Result<()> {
    let started = Instant::now();
    let runs = select(names)?;
    setup::ensure_packages(&PACKAGES)?;
    let vm_dir = workspace_root().join("target/vm");
    fs::create_dir_all(&vm_dir)?;
    let bins = build_static()?;
    let mut apt = None;
    let busybox = fetch_busybox(&vm_dir, &mut apt)?;
    let initramfs = vm_dir.join("initramfs.cpio");
    initramfs::write(&initramfs, &busybox, &bins)?;
    let mut kernels: Vec<(Kernel, &str)> = Vec::new();
    for run in &runs {
        let kernel = match kernels.iter().find(|(k, _)| k.spec.name == run.spec.name) {
            Some((kernel, _)) => kernel.clone(),
            None => kernel::fetch(run.spec, &vm_dir, &mut apt)?,
        };
        kernels.push((kernel, run.hooks));
    }
    eprintln!(
        "xtask: vm-test: built and fetched in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let mut reports = Vec::new();
    for (kernel, hooks) in &kernels {
        eprintln!(
            "xtask: vm-test: booting {} (Debian's {}, {}), payload hooks {hooks}",
            kernel.release,
            kernel.package,
            kernel.image.display()
        );
        let mut report = qemu::boot(&kernel.image, &initramfs, hooks)?;
        if report.kernel.is_none() {
            // The kernel died before running /init, so before any of our code: seen once on
            // 7.2 under TCG with two vCPUs (an int3 in ktime_get while patching its text).
            let log = vm_dir.join(format!("console-{}-{hooks}-boot.log", kernel.spec.name));
            fs::write(&log, &report.console)?;
            eprintln!(
                "xtask: vm-test: {} crashed before /init (console in {}); booting it once more",
                kernel.release,
                log.display()
            );
            report = qemu::boot(&kernel.image, &initramfs, hooks)?;
        }
        let passed = report.failures == Some(0);
        eprintln!(
            "xtask: vm-test: {} {} in {:.1} s",
            kernel.release,
            if passed { "passed" } else { "FAILED" },
            report.elapsed.as_secs_f64()
        );
        if !passed {
            let log = vm_dir.join(format!("console-{}-{hooks}.log", kernel.spec.name));
            fs::write(&log, &report.console)?;
            eprintln!(
                "xtask: vm-test: console of {} in {}",
                kernel.release,
                log.display()
            );
            eprintln!("{}", tail(&report.console, 60));
        }
        reports.push(report);
    }
    println!("{}", table(&kernels, &reports));
    for ((kernel, _), report) in kernels.iter().zip(&reports) {
        for limit in &report.limits {
            println!("{}: kernel limit: {limit}", kernel.release);
        }
    }
    for ((kernel, _), report) in kernels.iter().zip(&reports) {
        for (check, result) in &report.checks {
            if result != "ok" {
                eprintln!("xtask: vm-test: {} {check}: {result}", kernel.release);
            }
        }
    }
    eprintln!(
        "xtask: vm-test: {} kernels in {:.0} s",
        kernels.len(),
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<&str> = kernels
        .iter()
        .zip(&reports)
        .filter(|(_, r)| r.failures != Some(0))
        .map(|((k, _), _)| k.release.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("vm-test failed on {}", failed.join(", "));
    }
    Ok(())
}

fn select(names: &[String]) -> Result<Vec<Run>> {
    let spec = |name: &str| {
        KERNELS
            .iter()
            .find(|k| k.name == name)
            .copied()
            .with_context(|| {
                let known: Vec<&str> = KERNELS.iter().map(|k| k.name).collect();
                format!(
                    "unknown kernel {name}; vm-test knows {} (each also as NAME:fexit)",
                    known.join(", ")
                )
            })
    };
    if names.is_empty() {
        let auto = KERNELS.iter().map(|&spec| Run {
            spec,
            hooks: "auto",
        });
        let forced = FORCED_FEXIT.iter().map(|name| Run {
            spec: spec(name).expect("a known kernel"),
            hooks: "fexit",
        });
        return Ok(auto.chain(forced).collect());
    }
    names
        .iter()
        .map(|name| match name.split_once(':') {
            Some((base, "fexit")) => Ok(Run {
                spec: spec(base)?,
                hooks: "fexit",
            }),
            Some((_, other)) => bail!("unknown variant :{other}; only :fexit is known"),
            None => Ok(Run {
                spec: spec(name)?,
                hooks: "auto",
            }),
        })
        .collect()
}

/// Builds the static daemon, CLI and suite; returns their directory.
fn build_static() -> Result<PathBuf> {
    let flags_var = format!(
        "CARGO_TARGET_{}_RUSTFLAGS",
        STATIC_TARGET.to_uppercase().replace('-', "_")
    );
    run(cargo()
        .args(["build", "--release", "--target", STATIC_TARGET])
        .args([
            "--package",
            "sockstats-daemon",
            "--package",
            "sockstats-tests",
        ])
        .args([
            "--bin",
            "sockstatsd",
            "--bin",
            "sockstats",
            "--bin",
            "vm-smoke",
        ])
        .env(flags_var, "-C target-feature=+crt-static"))?;
    Ok(workspace_root().join(format!("target/{STATIC_TARGET}/release")))
}

/// Debian's static busybox, cached as `target/vm/busybox`.
fn fetch_busybox(vm_dir: &Path, apt: &mut Option<PrivateApt>) -> Result<PathBuf> {
    let busybox = vm_dir.join("busybox");
    if busybox.exists() {
        return Ok(busybox);
    }
    let apt = PrivateApt::get_or_init(apt, &vm_dir.join("apt"))?;
    let deb = apt.download("busybox-static", &vm_dir.join("debs"))?;
    let tree = vm_dir.join("busybox-tree");
    fs::create_dir_all(&tree)?;
    let mut tar = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let _ = Command::new("tar")
        .args(["-x", "-C"])
        .arg(&tree)
        .args(["--wildcards", "./bin/busybox", "./usr/bin/busybox"])
        .stdin(tar.stdout.take().context("dpkg-deb stdout")?)
        .stderr(Stdio::null())
        .status()
        .context("running tar")?;
    let _ = tar.wait();
    let found = [tree.join("usr/bin/busybox"), tree.join("bin/busybox")]
        .into_iter()
        .find(|p| p.exists())
        .context("busybox-static holds no busybox")?;
    fs::rename(found, &busybox)?;
    fs::remove_dir_all(&tree)?;
    fs::remove_file(&deb)?;
    Ok(busybox)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The check × kernel table, in Markdown (the README carries a copy).
fn table(kernels: &[(Kernel, &str)], reports: &[GuestReport]) -> String {
    let mut checks: Vec<String> = Vec::new();
    for report in reports {
        for (name, _) in &report.checks {
            if !checks.contains(name) {
                checks.push(name.clone());
            }
        }
    }
    let mut out = String::from("| check |");
    for ((kernel, hooks), report) in kernels.iter().zip(reports) {
        let release = report.kernel.as_deref().unwrap_or(&kernel.release);
        let forced = if *hooks == "auto" { "" } else { " (forced)" };
        let _ = write!(out, " {release}{forced} |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(kernels.len()));
    out.push_str("\n| payload hooks |");
    for report in reports {
        let set = report
            .hooks
            .as_deref()
            .and_then(|h| h.split_whitespace().next())
            .unwrap_or("none");
        let _ = write!(out, " {set} |");
    }
    out.push_str("\n| kernel limits |");
    for report in reports {
        let _ = write!(out, " {} |", report.limits.len());
    }
    for check in &checks {
        let _ = write!(out, "\n| {check} |");
        for report in reports {
            let cell = report.checks.iter().find(|(name, _)| name == check).map_or(
                "no result",
                |(_, result)| {
                    if result == "ok" {
                        "ok"
                    } else {
                        "FAIL"
                    }
                },
            );
            let _ = write!(out, " {cell} |");
        }
    }
    out.push_str("\n| guest finished |");
    for report in reports {
        let cell = match report.failures {
            Some(0) => format!("yes, {:.0} s", report.elapsed.as_secs_f64()),
            Some(n) => format!("{n} failed"),
            None => "NO".to_owned(),
        };
        let _ = write!(out, " {cell} |");
    }
    out
}
