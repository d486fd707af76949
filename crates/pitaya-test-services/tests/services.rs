//! Each service starts, answers its protocol, stops, and restarts on the same port.

mod common;

use std::process::Command;

use common::{accepts, exchange};
use pitaya_test_services::{Etcd, Nats, Redis};

fn nats_pongs(port: u16) -> bool {
    exchange(port, b"CONNECT {\"verbose\":false}\r\nPING\r\n", b"PONG\r\n")
        .is_some_and(|reply| reply.starts_with(b"INFO {"))
}

#[test]
fn nats_answers_stops_and_restarts_on_the_same_port() {
    let mut nats = Nats::start();
    let port = nats.port();
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{port}"));
    assert!(nats_pongs(port));

    nats.stop();
    assert!(!accepts(port), "stopped");
    nats.stop(); // stopping twice is harmless

    nats.restart();
    assert_eq!(nats.url(), format!("nats://127.0.0.1:{port}"));
    assert!(nats_pongs(port));

    nats.restart(); // from running: stops, then starts
    assert!(nats_pongs(port));
    drop(nats);
    assert!(!accepts(port), "dropped");
}

#[test]
fn redis_answers_stops_and_restarts_empty_on_the_same_port() {
    let mut redis = Redis::start();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    let set = exchange(port, b"SET pitaya:k v\r\n", b"\r\n").expect("a reply");
    assert_eq!(set, b"+OK\r\n");

    redis.stop();
    assert!(!accepts(port), "stopped");

    redis.restart();
    assert_eq!(exchange(port, b"PING\r\n", b"\r\n").expect("a reply"), b"+PONG\r\n");
    let get = exchange(port, b"GET pitaya:k\r\n", b"\r\n").expect("a reply");
    assert_eq!(get, b"$-1\r\n", "persistence is off");
    drop(redis);
    assert!(!accepts(port), "dropped");
}

fn etcdctl(endpoint: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["--dial-timeout=1s", "--command-timeout=2s"])
        .args(args)
        .output()
        .expect("etcdctl is installed with etcd");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn etcd_answers_stops_and_restarts_with_its_data() {
    let mut etcd = Etcd::start();
    let endpoint = etcd.endpoint();
    let port: u16 = endpoint
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .expect("an endpoint without a scheme");
    assert_eq!(etcdctl(&endpoint, &["put", "pitaya/k", "v"]).as_deref(), Some("OK\n"));

    etcd.stop();
    assert!(!accepts(port), "stopped");
    assert_eq!(etcdctl(&endpoint, &["get", "pitaya/k"]), None);

    etcd.restart();
    assert_eq!(etcd.endpoint(), endpoint);
    let got = etcdctl(&endpoint, &["get", "pitaya/k", "--print-value-only"]);
    assert_eq!(got.as_deref(), Some("v\n"), "data survives a restart");
    drop(etcd);
    assert!(!accepts(port), "dropped");
}

#[test]
fn instances_get_distinct_ports() {
    let a = Nats::start();
    let b = Nats::start();
    assert_ne!(a.port(), b.port());
    assert!(nats_pongs(a.port()) && nats_pongs(b.port()));
}
