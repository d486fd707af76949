//! The programs `cargo xtask test` needs on the machine, and the services it starts for
//! `cargo test`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Result, bail};
use pitaya_test_services::{ETCD_ENDPOINTS_ENV, Etcd, NATS_URL_ENV, Nats, REDIS_URL_ENV, Redis};

/// Programs the tests and the build need: the three services, etcd's client, `protoc`
/// for etcd-client's build script (which clippy runs too), node, npm and Chromium for
/// the JS client's tests and the chat page's browser test (examples/tests), and gcc and
/// python3 for the C ABI's examples (examples/ffi).
const TOOLS: [&str; 10] = [
    "nats-server",
    "etcd",
    "etcdctl",
    "redis-server",
    "protoc",
    "chromium",
    "node",
    "npm",
    "gcc",
    "python3",
];

/// The Debian packages that provide [`TOOLS`], in the same order.
const PACKAGES: [&str; 10] = [
    "nats-server",
    "etcd-server",
    "etcd-client",
    "redis-server",
    "protobuf-compiler",
    "chromium",
    "nodejs",
    "npm",
    "gcc",
    "python3",
];

/// Searched after `PATH`: Debian installs nats-server in /usr/sbin, which is not on a
/// non-root user's `PATH`.
const EXTRA_DIRS: [&str; 2] = ["/usr/sbin", "/usr/local/sbin"];

/// Installs the [`PACKAGES`] of the [`TOOLS`] that are missing with apt-get (CI starts
/// from a machine with only Rust). Needs root, as CI is.
///
/// Only the missing tools' packages: a node from another source (NodeSource's `nodejs`
/// bundles npm) must not meet Debian's `npm`, which would pull Debian's older nodejs.
pub(crate) fn ensure_tools() -> Result<()> {
    ensure(&TOOLS, &PACKAGES)
}

/// Installs the packages of the `tools` that are missing (`packages[i]` provides
/// `tools[i]`) with apt-get.
pub(crate) fn ensure(tools: &[&str], packages: &[&str]) -> Result<()> {
    let (missing, packages): (Vec<&str>, Vec<&str>) = tools
        .iter()
        .zip(packages)
        .filter(|(tool, _)| find(tool).is_none())
        .map(|(t, p)| (*t, *p))
        .unzip();
    if missing.is_empty() {
        eprintln!("xtask: found {}", tools.join(", "));
        return Ok(());
    }
    eprintln!(
        "xtask: {} not installed; installing the Debian packages {} with apt-get",
        missing.join(", "),
        packages.join(", ")
    );
    apt_get(&["update"])?;
    apt_get(&["install", "-y"].into_iter().chain(packages).collect::<Vec<_>>())?;
    let still: Vec<&str> = tools.iter().copied().filter(|tool| find(tool).is_none()).collect();
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(", "));
    }
    Ok(())
}

fn apt_get(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    crate::run(&mut cmd).map_err(|e| {
        e.context(format!(
            "installing test tools failed; as root, run `apt-get install {}`",
            PACKAGES.join(" ")
        ))
    })
}

/// The first executable file named `tool` on `PATH`, then in [`EXTRA_DIRS`].
fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|candidate| {
            candidate.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// nats-server, etcd and redis-server for one `cargo test` run; stopped (SIGKILL to their
/// pids, then wait) when dropped, whether the tests passed or not. Should xtask itself die,
/// each service's watchdog kills it within about half a second.
pub(crate) struct TestServices {
    nats: Nats,
    etcd: Etcd,
    redis: Redis,
}

impl TestServices {
    /// Starts the three on free loopback ports and prints their addresses.
    ///
    /// # Panics
    ///
    /// If one does not start: the message quotes the end of its log.
    pub(crate) fn start() -> TestServices {
        let services =
            TestServices { nats: Nats::start(), etcd: Etcd::start(), redis: Redis::start() };
        eprintln!("xtask: started test services:");
        for (var, value) in services.env() {
            eprintln!("xtask:   {var}={value}");
        }
        services
    }

    /// The environment variables that point `pitaya_test_services::shared_*` at them.
    pub(crate) fn env(&self) -> [(&'static str, String); 3] {
        [
            (NATS_URL_ENV, self.nats.url()),
            (ETCD_ENDPOINTS_ENV, self.etcd.endpoint()),
            (REDIS_URL_ENV, self.redis.url()),
        ]
    }
}

impl Drop for TestServices {
    fn drop(&mut self) {
        self.nats.stop();
        self.etcd.stop();
        self.redis.stop();
        eprintln!("xtask: stopped the test services (nats-server, etcd, redis-server)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    fn accepts(address: &str) -> bool {
        let host_port = address.rsplit("//").next().unwrap_or(address);
        TcpStream::connect(host_port).is_ok()
    }

    #[test]
    fn finds_installed_tools_only() {
        assert!(find("sh").is_some());
        assert_eq!(find("pitaya-no-such-tool"), None);
    }

    #[test]
    fn services_are_exported_and_stopped_on_drop() {
        let services = TestServices::start();
        let env = services.env();
        let names: Vec<&str> = env.iter().map(|(var, _)| *var).collect();
        assert_eq!(
            names,
            ["PITAYA_TEST_NATS_URL", "PITAYA_TEST_ETCD_ENDPOINTS", "PITAYA_TEST_REDIS_URL"]
        );
        assert!(env.iter().all(|(_, address)| accepts(address)), "{env:?}");
        drop(services);
        assert!(env.iter().all(|(_, address)| !accepts(address)), "{env:?}");
    }
}
