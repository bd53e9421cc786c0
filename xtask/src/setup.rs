//! Installs what building the kernel programs needs, only where it is missing, saying so.
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::run;

/// Debian packages: LLVM 22 (bpf-linker links against it; it matches rustc's LLVM), zstd, and
/// iproute2 (the integration tests make network namespaces and veth pairs with `ip`).
const PACKAGES: [&str; 3] = ["llvm-22-dev", "libzstd-dev", "iproute2"];
/// Debian packages only `cargo xtask bench` needs: nethogs, the pcap-based tool it compares with,
/// and the real servers and load generators it measures (nginx with `ab` from
/// apache2-utils, iperf3).
const BENCH_PACKAGES: [&str; 4] = ["nethogs", "nginx", "apache2-utils", "iperf3"];
/// Debian packages only the root integration tests need: Prometheus, which scrapes a test
/// daemon and evaluates every query of the Grafana dashboard (`tests/tests/fleet.rs`); Podman
/// with runc and a static busybox for its image, whose container's bytes must show under its
/// name (`tests/tests/workloads.rs`); a TrueType font for the text of `sockstats history
/// --plot` (`tests/tests/history.rs`).
const TEST_PACKAGES: [&str; 5] = [
    "prometheus",
    "podman",
    "runc",
    "busybox-static",
    "fonts-dejavu-core",
];
/// Debian's `invoke-rc.d` asks this script whether a package may start its service; exit code
/// 101 says no.
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
/// Components of the nightly toolchain: the core sources to build for bpfel-unknown-none, and
/// clippy to lint the kernel programs.
const NIGHTLY_COMPONENTS: [&str; 2] = ["rust-src", "clippy"];
/// Where llvm-22-dev installs LLVM.
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// The bpf-linker release known to build against LLVM 22 here.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Ensures every toolchain piece is present.
pub fn ensure_toolchain() -> Result<()> {
    ensure_packages(&PACKAGES)?;
    ensure_nightly_components()?;
    ensure_bpf_linker()?;
    eprintln!("xtask: toolchain ready");
    Ok(())
}

fn package_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

/// Ensures the tools the benchmarks compare with and the servers they run are present.
pub fn ensure_bench_tools() -> Result<()> {
    ensure_packages(&BENCH_PACKAGES)
}

/// Ensures what the root integration tests run is present, without starting its service:
/// each test runs a Prometheus of its own, on a free loopback port; and the Python modules of
/// the OTLP receiver ([`crate::python`]).
pub fn ensure_test_tools() -> Result<()> {
    crate::python::ensure_otlp_modules()?;
    if TEST_PACKAGES.iter().all(|p| package_installed(p)) {
        return ensure_packages(&TEST_PACKAGES);
    }
    let made_policy = !std::path::Path::new(POLICY_RC_D).exists();
    if made_policy {
        write_no_start_policy().context("cannot keep apt from starting services")?;
    }
    let installed = ensure_packages(&TEST_PACKAGES);
    if made_policy {
        std::fs::remove_file(POLICY_RC_D)
            .with_context(|| format!("cannot remove {POLICY_RC_D}"))?;
    }
    installed
}

/// A `policy-rc.d` that forbids every service start, for the length of an install.
fn write_no_start_policy() -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(
        POLICY_RC_D,
        "#!/bin/sh\n# cargo xtask test: no service starts while it installs\nexit 101\n",
    )?;
    std::fs::set_permissions(POLICY_RC_D, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Installs the Debian `packages` that are missing, with the machine's own apt sources.
pub fn ensure_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if missing.is_empty() {
        eprintln!("xtask: {} already installed", packages.join(", "));
        return Ok(());
    }
    eprintln!("xtask: installing {} with apt-get", missing.join(", "));
    run(Command::new("apt-get").arg("update").arg("-q"))
        .context("apt-get update failed (are you root?)")?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context("apt-get install failed (are you root?)")
}

fn ensure_nightly_components() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .context("rustup is needed to build the kernel programs with the nightly toolchain")?;
    if !installed.status.success() {
        bail!(
            "the nightly Rust toolchain is missing; install it with `rustup toolchain install nightly --component rust-src`"
        );
    }
    let listed = String::from_utf8_lossy(&installed.stdout).into_owned();
    for component in NIGHTLY_COMPONENTS {
        if listed.lines().any(|l| l.starts_with(component)) {
            eprintln!("xtask: nightly {component} already installed");
            continue;
        }
        eprintln!("xtask: adding {component} to the nightly toolchain");
        run(Command::new("rustup").args([
            "component",
            "add",
            component,
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn ensure_bpf_linker() -> Result<()> {
    let present = Command::new("bpf-linker").arg("--version").output();
    if let Ok(out) = present {
        if out.status.success() {
            eprintln!(
                "xtask: {} already installed",
                String::from_utf8_lossy(&out.stdout).trim()
            );
            return Ok(());
        }
    }
    eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)");
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--version",
            BPF_LINKER_VERSION,
        ])
        .args(["--no-default-features", "--features", "llvm-22"])
        .env("LLVM_PREFIX", LLVM_PREFIX))
}
