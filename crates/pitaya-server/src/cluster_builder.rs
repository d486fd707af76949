//! The builder's cluster settings (feature `cluster`): backend or frontend, discovery
//! metadata, remotes, custom routing, and the transports (`etcd_nats_cluster` and
//! `etcd_grpc_cluster` behind features `etcd`, `nats`, `grpc`: the one place that names
//! the concrete transports).

use std::sync::Arc;

use pitaya_cluster_runtime::memory::MemoryCluster;
use pitaya_cluster_runtime::{ClusterParts, ClusterSetup, RouteRequest, boxed_factory};
use pitaya_core::Error;
use pitaya_handler::RemoteComponent;

use crate::Builder;

impl Builder {
    /// Whether clients connect to this server (default `true`). A backend
    /// (`frontend(false)`) has no acceptor and is reached through the cluster.
    pub fn frontend(mut self, frontend: bool) -> Self {
        self.frontend = frontend;
        self
    }

    /// Adds a metadata entry to this server's discovery record (e.g. `grpcHost`).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Registers remote methods, called by other servers through user RPC.
    pub fn remote(mut self, component: RemoteComponent) -> Self {
        self.remotes.push(component);
        self
    }

    /// Routes messages for `server_type` with `f` instead of picking a server at random
    /// (Go's `AddRoute`).
    pub fn route(
        mut self,
        server_type: impl Into<String>,
        f: impl Fn(RouteRequest<'_>) -> Result<Arc<pitaya_cluster_runtime::Server>, Error>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.routes.insert(server_type.into(), Arc::new(f));
        self
    }

    /// Runs in cluster mode with the transports `f` builds when the server starts. `f`
    /// gets this server's record and the configuration.
    pub fn cluster<F, Fut>(mut self, f: F) -> Self
    where
        F: FnOnce(ClusterSetup) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<ClusterParts, Error>> + Send + 'static,
    {
        self.cluster = Some(boxed_factory(f));
        self
    }

    /// Runs in cluster mode inside this process, with the other servers that joined
    /// `cluster` (tests, single-process deployments).
    pub fn memory_cluster(self, cluster: &MemoryCluster) -> Self {
        let cluster = cluster.clone();
        self.cluster(move |setup| async move {
            let (discovery, client, server) = cluster.join((*setup.server).clone());
            Ok(ClusterParts::new(Arc::new(discovery), Arc::new(client), Arc::new(server)))
        })
    }

    /// Runs in cluster mode over etcd discovery and NATS RPC, configured from
    /// `pitaya.cluster.sd.etcd.*` and `pitaya.cluster.rpc.{client,server}.nats.*` (Go
    /// Pitaya's default cluster).
    #[cfg(all(feature = "etcd", feature = "nats"))]
    pub fn etcd_nats_cluster(self) -> Self {
        self.cluster(|setup| async move {
            let ClusterSetup { server, config, die } = setup;
            let client = pitaya_nats::NatsRpcClient::connect(
                &config.cluster.rpc.client.nats,
                server.clone(),
                die.clone(),
            )
            .await?;
            let rpc_server = pitaya_nats::NatsRpcServer::connect(
                &config.cluster.rpc.server.nats,
                server.clone(),
                die.clone(),
            )
            .await?;
            let discovery = pitaya_etcd::EtcdServiceDiscovery::new(
                config.cluster.sd.etcd.clone(),
                (*server).clone(),
                die,
            );
            Ok(ClusterParts::new(Arc::new(discovery), Arc::new(client), Arc::new(rpc_server)))
        })
    }

    /// Runs in cluster mode over etcd discovery and gRPC RPC, with the etcd binding
    /// storage that gRPC needs to reach users by uid (spec §7, §8.6): Go Pitaya's
    /// alternative cluster. Configured from `pitaya.cluster.sd.etcd.*`,
    /// `pitaya.cluster.rpc.{client,server}.grpc.*` and
    /// `pitaya.modules.bindingstorage.etcd.*`.
    ///
    /// The gRPC server listens on all interfaces on `pitaya.cluster.rpc.server.grpc.port`
    /// (0 picks a free port), as Go's does. The discovery record's `grpcPort` is the
    /// bound port and `grpcHost` must be given with [`metadata`](Self::metadata) (the
    /// address peers can reach), unless the application sets both itself.
    #[cfg(all(feature = "etcd", feature = "grpc"))]
    pub fn etcd_grpc_cluster(self) -> Self {
        self.cluster(|setup| async move {
            use pitaya_cluster_runtime::{GRPC_HOST_KEY, GRPC_PORT_KEY};
            let ClusterSetup { server, config, die } = setup;
            let listen = std::net::SocketAddr::from((
                std::net::Ipv4Addr::UNSPECIFIED,
                config.cluster.rpc.server.grpc.port,
            ));
            let rpc_server = pitaya_grpc::GrpcRpcServer::bind(listen).await?;
            let mut record = (*server).clone();
            record
                .metadata
                .entry(GRPC_PORT_KEY.to_owned())
                .or_insert_with(|| rpc_server.local_addr().port().to_string());
            if !record.metadata.contains_key(GRPC_HOST_KEY) {
                return Err(Error::unknown(
                    "gRPC listens on all interfaces: set the address peers reach it at with \
                     .metadata(\"grpcHost\", ...)",
                ));
            }
            let me = Arc::new(record);
            let bindings = Arc::new(pitaya_etcd::EtcdBindingStorage::new(
                config.modules.binding_storage.etcd.clone(),
                me.clone(),
            ));
            let client = Arc::new(pitaya_grpc::GrpcRpcClient::new(
                &config.cluster.rpc.client.grpc,
                config.cluster.info.region.clone(),
                me.clone(),
                Some(bindings.clone() as Arc<dyn pitaya_cluster_runtime::BindingStorage>),
            ));
            let discovery = pitaya_etcd::EtcdServiceDiscovery::new(
                config.cluster.sd.etcd.clone(),
                (*me).clone(),
                die,
            );
            pitaya_cluster_runtime::ServiceDiscovery::add_listener(&discovery, client.clone());
            let module = pitaya_cluster_runtime::modules::BindingStorageModule::new(
                bindings.clone(),
                |b| async move { b.start().await.map_err(Error::from) },
                |b| async move { b.stop().await },
            );
            let mut parts = ClusterParts::new(Arc::new(discovery), client, Arc::new(rpc_server));
            parts.bindings = Some(bindings as Arc<dyn pitaya_cluster_runtime::BindingStorage>);
            parts.modules.push((
                pitaya_cluster_runtime::modules::BINDING_STORAGE.to_owned(),
                Arc::new(module),
            ));
            Ok(parts)
        })
    }
}
