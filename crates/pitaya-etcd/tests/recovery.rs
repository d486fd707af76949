//! The discovery when etcd misbehaves: a lease revoked or a key deleted behind its back,
//! an etcd restart, an etcd that never comes back.

mod common;

use std::time::Duration;

use common::*;
use pitaya_cluster::{DieSignal, ServiceDiscovery};
use pitaya_etcd::EtcdServiceDiscovery;
use pitaya_test_services::Etcd;

const SOON: Duration = Duration::from_secs(3);

/// The test-services API blocks (it waits for etcd to be healthy).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn shared_endpoint() -> String {
    blocking(pitaya_test_services::shared_etcd_endpoint)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_revoked_behind_our_back_is_replaced_at_once() {
    let ep = shared_endpoint();
    // Go's defaults (60 s TTL, renewal every 20 s): only the watch can notice so soon.
    let cfg = config(&ep);
    let die = DieSignal::new();
    let a = EtcdServiceDiscovery::new(cfg.clone(), server("game"), die.clone());
    let b = discovery(&cfg, "connector");
    a.start().await.unwrap();
    b.start().await.unwrap();
    let ida = a.this_server().id.clone();
    eventually("b to see a", SOON, || b.server(&ida).is_some()).await;

    let mut etcd = client(&ep).await;
    let (_, lease) = get(&mut etcd, a.key()).await.unwrap();
    etcd.lease_revoke(lease).await.unwrap();
    let key = a.key().to_owned();
    eventually_async("a to register again on a new lease", SOON, || {
        let (mut etcd, key) = (etcd.clone(), key.clone());
        async move { get(&mut etcd, &key).await.is_some_and(|(_, l)| l != lease && l != 0) }
    })
    .await;
    let (value, new_lease) = get(&mut etcd, a.key()).await.unwrap();
    assert_eq!(value, a.this_server().to_json());
    assert_eq!(etcd.lease_time_to_live(new_lease, None).await.unwrap().granted_ttl(), 60);
    assert!(a.server(&ida).is_some(), "we stay in our own view");
    eventually("b to see a again", SOON, || b.server(&ida).is_some()).await;
    assert_eq!(die.reason(), None);

    a.stop().await;
    assert_eq!(get(&mut etcd, a.key()).await, None, "stop revokes the new lease");
    eventually("b to see a leave", SOON, || b.server(&ida).is_none()).await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_key_deleted_by_hand_is_put_back_on_the_same_lease() {
    let ep = shared_endpoint();
    let a = discovery(&config(&ep), "game");
    a.start().await.unwrap();
    let mut etcd = client(&ep).await;
    let (_, lease) = get(&mut etcd, a.key()).await.unwrap();
    etcd.delete(a.key(), None).await.unwrap();
    let (key, json) = (a.key().to_owned(), a.this_server().to_json());
    eventually_async("our key to be back", SOON, || {
        let (mut etcd, key, json) = (etcd.clone(), key.clone(), json.clone());
        async move { get(&mut etcd, &key).await == Some((json, lease)) }
    })
    .await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_etcd_restart_servers_reappear_and_peers_converge() {
    let mut etcd_server = blocking(Etcd::start);
    let ep = etcd_server.endpoint();
    let cfg = fast_config(&ep);
    let (die_a, die_b) = (DieSignal::new(), DieSignal::new());
    let a = EtcdServiceDiscovery::new(cfg.clone(), server("connector"), die_a.clone());
    let b = EtcdServiceDiscovery::new(cfg.clone(), server("game"), die_b.clone());
    a.start().await.unwrap();
    b.start().await.unwrap();
    let (ida, idb) = (a.this_server().id.clone(), b.this_server().id.clone());
    let mut etcd = client(&ep).await;
    let key = |id: &str| format!("{}servers/fake/{id}", cfg.prefix);
    etcd.put(key("gone"), r#"{"id":"gone","type":"fake"}"#, None).await.unwrap();
    for sd in [&a, &b] {
        eventually("the cluster to form", SOON, || ids(sd) == sorted(&[&ida, &idb, "gone"])).await;
    }

    blocking(|| etcd_server.stop());
    // Long enough for both tasks of both servers to fail and retry a few times.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ids(&a), sorted(&[&ida, &idb, "gone"]), "views are kept while etcd is away");
    blocking(|| etcd_server.restart());
    // Changes the peers' broken watches cannot see: only their resync can.
    let mut etcd = client(&ep).await;
    etcd.delete(key("gone"), None).await.unwrap();
    etcd.put(key("new"), r#"{"id":"new","type":"fake"}"#, None).await.unwrap();

    let want = sorted(&[&ida, &idb, "new"]);
    for sd in [&a, &b] {
        let key = sd.key().to_owned();
        eventually_async("our key to be in etcd again", Duration::from_secs(8), || {
            let (mut etcd, key) = (etcd.clone(), key.clone());
            async move { get(&mut etcd, &key).await.is_some() }
        })
        .await;
        eventually("peers to converge", Duration::from_secs(8), || ids(sd) == want).await;
    }
    // Stable: no ghost comes back, nothing is duplicated.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ids(&a), want);
    assert_eq!(ids(&b), want);
    let mut in_etcd = keys(&mut etcd, &cfg.prefix).await;
    in_etcd.sort();
    let mut expected = vec![a.key().to_owned(), b.key().to_owned(), key("new")];
    expected.sort();
    assert_eq!(in_etcd, expected);
    assert_eq!((die_a.reason(), die_b.reason()), (None, None));

    a.stop().await;
    eventually("b to see a leave", SOON, || b.server(&ida).is_none()).await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dies_when_etcd_stays_away_and_still_stops_promptly() {
    let mut etcd_server = blocking(Etcd::start);
    let mut cfg = fast_config(&etcd_server.endpoint());
    cfg.dial_timeout = Duration::from_millis(300);
    cfg.grant_lease.max_retries = 3;
    let die = DieSignal::new();
    let a = EtcdServiceDiscovery::new(cfg, server("game"), die.clone());
    a.start().await.unwrap();

    blocking(|| etcd_server.stop());
    // Renewal every second, then 3 attempts 200 ms apart, each bounded by the dial timeout.
    let reason = tokio::time::timeout(Duration::from_secs(8), die.wait()).await;
    let reason = reason.expect("the die signal is raised");
    assert!(reason.contains("3 attempts"), "{reason}");
    assert!(a.server(&a.this_server().id).is_some());

    let started = tokio::time::Instant::now();
    a.stop().await;
    assert!(started.elapsed() < Duration::from_secs(2), "stop took {:?}", started.elapsed());
}
