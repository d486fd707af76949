//! `cargo xtask bench`.

use std::path::Path;

use anyhow::Result;

/// Runs the benchmarks.
pub(crate) fn run(_root: &Path, callgrind_only: bool) -> Result<()> {
    if !callgrind_only {
        super::cargo(&["bench", "--workspace"])?;
    }
    Ok(())
}
