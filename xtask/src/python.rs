//! Python modules the root tests run: the OTLP receiver of `tests/tests/otlp.rs`
//! (`tests/tools/otlp_receiver.py`) decodes with `opentelemetry-proto` from the Python package index (and the
//! `protobuf` runtime it needs), which Debian does not package. Installed with pip for the
//! `python3` on PATH, the one the tests start.
use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::setup::ensure_packages;

/// What the receiver imports.
const PROBE: &str = "import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2";
/// The Python packages that provide it.
const PYPI_PACKAGES: [&str; 2] = ["opentelemetry-proto", "protobuf"];

fn importable() -> bool {
    Command::new("python3")
        .args(["-c", PROBE])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Ensures `python3` can import the OTLP definitions, installing them with pip if not (and
/// Debian's `python3-pip` first if pip itself is missing).
pub fn ensure_otlp_modules() -> Result<()> {
    if importable() {
        eprintln!("xtask: python3 already has {}", PYPI_PACKAGES.join(", "));
        return Ok(());
    }
    let has_pip = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_pip {
        ensure_packages(&["python3-pip"])?;
    }
    eprintln!("xtask: installing {} with pip", PYPI_PACKAGES.join(", "));
    let install = |extra: &[&str]| {
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(extra)
            .args(PYPI_PACKAGES)
            .output()
            .context("cannot run python3 -m pip")
    };
    let mut out = install(&[])?;
    // Debian's own python3 is "externally managed" (PEP 668): pip refuses to install into it
    // unless told to. The tests run as root on a test machine, where that is what we want.
    if !out.status.success()
        && String::from_utf8_lossy(&out.stderr).contains("externally-managed-environment")
    {
        out = install(&["--break-system-packages"])?;
    }
    if !out.status.success() {
        bail!(
            "pip could not install {}: {}",
            PYPI_PACKAGES.join(", "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if !importable() {
        bail!(
            "python3 still cannot `{PROBE}` after pip installed {}",
            PYPI_PACKAGES.join(", ")
        );
    }
    Ok(())
}
