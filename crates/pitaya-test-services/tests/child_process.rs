//! What only a separate process can show: the environment variables the `shared_*`
//! functions read, and the watchdog cleaning up after a process that exits without
//! running destructors. The test binary runs itself as that child process.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pitaya_test_services::{
    ETCD_ENDPOINTS_ENV, NATS_URL_ENV, Nats, REDIS_URL_ENV, shared_etcd_endpoint, shared_nats_url,
    shared_redis_url,
};

/// Tells [`child`] what to do, in the child process.
const ROLE: &str = "PITAYA_TEST_SERVICES_CHILD_ROLE";
/// Where [`child`] writes its result.
const OUT: &str = "PITAYA_TEST_SERVICES_CHILD_OUT";

/// Runs [`child`] in a new process with `role`, the environment changed by `setup`; returns
/// what it wrote.
fn run_child(role: &str, out_dir: &Path, setup: impl FnOnce(&mut Command)) -> String {
    let out = out_dir.join("child.out");
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args(["--exact", "child", "--test-threads=1"])
        .env(ROLE, role)
        .env(OUT, &out)
        .env_remove(NATS_URL_ENV)
        .env_remove(ETCD_ENDPOINTS_ENV)
        .env_remove(REDIS_URL_ENV);
    setup(&mut cmd);
    let output = cmd.output().expect("the child runs");
    assert!(output.status.success(), "child failed: {}", String::from_utf8_lossy(&output.stdout));
    std::fs::read_to_string(&out).expect("the child wrote its result")
}

/// The child's side; does nothing in a normal test run.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let out = std::env::var(OUT).expect("an output path");
    let addresses = [shared_nats_url(), shared_etcd_endpoint(), shared_redis_url()];
    let mut result = addresses.join("\n");
    if role == "orphan" {
        // A private instance whose owner vanishes without dropping it, as on an abort.
        let private = Nats::start();
        result = format!("{result}\n{}", private.url());
        std::fs::write(&out, result).expect("write the result");
        std::mem::forget(private);
        // What the harness does at the end: exit without running static destructors.
        std::process::exit(0);
    }
    std::fs::write(&out, result).expect("write the result");
}

#[test]
fn shared_addresses_come_from_the_environment() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let result = run_child("env", dir.path(), |cmd| {
        cmd.env(NATS_URL_ENV, "nats://127.0.0.1:1")
            .env(ETCD_ENDPOINTS_ENV, "127.0.0.1:2,127.0.0.1:3")
            .env(REDIS_URL_ENV, "redis://127.0.0.1:4");
    });
    assert_eq!(result, "nats://127.0.0.1:1\n127.0.0.1:2,127.0.0.1:3\nredis://127.0.0.1:4");
}

#[test]
fn the_watchdog_kills_services_and_removes_their_dirs_when_the_process_exits() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let services_tmp = dir.path().join("tmp");
    std::fs::create_dir(&services_tmp).expect("mkdir");
    let result = run_child("orphan", dir.path(), |cmd| {
        cmd.env("TMPDIR", &services_tmp);
    });
    let ports: Vec<u16> = result
        .lines()
        .map(|address| {
            let port = address.rsplit(':').next().expect("a port");
            port.parse().unwrap_or_else(|_| panic!("a port in {address:?}"))
        })
        .collect();
    assert_eq!(ports.len(), 4, "{result}");

    // The watchdog polls every 0.5 s; allow for a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let listening: Vec<u16> = ports
            .iter()
            .copied()
            .filter(|&p| TcpStream::connect(("127.0.0.1", p)).is_ok())
            .collect();
        let left: Vec<_> = std::fs::read_dir(&services_tmp)
            .expect("read the services' TMPDIR")
            .map(|entry| entry.expect("an entry").file_name())
            .collect();
        if listening.is_empty() && left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the child exited, still listening: {listening:?}, still in TMPDIR: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
