//! `EtcdBindingStorage` against a real etcd: Go's keys, values and lease (spec §8.6,
//! Appendix A.1), lookups, the lease's keep-alive and recovery, and what stop leaves.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{client, eventually_async, get, logs};
use etcd_client::Client;
use pitaya_cluster::{BINDING_NOT_FOUND, BindingStorage, Server};
use pitaya_config::PitayaConfig;
use pitaya_etcd::{BindingStorageError, EtcdBindingStorage, EtcdBindingStorageConfig};

const SOON: Duration = Duration::from_secs(5);

/// The test-services API blocks (it waits for etcd to be healthy).
fn shared_endpoint() -> String {
    tokio::task::block_in_place(pitaya_test_services::shared_etcd_endpoint)
}

/// Go's defaults, pointed at the shared etcd, under a fresh prefix.
fn config() -> EtcdBindingStorageConfig {
    logs();
    let mut c = PitayaConfig::default().modules.binding_storage.etcd;
    c.endpoints = vec![shared_endpoint()];
    c.prefix = format!("test-{}/", uuid::Uuid::new_v4());
    c.dial_timeout = Duration::from_secs(2);
    c
}

fn frontend() -> Arc<Server> {
    Arc::new(Server::new("connector", true, BTreeMap::new()))
}

fn key(cfg: &EtcdBindingStorageConfig, frontend_type: &str, uid: &str) -> String {
    format!("{}bindings/{frontend_type}/{uid}", cfg.prefix)
}

