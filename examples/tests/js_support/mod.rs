//! Runs the JS client's node tests (`clients/js`) from Rust integration tests, which start
//! the servers they talk to.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A node test run that has not finished by then is killed and fails.
const NODE_DEADLINE: Duration = Duration::from_secs(180);

/// `clients/js` in the workspace.
pub(crate) fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../clients/js")
}

/// Panics with what to do when node or the npm packages in `packages` are missing: CI
/// installs them (`cargo xtask test` runs `npm ci` in clients/js), so a missing piece is
/// a setup error, not a reason to skip.
pub(crate) fn require_node(packages: &[&str]) {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is not installed: run `cargo xtask test` (installs Debian's nodejs and npm) or \
         `apt-get install nodejs npm`"
    );
    for package in packages {
        let dir = js_dir().join("node_modules").join(package);
        assert!(
            dir.is_dir(),
            "{} is missing: run `cargo xtask test` (it runs `npm ci` in clients/js), or \
             `npm ci` in clients/js",
            dir.display()
        );
    }
}

/// Runs `node --test <files>` in clients/js with `env`, prints its report (shown by
/// `cargo test` on failure or with `--nocapture`) and panics unless it passed.
///
/// Blocks: call it through `spawn_blocking` while the servers run on the test's runtime.
pub(crate) fn node_test(files: &[&str], env: &[(&str, String)]) {
    let mut child = Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .args(files)
        .current_dir(js_dir())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node starts");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    // Drained on their own threads so a full pipe never stalls node.
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for node") {
            break Some(status);
        }
        if started.elapsed() > NODE_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    eprintln!("--- node --test {} ---\n{out}{err}", files.join(" "));
    match status {
        Some(status) => {
            assert!(status.success(), "node --test {} failed ({status})", files.join(" "))
        }
        None => panic!("node --test {} did not finish within {NODE_DEADLINE:?}", files.join(" ")),
    }
    // node exits 0 when every test was skipped or none was found: insist on passes.
    let passed = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("ℹ pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(passed > 0, "node --test {} ran no passing test", files.join(" "));
}
