//! Servers of a cluster in this process, on the shared etcd and NATS (or gRPC), for tests
//! that need handlers of their own: the `testing` example stays Go's.

use std::time::Duration;

use pitaya::config::ConfigLoader;
use pitaya::{Builder, Pitaya, RunningApp};

/// A builder for a server of type `server_type` in the cluster under `prefix`, over NATS or
/// gRPC (with etcd binding storage): a frontend on a free loopback port, or a backend. The
/// caller adds components, then calls [`start`].
pub(crate) fn builder(grpc: bool, server_type: &str, frontend: bool, prefix: &str) -> Builder {
    builder_with(grpc, server_type, frontend, prefix, &[])
}

/// As [`builder`], with the configuration keys `extra` set as well.
pub(crate) fn builder_with(
    grpc: bool,
    server_type: &str,
    frontend: bool,
    prefix: &str,
    extra: &[(&str, &str)],
) -> Builder {
    let nats = pitaya_test_services::shared_nats_url();
    let etcd = pitaya_test_services::shared_etcd_endpoint();
    let grpc_port = pitaya_test_services::free_port();
    let mut loader = ConfigLoader::new();
    for (key, value) in extra {
        loader = loader.set(key, *value);
    }
    let config = loader
        .set("pitaya.cluster.sd.etcd.prefix", prefix)
        .set("pitaya.cluster.sd.etcd.endpoints", etcd.as_str())
        .set("pitaya.modules.bindingstorage.etcd.endpoints", etcd.as_str())
        .set("pitaya.cluster.rpc.client.nats.connect", nats.as_str())
        .set("pitaya.cluster.rpc.server.nats.connect", nats.as_str())
        .set("pitaya.cluster.rpc.server.grpc.port", grpc_port)
        .load()
        .expect("configuration");
    let b = Pitaya::builder()
        .server_type(server_type)
        .frontend(frontend)
        .config(config)
        .metadata(pitaya::cluster::GRPC_HOST_KEY, "127.0.0.1")
        .metadata(pitaya::cluster::GRPC_PORT_KEY, grpc_port.to_string());
    let b = if frontend { b.tcp("127.0.0.1:0") } else { b };
    if grpc { b.etcd_grpc_cluster() } else { b.etcd_nats_cluster() }
}

/// Builds and starts `b`.
pub(crate) async fn start(b: Builder) -> RunningApp {
    b.build().expect("build").start().await.expect("start")
}

/// Waits until `front` sees a server of `server_type` in discovery.
pub(crate) async fn sees(front: &RunningApp, server_type: &str) {
    let seen = crate::support::eventually(Duration::from_secs(10), || {
        front.handle().discovery().is_some_and(|d| !d.servers_by_type(server_type).is_empty())
    })
    .await;
    assert!(seen, "the frontend never saw a {server_type} server");
}

/// The client address of a frontend.
pub(crate) fn addr(front: &RunningApp) -> String {
    front.local_addrs()[0].1.to_string()
}
