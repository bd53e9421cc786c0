//! Tells cargo to rebuild the kernel object when bpf-linker changes, since cargo cannot see it.
use std::env;

fn main() {
    if env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("bpf") {
        return;
    }
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
