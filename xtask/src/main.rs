//! `cargo xtask`: set-up, build, run and test sockstats on a fresh Debian machine.
//!
//! - `cargo xtask setup`: install what is missing (LLVM 22, libzstd, bpf-linker, nightly rust-src).
//! - `cargo xtask run [-- DAEMON ARGS]`: set up, build (release) and start `sockstatsd`.
//! - `cargo xtask test`: set up, build, run the unit tests, the root integration tests, then
//!   vm-test on every kernel it knows.
//! - `cargo xtask vm-test [KERNEL…]`: the exact-count smoke suite inside QEMU guests running
//!   Debian's 5.10, 6.1, 6.12 and newest kernels.
//! - `cargo xtask soak`, `cargo xtask install`: see `cargo xtask help`.
//! - `cargo xtask deb`: a Debian package in `target/deb` (see `deb.rs`).
//! - `cargo xtask bench [-- ARGS]`: set up (nethogs too), build (release) and run the benchmarks.
mod deb;
mod install;
mod python;
mod run;
mod setup;
mod vm;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Set up, build, run and test sockstats")]
struct Args {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install the missing toolchain pieces: llvm-22-dev, libzstd-dev, bpf-linker, rust-src.
    Setup,
    /// Set up and build everything (debug, or release with --release).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Set up, build in release mode and start sockstatsd (as root) with ARGS.
    Run {
        /// Arguments for sockstatsd, after `--` (see `sockstatsd --help`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Set up, build, then run the unit tests, the root integration tests and vm-test.
    Test {
        /// Only the unit tests (no root needed).
        #[arg(long)]
        unit_only: bool,
    },
    /// Root: the socket-churn test at full size (a million short-lived connections, half of
    /// them labeled): the per-socket maps end at their baseline and every byte is counted.
    Soak {
        /// Connections to open and close.
        #[arg(long, default_value_t = 1_000_000)]
        sockets: u64,
    },
    /// Set up, build in release mode and install the binaries, the systemd unit, a sample
    /// rules file (/etc/sockstats/rules.conf) and config file (/etc/sockstats/sockstats.conf),
    /// neither overwritten once there, shell completions and man pages.
    Install(install::InstallArgs),
    /// Set up, build in release mode and make a Debian package of what `install` installs
    /// (prefix /usr): target/deb/sockstats_<version>_<arch>.deb. Installing it starts nothing.
    Deb(deb::DebArgs),
    /// Set up (nethogs included), build in release mode and run the benchmarks (as root):
    /// `cargo xtask bench [--quick] [--rounds N] ...` (see `--help` of sockstats-bench).
    Bench {
        /// Arguments for sockstats-bench, e.g. `--quick` or `--rounds 9`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Boot Debian kernels under QEMU and run the exact-count smoke suite in each (as root).
    VmTest {
        /// Kernels to boot: 5.10, 6.1, 6.12, newest (default: all).
        kernels: Vec<String>,
    },
}

/// The workspace root (xtask lives one level below it).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_owned()
}

/// Runs `command`, echoing it, and fails if it fails.
pub fn run(command: &mut Command) -> Result<()> {
    eprintln!("xtask: running {command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

#[must_use]
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// `cargo xtask` itself, as a user types it (`cargo run --quiet --package xtask --`): for a
/// task that checks another task as a user would run it.
#[must_use]
pub fn xtask() -> Command {
    let mut command = cargo();
    command.args(["run", "--quiet", "--package", "xtask", "--"]);
    command
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn main() -> ExitCode {
    match run_task(Args::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_task(task: Task) -> Result<()> {
    match task {
        Task::Setup => setup::ensure_toolchain(),
        Task::Build { release } => {
            setup::ensure_toolchain()?;
            build(release)
        }
        Task::Run { args } => {
            setup::ensure_toolchain()?;
            build(true)?;
            if !is_root() {
                bail!(
                    "sockstatsd loads eBPF programs and must run as root: `sudo cargo xtask run`"
                );
            }
            run::run_daemon(&workspace_root().join("target/release"), &args)
        }
        Task::Test { unit_only } => {
            setup::ensure_toolchain()?;
            test(unit_only)
        }
        Task::VmTest { kernels } => {
            setup::ensure_toolchain()?;
            vm::vm_test(&kernels)
        }
        Task::Soak { sockets } => {
            setup::ensure_toolchain()?;
            build(false)?;
            if !is_root() {
                bail!("the soak test loads eBPF programs and needs root: `sudo cargo xtask soak`");
            }
            run(cargo()
                .args([
                    "test",
                    "--package",
                    "sockstats-tests",
                    "--test",
                    "accounting",
                ])
                .args(["--", "--ignored", "--exact"])
                .arg("socket_churn_leaves_the_maps_at_baseline_and_every_byte_counted")
                .env("SOCKSTATS_CHURN", sockets.to_string())
                .env(
                    "SOCKSTATSD",
                    workspace_root().join("target/debug/sockstatsd"),
                ))
        }
        Task::Install(args) => install::install(&args, || {
            setup::ensure_toolchain()?;
            build(true)
        }),
        Task::Deb(args) => {
            let binaries = if let Some(dir) = args.binaries {
                dir
            } else {
                setup::ensure_toolchain()?;
                build(true)?;
                workspace_root().join("target/release")
            };
            if args.check && !is_root() {
                bail!("the package check installs and removes it: `sudo cargo xtask deb --check`");
            }
            deb::build(&binaries)?;
            if args.check {
                deb::check_built()?;
            }
            Ok(())
        }
        Task::Bench { args } => bench(&args),
    }
}

fn bench(args: &[String]) -> Result<()> {
    setup::ensure_toolchain()?;
    let wants_help = args.iter().any(|a| a == "--help" || a == "-h");
    let skips_nethogs = args.iter().any(|a| a == "--no-nethogs");
    if !wants_help && !skips_nethogs {
        setup::ensure_bench_tools()?;
    }
    build(true)?;
    let bench = workspace_root().join("target/release/sockstats-bench");
    if !wants_help && !is_root() {
        bail!("the benchmarks load eBPF programs and need root: `sudo cargo xtask bench`");
    }
    run(Command::new(bench).current_dir(workspace_root()).args(args))?;
    if wants_help {
        return Ok(());
    }
    // The usage history's costs: recording 11,000 accounts, and a 3-year query (no root needed).
    eprintln!("xtask: the usage history's recording and query costs");
    run(&mut Command::new(
        workspace_root().join("target/release/examples/history_bench"),
    ))
}

fn build(release: bool) -> Result<()> {
    let mut command = cargo();
    command.args(["build", "--bins", "--examples"]);
    if release {
        command.arg("--release");
    }
    run(&mut command)
}

fn test(unit_only: bool) -> Result<()> {
    build(false)?;
    eprintln!("xtask: formatting and lints");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The kernel programs only exist for the BPF target: lint them there, with nightly.
    run(Command::new("rustup")
        .current_dir(workspace_root())
        .env_remove("RUSTC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .args([
            "run",
            "nightly",
            "cargo",
            "clippy",
            "--package",
            "sockstats-ebpf",
            "--release",
        ])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .args(["--target-dir", "target/ebpf-clippy", "--", "-D", "warnings"]))?;
    eprintln!("xtask: unit tests (no root needed)");
    run(cargo().args(["test"]))?;
    if unit_only {
        return Ok(());
    }
    if !is_root() {
        bail!("the integration tests load eBPF programs and need root: run `sudo cargo xtask test` (or `cargo xtask test --unit-only`)");
    }
    setup::ensure_test_tools()?;
    eprintln!("xtask: root integration tests against the real kernel (one at a time)");
    let daemon = workspace_root().join("target/debug/sockstatsd");
    run(cargo()
        .args([
            "test",
            "--package",
            "sockstats-tests",
            "--",
            "--ignored",
            "--test-threads=1",
        ])
        .env("SOCKSTATSD", daemon))?;
    check_install()?;
    deb::check_package(&workspace_root().join("target/debug"))?;
    eprintln!("xtask: the smoke suite on Debian's kernels, in QEMU guests");
    vm::vm_test(&[])?;
    eprintln!("xtask: all tests passed");
    Ok(())
}

/// Stages an installation of the debug build and checks what it put in place.
fn check_install() -> Result<()> {
    eprintln!("xtask: staged install and systemd unit check");
    let binaries = workspace_root().join("target/debug");
    let destdir = workspace_root().join("target/install-check");
    let _ = std::fs::remove_dir_all(&destdir);
    run(xtask()
        .args(["install", "--destdir"])
        .arg(&destdir)
        .arg("--binaries")
        .arg(&binaries))?;
    for path in install::installed_files(Path::new("/usr/local")) {
        let staged = destdir.join(path.strip_prefix("/").expect("absolute"));
        if !staged.is_file() {
            bail!("`cargo xtask install` did not install {}", path.display());
        }
    }
    install::verify_unit(&binaries)
}
