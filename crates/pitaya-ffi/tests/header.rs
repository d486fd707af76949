//! The committed header, `include/pitaya.h`, is what cbindgen makes of the sources: a
//! change to the ABI that was not regenerated (`cargo xtask build-ffi --header`) fails
//! here.

use std::process::Command;

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let fresh = std::env::temp_dir().join(format!("pitaya-ffi-header-{}.h", std::process::id()));
    let out = Command::new("cbindgen")
        .args(["--config", "cbindgen.toml", "--crate", "pitaya-ffi", "--quiet", "--output"])
        .arg(&fresh)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "running cbindgen: {e}; install it with `cargo install cbindgen --locked \
                 --version 0.29.4` (cargo xtask test and build-ffi --header do)"
            )
        });
    assert!(out.status.success(), "cbindgen failed: {}", String::from_utf8_lossy(&out.stderr));
    let generated = std::fs::read_to_string(&fresh).expect("the generated header");
    let _ = std::fs::remove_file(&fresh);
    let committed = std::fs::read_to_string(format!("{dir}/include/pitaya.h")).expect("the header");
    assert!(
        generated == committed,
        "crates/pitaya-ffi/include/pitaya.h is stale: regenerate it with `cargo xtask build-ffi \
         --header`; they differ from line {}",
        first_difference(&generated, &committed)
    );
}

/// The 1-based number of the first line where `a` and `b` differ (one past the shorter
/// when one is a prefix of the other, or when only line endings differ).
fn first_difference(a: &str, b: &str) -> usize {
    let same = a.lines().zip(b.lines()).take_while(|(x, y)| x == y).count();
    same + 1
}