/// Value and lease of `key`, polled until `cond` holds; panics after `within`.
async fn eventually_key(
    etcd: &Client,
    key: &str,
    what: &str,
    within: Duration,
    cond: impl Fn(Option<(String, i64)>) -> bool,
) {
    eventually_async(what, within, || {
        let (mut etcd, key) = (etcd.clone(), key.to_owned());
        let cond = &cond;
        async move { cond(get(&mut etcd, &key).await) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_values_and_lease_match_go() {
    let cfg = config();
    let me = frontend();
    let storage = EtcdBindingStorage::new(cfg.clone(), me.clone());
    storage.start().await.unwrap();
    let mut etcd = client(&cfg.endpoints[0]).await;

    storage.put("g1u").await.unwrap();
    storage.put("g2u").await.unwrap();
    let (value, lease) = get(&mut etcd, &key(&cfg, "connector", "g1u")).await.unwrap();
    assert_eq!(value, me.id, "the value is the frontend's id as a plain string");
    assert_ne!(lease, 0);
    assert_eq!(etcd.lease_time_to_live(lease, None).await.unwrap().granted_ttl(), 18000);
    let second = get(&mut etcd, &key(&cfg, "connector", "g2u")).await;
    assert_eq!(second, Some((me.id.clone(), lease)), "one lease per process");

    assert_eq!(storage.frontend_of("g1u", "connector").await.unwrap(), me.id);
    let missing = storage.frontend_of("g1u", "other-frontend").await.unwrap_err();
    assert_eq!((missing.code(), missing.message()), ("PIT-000", BINDING_NOT_FOUND));

    storage.remove("g1u").await.unwrap();
    assert_eq!(get(&mut etcd, &key(&cfg, "connector", "g1u")).await, None);
    let gone = storage.frontend_of("g1u", "connector").await.unwrap_err();
    assert_eq!(gone.message(), BINDING_NOT_FOUND);
    storage.remove("never-bound").await.unwrap();
    storage.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_ttl_follows_the_config_and_each_process_has_its_own() {
    let mut cfg = config();
    cfg.lease_ttl = Duration::from_secs(2 * 3600);
    let (a, b) = (frontend(), frontend());
    let sa = EtcdBindingStorage::new(cfg.clone(), a);
    let sb = EtcdBindingStorage::new(cfg.clone(), b.clone());
    sa.start().await.unwrap();
    sb.start().await.unwrap();
    sa.put("u").await.unwrap();
    let mut etcd = client(&cfg.endpoints[0]).await;
    let (_, la) = get(&mut etcd, &key(&cfg, "connector", "u")).await.unwrap();
    assert_eq!(etcd.lease_time_to_live(la, None).await.unwrap().granted_ttl(), 7200);

    // Spec §8.6 handover: B binds the uid, then A's late delete removes B's binding.
    sb.put("u").await.unwrap();
    let (_, lb) = get(&mut etcd, &key(&cfg, "connector", "u")).await.unwrap();
    assert_ne!(la, lb, "each process has its own lease");
    assert_eq!(sa.frontend_of("u", "connector").await.unwrap(), b.id);
    sa.remove("u").await.unwrap();
    assert_eq!(get(&mut etcd, &key(&cfg, "connector", "u")).await, None, "unconditional");
    sa.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_before_start_and_after_stop_are_errors() {
    let storage = EtcdBindingStorage::new(config(), frontend());
    let err = storage.put("u").await.unwrap_err();
    assert_eq!(err.message(), "etcd binding storage: not started");
    assert!(storage.frontend_of("u", "connector").await.is_err());
    assert!(storage.remove("u").await.is_err());

    storage.start().await.unwrap();
    storage.start().await.unwrap(); // idempotent
    storage.stop().await;
    storage.stop().await; // idempotent
    assert_eq!(storage.put("u").await.unwrap_err().message(), "etcd binding storage: stopped");
    assert!(matches!(storage.start().await, Err(BindingStorageError::Stopped)));

    let mut cfg = config();
    cfg.endpoints.clear();
    let storage = EtcdBindingStorage::new(cfg, frontend());
    assert!(matches!(storage.start().await, Err(BindingStorageError::Config(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_within_the_dial_timeout_without_etcd() {
    let mut cfg = config();
    cfg.endpoints = vec![format!("127.0.0.1:{}", pitaya_test_services::free_port())];
    cfg.dial_timeout = Duration::from_millis(500);
    let storage = EtcdBindingStorage::new(cfg, frontend());
    let started = tokio::time::Instant::now();
    assert!(storage.start().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_kept_alive_and_stop_leaves_it_to_expire() {
    let mut cfg = config();
    cfg.lease_ttl = Duration::from_secs(2);
    let storage = EtcdBindingStorage::new(cfg.clone(), frontend());
    storage.start().await.unwrap();
    storage.put("u").await.unwrap();
    let mut etcd = client(&cfg.endpoints[0]).await;
    let k = key(&cfg, "connector", "u");
    let (_, lease) = get(&mut etcd, &k).await.unwrap();

    // Twice the TTL: only the renewals keep the key.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(get(&mut etcd, &k).await.map(|(_, l)| l), Some(lease));

    storage.stop().await;
    assert!(get(&mut etcd, &k).await.is_some(), "stop does not revoke the lease");
    assert!(etcd.lease_time_to_live(lease, None).await.unwrap().ttl() > 0);
    eventually_key(&etcd, &k, "the key to expire with the lease", SOON, |v| v.is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_after_the_lease_was_revoked_gets_a_new_lease() {
    // Go's default TTL: the next renewal is 100 minutes away, so only the put can notice.
    let cfg = config();
    let me = frontend();
    let storage = EtcdBindingStorage::new(cfg.clone(), me.clone());
    storage.start().await.unwrap();
    storage.put("u1").await.unwrap();
    let mut etcd = client(&cfg.endpoints[0]).await;
    let (_, old) = get(&mut etcd, &key(&cfg, "connector", "u1")).await.unwrap();
    etcd.lease_revoke(old).await.unwrap();
    assert_eq!(get(&mut etcd, &key(&cfg, "connector", "u1")).await, None);

    storage.put("u2").await.unwrap();
    let (value, new) = get(&mut etcd, &key(&cfg, "connector", "u2")).await.unwrap();
    assert_eq!(value, me.id);
    assert_ne!(new, old);
    assert_eq!(etcd.lease_time_to_live(new, None).await.unwrap().granted_ttl(), 18000);
    // The binding the revocation took is put back on the new lease.
    let (k1, id) = (key(&cfg, "connector", "u1"), me.id.clone());
    eventually_key(&etcd, &k1, "u1 to be put back", SOON, |v| v == Some((id.clone(), new))).await;
    storage.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keep_alive_replaces_a_revoked_lease_and_puts_bindings_back() {
    let mut cfg = config();
    cfg.lease_ttl = Duration::from_secs(3);
    let (me, other) = (frontend(), frontend());
    let storage = EtcdBindingStorage::new(cfg.clone(), me.clone());
    storage.start().await.unwrap();
    for uid in ["kept", "moved", "removed"] {
        storage.put(uid).await.unwrap();
    }
    let mut etcd = client(&cfg.endpoints[0]).await;
    let (_, old) = get(&mut etcd, &key(&cfg, "connector", "kept")).await.unwrap();
    etcd.lease_revoke(old).await.unwrap();
    // While the lease is gone: another frontend takes one uid, a session closes.
    etcd.put(key(&cfg, "connector", "moved"), other.id.as_str(), None).await.unwrap();
    storage.remove("removed").await.unwrap();

    let (k, id) = (key(&cfg, "connector", "kept"), me.id.clone());
    let renewed_within = Duration::from_secs(4);
    eventually_key(&etcd, &k, "kept to be back on a new lease", renewed_within, |v| {
        v.is_some_and(|(value, lease)| value == id && lease != old && lease != 0)
    })
    .await;
    let moved = get(&mut etcd, &key(&cfg, "connector", "moved")).await;
    assert_eq!(moved, Some((other.id.clone(), 0)), "another frontend's binding is left alone");
    assert_eq!(get(&mut etcd, &key(&cfg, "connector", "removed")).await, None);
    storage.put("later").await.unwrap();
    assert!(get(&mut etcd, &key(&cfg, "connector", "later")).await.is_some());
    storage.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_restart_keeps_the_lease() {
    let mut server = tokio::task::block_in_place(pitaya_test_services::Etcd::start);
    let mut cfg = config();
    cfg.endpoints = vec![server.endpoint()];
    cfg.lease_ttl = Duration::from_secs(3);
    cfg.dial_timeout = Duration::from_millis(500);
    let storage = EtcdBindingStorage::new(cfg.clone(), frontend());
    storage.start().await.unwrap();
    storage.put("u").await.unwrap();
    let mut etcd = client(&cfg.endpoints[0]).await;
    let (_, lease) = get(&mut etcd, &key(&cfg, "connector", "u")).await.unwrap();

    tokio::task::block_in_place(|| server.restart());
    // Longer than the TTL: the task must have found its lease again to keep the key.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut etcd = client(&cfg.endpoints[0]).await;
    assert_eq!(get(&mut etcd, &key(&cfg, "connector", "u")).await.map(|(_, l)| l), Some(lease));
    storage.put("v").await.unwrap();
    assert_eq!(get(&mut etcd, &key(&cfg, "connector", "v")).await.map(|(_, l)| l), Some(lease));
    storage.stop().await;
}
