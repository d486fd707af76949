//! `is_connected`, the readiness check (Go's `IsConnected`), against a private etcd that
//! is stopped and restarted under a running discovery.

mod common;

use std::time::Duration;

use common::*;
use pitaya_cluster::ServiceDiscovery;
use pitaya_test_services::Etcd;
use tokio::time::Instant;

/// Slack on top of `revoke.timeout` for scheduling on a loaded machine.
const SLACK: Duration = Duration::from_secs(1);

/// The test-services API blocks (it waits for etcd to be healthy).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Runs one check, failing if it takes longer than `bound`.
async fn timed_check(sd: &pitaya_etcd::EtcdServiceDiscovery, bound: Duration) -> bool {
    let started = Instant::now();
    let connected = sd.is_connected().await;
    let took = started.elapsed();
    assert!(took <= bound, "is_connected took {took:?}, more than {bound:?}");
    connected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_while_etcd_is_up_and_again_after_a_restart() {
    let mut etcd = blocking(Etcd::start);
    let cfg = fast_config(&etcd.endpoint());
    let bound = cfg.revoke.timeout + SLACK;
    let sd = discovery(&cfg, "connector");
    assert!(!timed_check(&sd, bound).await, "not connected before start");

    sd.start().await.unwrap();
    assert!(timed_check(&sd, bound).await, "connected once started");
    // The trait method is the one the application asks.
    assert!(ServiceDiscovery::is_connected(&sd).await);

    blocking(|| etcd.stop());
    assert!(!timed_check(&sd, bound).await, "not connected once etcd is gone");
    // Still not connected on later checks, each within the bound.
    for _ in 0..3 {
        assert!(!timed_check(&sd, bound).await, "still not connected while etcd is gone");
    }

    blocking(|| etcd.restart());
    // The client's channel reconnects with its own backoff.
    eventually_async("the discovery to reach etcd again", Duration::from_secs(10), || {
        timed_check(&sd, bound)
    })
    .await;

    sd.stop().await;
    assert!(!timed_check(&sd, bound).await, "not connected after stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_etcd_is_reported_within_the_revoke_timeout() {
    let mut etcd = blocking(Etcd::start);
    let mut cfg = fast_config(&etcd.endpoint());
    cfg.revoke.timeout = Duration::from_millis(300);
    let sd = discovery(&cfg, "game");
    sd.start().await.unwrap();
    assert!(sd.is_connected().await);

    blocking(|| etcd.stop());
    let started = Instant::now();
    assert!(!sd.is_connected().await);
    assert!(started.elapsed() <= cfg.revoke.timeout + SLACK, "took {:?}", started.elapsed());
    sd.stop().await;
}
