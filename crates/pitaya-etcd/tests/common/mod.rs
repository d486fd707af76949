//! Helpers shared by the integration tests: configs with a private prefix, a raw etcd
//! client to look behind the discovery's back, a recording listener and bounded polls.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a subset")]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use pitaya_cluster::{DieSignal, SdListener, Server, ServiceDiscovery};
use pitaya_config::PitayaConfig;
use pitaya_config::model::EtcdSdConfig;
use pitaya_etcd::EtcdServiceDiscovery;
use tokio::time::Instant;

/// Logs to the test's output when `RUST_LOG` is set (e.g. `RUST_LOG=pitaya_etcd=debug`).
pub fn logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Go's defaults, pointed at `endpoint`, under a fresh prefix so tests can share an etcd,
/// with a short shutdown delay and dial timeout to keep the suite fast.
pub fn config(endpoint: &str) -> EtcdSdConfig {
    logs();
    let mut c = PitayaConfig::default().cluster.sd.etcd;
    c.endpoints = vec![endpoint.to_owned()];
    c.prefix = format!("test-{}/", uuid::Uuid::new_v4());
    c.dial_timeout = Duration::from_secs(2);
    c.shutdown.delay = Duration::from_millis(10);
    c
}

/// A config for tests that break etcd: short lease and retry intervals.
pub fn fast_config(endpoint: &str) -> EtcdSdConfig {
    let mut c = config(endpoint);
    c.dial_timeout = Duration::from_millis(500);
    c.heartbeat.ttl = Duration::from_secs(3);
    c.sync_servers.interval = Duration::from_secs(1);
    c.revoke.timeout = Duration::from_millis(500);
    c.grant_lease.retry_interval = Duration::from_millis(200);
    c.grant_lease.max_retries = 100;
    c.grant_lease.timeout = Duration::from_secs(5);
    c
}

pub fn server(server_type: &str) -> Server {
    let metadata = BTreeMap::from([("grpcHost".to_owned(), "127.0.0.1".to_owned())]);
    Server::new(server_type, server_type == "connector", metadata)
}

pub fn discovery(config: &EtcdSdConfig, server_type: &str) -> EtcdServiceDiscovery {
    EtcdServiceDiscovery::new(config.clone(), server(server_type), DieSignal::new())
}

pub async fn client(endpoint: &str) -> Client {
    Client::connect([endpoint], None).await.expect("connect to etcd")
}

/// The value and lease of `key`, if it exists.
pub async fn get(client: &mut Client, key: &str) -> Option<(String, i64)> {
    let resp = client.get(key, None).await.expect("etcd get");
    resp.kvs().first().map(|kv| (kv.value_str().unwrap().to_owned(), kv.lease()))
}

/// Keys under `prefix`.
pub async fn keys(client: &mut Client, prefix: &str) -> Vec<String> {
    let resp = client.get(prefix, Some(GetOptions::new().with_prefix().with_keys_only())).await;
    let resp = resp.expect("etcd get");
    resp.kvs().iter().map(|kv| kv.key_str().unwrap().to_owned()).collect()
}

/// Sorted ids of the servers `sd` knows.
pub fn ids(sd: &impl ServiceDiscovery) -> Vec<String> {
    let mut ids: Vec<_> = sd.servers().iter().map(|s| s.id.clone()).collect();
    ids.sort();
    ids
}

pub fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<_> = ids.iter().map(|s| (*s).to_owned()).collect();
    ids.sort();
    ids
}

/// Polls `cond` every 20 ms until it holds; panics after `within`.
pub async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    eventually_async(what, within, || std::future::ready(cond())).await;
}

/// As [`eventually`], for a condition that talks to etcd.
pub async fn eventually_async<F: Future<Output = bool>>(
    what: &str,
    within: Duration,
    mut cond: impl FnMut() -> F,
) {
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records `+id` and `-id` for every event.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    pub fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl SdListener for Recorder {
    fn server_added(&self, server: &Arc<Server>) {
        self.0.lock().unwrap().push(format!("+{}", server.id));
    }
    fn server_removed(&self, server: &Arc<Server>) {
        self.0.lock().unwrap().push(format!("-{}", server.id));
    }
}
