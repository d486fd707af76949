//! Readiness (`is_ready`, Go's `IsReady`): a standalone server, an in-process cluster,
//! and a server whose discovery is a private etcd that is stopped and restarted.

use std::sync::Arc;
use std::time::Duration;

use pitaya::cluster::ClusterParts;
use pitaya::cluster::memory::MemoryCluster;
use pitaya::etcd::EtcdServiceDiscovery;
use pitaya_test_services::Etcd;
use tokio::time::Instant;

use crate::support::{Server, config, echo_builder, within};

/// The etcd read of the check is bounded by this (`revoke.timeout`).
const REVOKE_TIMEOUT: Duration = Duration::from_millis(500);
/// Slack on top of it for scheduling on a loaded machine.
const SLACK: Duration = Duration::from_secs(1);

/// Asks `handle` once, failing if the answer takes longer than the check's bound.
async fn ready(handle: &pitaya::AppHandle) -> bool {
    let started = Instant::now();
    let ready = handle.is_ready().await;
    let took = started.elapsed();
    assert!(took <= REVOKE_TIMEOUT + SLACK, "is_ready took {took:?}");
    ready
}

#[tokio::test]
async fn a_standalone_server_is_ready_until_it_shuts_down() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let handle = server.handle().clone();
        assert!(ready(&handle).await);
        server.shutdown().await;
        assert!(!ready(&handle).await, "not ready once shut down");
    })
    .await;
}

#[tokio::test]
async fn an_in_process_cluster_is_always_connected() {
    within(async {
        let cluster = MemoryCluster::new();
        let server = Server::start(echo_builder(config(&[])).memory_cluster(&cluster)).await;
        assert!(server.handle().discovery().is_some(), "runs in cluster mode");
        assert!(ready(server.handle()).await);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_follows_etcd_going_away_and_coming_back() {
    within(async {
        let mut etcd = tokio::task::block_in_place(Etcd::start);
        let endpoint = etcd.endpoint();
        let memory = MemoryCluster::new();
        // etcd discovery, in-process RPC: only the discovery is under test.
        let builder = echo_builder(config(&[])).cluster(move |setup| async move {
            let mut sd_config = setup.config.cluster.sd.etcd.clone();
            sd_config.endpoints = vec![endpoint];
            sd_config.prefix = format!("readiness-{}/", uuid::Uuid::new_v4());
            sd_config.revoke.timeout = REVOKE_TIMEOUT;
            sd_config.dial_timeout = Duration::from_secs(2);
            sd_config.shutdown.delay = Duration::from_millis(10);
            let record = (*setup.server).clone();
            let (_, client, rpc_server) = memory.join(record.clone());
            let discovery = EtcdServiceDiscovery::new(sd_config, record, setup.die);
            Ok(ClusterParts::new(Arc::new(discovery), Arc::new(client), Arc::new(rpc_server)))
        });
        let server = Server::start(builder).await;
        let handle = server.handle().clone();
        assert!(ready(&handle).await, "ready while etcd is up");

        tokio::task::block_in_place(|| etcd.stop());
        assert!(!ready(&handle).await, "not ready once etcd is gone");

        tokio::task::block_in_place(|| etcd.restart());
        // The etcd client reconnects with its own backoff: poll, bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready(&handle).await {
            assert!(Instant::now() < deadline, "not ready again 10 s after etcd came back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        server.shutdown().await;
        assert!(!ready(&handle).await, "not ready once shut down");
    })
    .await;
}
