//! `cargo xtask build-ffi`: the C ABI's library, header and C example in `target/ffi`.
//!
//! `target/ffi` (under `CARGO_TARGET_DIR` when set) gets `libpitaya_ffi.so` and
//! `libpitaya_ffi.a` (copied from cargo's output) and `echo_backend`, compiled from
//! `examples/ffi/echo_backend.c` against `crates/pitaya-ffi/include/pitaya.h` and linked
//! with rpath `$ORIGIN`, so it starts with no environment set. `--header` first
//! regenerates the header with cbindgen, installed with `cargo install` when missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The cbindgen release the header is generated with; a newer one may format it
/// differently, which the header check would report as stale.
const CBINDGEN_VERSION: &str = "0.29.4";

/// Where cargo puts its output.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// `cargo xtask build-ffi [--release] [--header]`.
pub(crate) fn build(root: &Path, release: bool, header: bool) -> Result<()> {
    crate::services::ensure(&["gcc"], &["gcc"])?;
    if header {
        regenerate_header(root)?;
    }
    let mut args = vec!["build", "-p", "pitaya-ffi"];
    if release {
        args.push("--release");
    }
    crate::cargo(&args)?;
    let built = target_dir(root).join(if release { "release" } else { "debug" });
    compile_examples(root, &built)
}

/// Where `cargo test` leaves the pitaya-ffi libraries it builds for the crate's tests
/// (it does not copy them up to `target/debug` as `cargo build` does).
pub(crate) fn test_build_dir(root: &Path) -> PathBuf {
    target_dir(root).join("debug").join("deps")
}

/// Copies the libraries cargo built into `built` to `target/ffi` and compiles the C
/// example there.
pub(crate) fn compile_examples(root: &Path, built: &Path) -> Result<()> {
    let out = target_dir(root).join("ffi");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for lib in ["libpitaya_ffi.so", "libpitaya_ffi.a"] {
        let from = built.join(lib);
        // Through a new file and a rename: a running example keeps its old mapping
        // instead of failing with "text file busy".
        let tmp = out.join(format!("{lib}.tmp"));
        std::fs::copy(&from, &tmp)
            .with_context(|| format!("copying {} (is pitaya-ffi built?)", from.display()))?;
        std::fs::rename(&tmp, out.join(lib))?;
    }
    let exe = out.join("echo_backend");
    crate::run(
        Command::new("gcc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g"])
            .arg("-I")
            .arg(root.join("crates/pitaya-ffi/include"))
            .arg(root.join("examples/ffi/echo_backend.c"))
            .arg("-L")
            .arg(&out)
            .args(["-lpitaya_ffi", "-lpthread", "-Wl,-rpath,$ORIGIN", "-o"])
            .arg(&exe),
    )?;
    eprintln!("xtask: built {} against {}", exe.display(), out.join("libpitaya_ffi.so").display());
    Ok(())
}

/// Installs cbindgen [`CBINDGEN_VERSION`] with `cargo install` unless that version is
/// on `PATH` (the header check, `crates/pitaya-ffi/tests/header.rs`, runs it).
pub(crate) fn ensure_cbindgen() -> Result<()> {
    let installed = Command::new("cbindgen")
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(CBINDGEN_VERSION));
    if installed {
        return Ok(());
    }
    eprintln!("xtask: cbindgen {CBINDGEN_VERSION} not found; installing it with cargo install");
    crate::run(
        crate::cargo_command(&["install", "cbindgen", "--locked", "--version", CBINDGEN_VERSION])
            .current_dir(std::env::temp_dir()),
    )
}

fn regenerate_header(root: &Path) -> Result<()> {
    ensure_cbindgen()?;
    let krate = root.join("crates/pitaya-ffi");
    let status = Command::new("cbindgen")
        .args(["--config", "cbindgen.toml", "--crate", "pitaya-ffi", "--quiet", "--output"])
        .arg("include/pitaya.h")
        .current_dir(&krate)
        .status()
        .context("running cbindgen")?;
    if !status.success() {
        bail!("cbindgen failed with {status}");
    }
    eprintln!("xtask: regenerated {}", krate.join("include/pitaya.h").display());
    Ok(())
}
