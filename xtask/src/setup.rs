//! Installs what building the kernel programs needs, only where it is missing, saying so.
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::run;

/// Debian packages: LLVM 22 (bpf-linker links against it; it matches rustc's LLVM) and zstd.
const PACKAGES: [&str; 2] = ["llvm-22-dev", "libzstd-dev"];
/// Where llvm-22-dev installs LLVM.
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// The bpf-linker release known to build against LLVM 22 here.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Ensures every toolchain piece is present.
pub fn ensure_toolchain() -> Result<()> {
    ensure_packages()?;
    ensure_rust_src()?;
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

fn ensure_packages() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .into_iter()
        .filter(|p| !package_installed(p))
        .collect();
    if missing.is_empty() {
        eprintln!("xtask: {} already installed", PACKAGES.join(", "));
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

fn ensure_rust_src() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()
        .context("rustup is needed to build the kernel programs with the nightly toolchain")?;
    if !installed.status.success() {
        bail!(
            "the nightly Rust toolchain is missing; install it with `rustup toolchain install nightly --component rust-src`"
        );
    }
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        eprintln!("xtask: nightly rust-src already installed");
        return Ok(());
    }
    eprintln!(
        "xtask: adding rust-src to the nightly toolchain (to build core for bpfel-unknown-none)"
    );
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
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
