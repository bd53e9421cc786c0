//! Builds the kernel programs (`sockstats-ebpf`) for bpfel-unknown-none with aya-build, so that
//! `cargo build` is the only build command. The object lands in `$OUT_DIR/sockstats-ebpf` and is
//! embedded in `sockstatsd`.
//!
//! The object is then stripped of its DWARF (`llvm-objcopy --strip-debug`, from LLVM 22 like
//! bpf-linker): bpf-linker needs DWARF to emit BTF, but the kernel and aya only use `.BTF` and
//! `.BTF.ext`, which stripping keeps; the DWARF was 5 of the object's 6.5 MB, all of it read into
//! the daemon's memory at every start.
//!
//! `AYA_BUILD_SKIP=1` skips the kernel build (for `cargo check`/`clippy` on machines without
//! bpf-linker): an empty object is written instead, and `sockstatsd` then refuses to start.
use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{bail, Context as _};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = out_dir.join("sockstats-ebpf");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
        println!(
            "cargo:warning=AYA_BUILD_SKIP is set: sockstatsd is built without its kernel programs"
        );
        fs::write(&object, []).context("writing the empty stand-in object")?;
        return Ok(());
    }
    if Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!(
            "bpf-linker is not installed; run `cargo xtask setup` (it installs LLVM 22, \
             bpf-linker and nightly rust-src), or set AYA_BUILD_SKIP=1 to only check the code"
        );
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("no manifest dir")?);
    let ebpf_dir = manifest_dir.join("../sockstats-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "sockstats-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )?;
    strip_debug_info(&object)
}

/// Where llvm-22-dev installs `llvm-objcopy` (`cargo xtask setup` installs it).
const LLVM_OBJCOPY: &str = "/usr/lib/llvm-22/bin/llvm-objcopy";

/// Removes the `.debug_*` sections (and their relocations) from the built object, in place.
fn strip_debug_info(object: &std::path::Path) -> anyhow::Result<()> {
    let status = Command::new(LLVM_OBJCOPY)
        .arg("--strip-debug")
        .arg(object)
        .status()
        .with_context(|| {
            format!("cannot run {LLVM_OBJCOPY}; run `cargo xtask setup` (it installs LLVM 22)")
        })?;
    if !status.success() {
        bail!(
            "{LLVM_OBJCOPY} --strip-debug {} failed: {status}",
            object.display()
        );
    }
    Ok(())
}
