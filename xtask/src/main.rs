//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! **Layer:** workspace only (the table in `xtask/src/layers.rs`): may depend on any
//! workspace crate.
//!
//! - `cargo xtask test`: installs the programs the tests need when missing (nats-server,
//!   etcd, etcdctl, redis-server, protoc, chromium, node, npm, gcc, python3, with
//!   apt-get; cbindgen with cargo install), then
//!   formatting, lints, the dependency-layering check (the layer table of `layers.rs`
//!   and the sans-IO crates), `npm ci` in clients/js, every test
//!   (against a nats-server, etcd and redis-server it starts on free loopback ports and
//!   exports as `PITAYA_TEST_*`, see
//!   `pitaya-test-services`), docs, and `cargo deny` when it is installed. This is what CI
//!   runs (`.ci/run`).
//! - `cargo xtask build-ffi [--release] [--header]`: the C ABI's library and its C
//!   example in `target/ffi` (see `ffi.rs`); `cargo xtask test` builds them too, and
//!   runs the C and Python examples in pitaya-ffi's tests.
//! - `cargo xtask bench`: Criterion benches, callgrind instruction counts, then load on
//!   the echo example against a hand-written baseline server; each case is printed
//!   against a baseline measured in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod bench;
mod ffi;
mod layers;
mod services;

#[derive(Parser)]
#[command(about = "Project automation for the Pitaya Rust workspace")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check formatting and lints, then run every test (what CI runs).
    Test {
        /// Skip `cargo fmt --check` and clippy (for a quick local test run).
        #[arg(long)]
        no_lint: bool,
    },
    /// Run the benchmarks and print figures against their baselines.
    Bench(bench::Sections),
    /// Build the C ABI (crates/pitaya-ffi) and its C example into target/ffi.
    BuildFfi {
        /// Build the library in release mode (default: debug).
        #[arg(long)]
        release: bool,
        /// Regenerate crates/pitaya-ffi/include/pitaya.h with cbindgen first.
        #[arg(long)]
        header: bool,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    match cli.command {
        Cmd::Test { no_lint } => test(no_lint),
        Cmd::Bench(sections) => bench::run(&root, sections),
        Cmd::BuildFfi { release, header } => ffi::build(&root, release, header),
    }
}

fn test(no_lint: bool) -> Result<()> {
    let started = Instant::now();
    report_disk_space("before the build");
    // First: clippy builds etcd-client, whose build script runs protoc.
    services::ensure_tools()?;
    // The header check (crates/pitaya-ffi/tests/header.rs) runs cbindgen.
    ffi::ensure_cbindgen()?;
    if !no_lint {
        cargo(&["fmt", "--all", "--", "--check"])?;
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])?;
    }
    check_layering()?;
    // The JS client's node tests and the chat page's browser test (examples/tests) run
    // with its devDependencies (ws, playwright-core), pinned by its package-lock.json.
    run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir("clients/js"))?;
    // Everything the tests need is built first, so the C example can be linked against
    // the pitaya-ffi library of this very build (crates/pitaya-ffi/tests run it); the
    // test run below then compiles nothing.
    cargo(&["test", "--workspace", "--all-features", "--no-run"])?;
    let root = workspace_root()?;
    ffi::compile_examples(&root, &ffi::test_build_dir(&root))?;
    let services = services::TestServices::start();
    let tests = run(cargo_command(&["test", "--workspace", "--all-features"]).envs(services.env()));
    drop(services);
    report_disk_space("after the tests");
    tests?;
    // The server runtime without the cluster runtime in its build: a standalone server
    // assembled without the facade (crates/pitaya-server/tests/standalone.rs).
    cargo(&["test", "-p", "pitaya-server", "--no-default-features", "--test", "standalone"])?;
    // The cargo-fuzz targets live in their own workspace; make sure they still compile.
    cargo(&["check", "--manifest-path", "crates/pitaya-codec/fuzz/Cargo.toml", "--bins"])?;
    run(cargo_command(&["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    cargo_deny()?;
    eprintln!("xtask test: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Crates that must stay runtime-free (sans-IO): no tokio in their normal dependencies.
const SANS_IO: [&str; 2] = ["pitaya-codec", "pitaya-serialize"];

fn check_layering() -> Result<()> {
    layers::check()?;
    for krate in SANS_IO {
        let out = Command::new("cargo")
            .args(["tree", "-p", krate, "-e", "normal", "--prefix", "none", "--quiet"])
            .output()
            .context("running cargo tree")?;
        if !out.status.success() {
            bail!("cargo tree -p {krate} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let tree = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = tree.lines().find(|l| l.starts_with("tokio") || l.starts_with("mio ")) {
            bail!("{krate} must not depend on an async runtime, but its tree has `{line}`");
        }
    }
    eprintln!(
        "xtask: layering ok ({} layers, each crate on lower ones only; {} have no async runtime)",
        layers::LAYERS.len(),
        SANS_IO.join(", ")
    );
    Ok(())
}

fn cargo_deny() -> Result<()> {
    let present = Command::new("cargo")
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        eprintln!(
            "xtask: SKIPPING `cargo deny check licenses bans sources`: cargo-deny is not \
             installed (install it with `cargo install cargo-deny` to run this check)"
        );
        return Ok(());
    }
    cargo(&["deny", "--offline", "check", "licenses", "bans", "sources"])
}

fn cargo(args: &[&str]) -> Result<()> {
    run(&mut cargo_command(args))
}

/// A cargo command for the test run. Incremental compilation is off: a full run rebuilds
/// little that an incremental cache would save, and that cache took 3 GB of a clean CI
/// machine's disk (see the `[profile.dev]` comment in Cargo.toml).
fn cargo_command(args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(args).env("CARGO_INCREMENTAL", "0");
    cmd
}

/// Prints the free space where target/ lives, so that a run which dies in the linker for
/// want of disk says so in its log. Best effort: a machine without `df` prints nothing.
fn report_disk_space(when: &str) {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    if let Ok(out) =
        Command::new("df").args(["-h", "--output=avail,size,target"]).arg(&target).output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = text.lines().nth(1) {
            eprintln!(
                "xtask: disk {when}: {} (avail, size, mount)",
                line.split_whitespace().collect::<Vec<_>>().join(" ")
            );
        }
    }
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask lives one level below the workspace root")
}
