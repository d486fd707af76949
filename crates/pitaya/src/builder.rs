//! [`Builder`]: assembles a server from configuration, acceptors and components.

use std::sync::Arc;
use std::time::Duration;

use pitaya_cluster::memory::MemoryCluster;
use pitaya_codec::RouteDict;
use pitaya_config::PitayaConfig;
use pitaya_core::Error;
use pitaya_groups::{Groups, MemoryGroups};
use pitaya_handler::{AppState, Component, HandlerService, RemoteComponent, Router};
use pitaya_serialize::SerializerKind;
use pitaya_session::SessionPool;

use crate::app::App;
use crate::cluster::{
    ClusterFactory, ClusterParts, ClusterSetup, RouteFn, RouteRequest, boxed_factory,
};

type LayerFn = Box<dyn FnOnce(HandlerService) -> HandlerService + Send>;

/// Where and how to accept connections.
#[derive(Clone, Debug)]
pub struct AcceptorSpec {
    pub(crate) websocket: bool,
    pub(crate) addr: String,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
}

impl AcceptorSpec {
    /// A TCP acceptor on `addr` (`host:port`; port 0 picks a free port).
    pub fn tcp(addr: impl Into<String>) -> Self {
        Self { websocket: false, addr: addr.into(), tls: None }
    }

    /// A WebSocket acceptor on `addr`, upgrading any path.
    pub fn ws(addr: impl Into<String>) -> Self {
        Self { websocket: true, addr: addr.into(), tls: None }
    }

    /// Serves TLS on this acceptor (see `pitaya::acceptor::load_tls_config`).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}

/// Builds an [`App`]. Start from [`Pitaya::builder`](crate::Pitaya::builder).
pub struct Builder {
    pub(crate) server_type: String,
    pub(crate) config: Option<PitayaConfig>,
    pub(crate) acceptors: Vec<AcceptorSpec>,
    pub(crate) components: Vec<Component>,
    pub(crate) layers: Vec<LayerFn>,
    pub(crate) state: AppState,
    pub(crate) dict: Vec<(String, u16)>,
    pub(crate) groups: Option<Arc<dyn Groups>>,
    pub(crate) serializer: Option<SerializerKind>,
    pub(crate) compress_routes_only_if_client_does: Option<bool>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) rate_limiting: bool,
    pub(crate) pool: SessionPool,
    pub(crate) frontend: bool,
    pub(crate) metadata: std::collections::BTreeMap<String, String>,
    pub(crate) remotes: Vec<RemoteComponent>,
    pub(crate) routes: std::collections::HashMap<String, RouteFn>,
    pub(crate) cluster: Option<ClusterFactory>,
    pub(crate) modules: Vec<(String, Arc<dyn pitaya_modules::Module>)>,
    pub(crate) reporters: Vec<Arc<dyn pitaya_metrics::Reporter>>,
    pub(crate) docs: Option<(String, pitaya_handler::Docs)>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder for a server of type `"connector"`, configured from Pitaya's defaults
    /// and `PITAYA_*` environment variables unless [`config`](Self::config) is called.
    pub fn new() -> Self {
        Self {
            server_type: "connector".to_owned(),
            config: None,
            acceptors: Vec::new(),
            components: Vec::new(),
            layers: Vec::new(),
            state: AppState::new(),
            dict: Vec::new(),
            groups: None,
            serializer: None,
            compress_routes_only_if_client_does: None,
            handshake_timeout: Duration::from_secs(10),
            rate_limiting: false,
            pool: SessionPool::new(),
            frontend: true,
            metadata: std::collections::BTreeMap::new(),
            remotes: Vec::new(),
            routes: std::collections::HashMap::new(),
            cluster: None,
            modules: Vec::new(),
            reporters: Vec::new(),
            docs: None,
        }
    }

    /// The server type, used to route `serverType.service.method` routes.
    pub fn server_type(mut self, server_type: impl Into<String>) -> Self {
        self.server_type = server_type.into();
        self
    }

    /// Uses `config` instead of loading defaults and the environment.
    pub fn config(mut self, config: PitayaConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Adds an acceptor.
    pub fn acceptor(mut self, spec: AcceptorSpec) -> Self {
        self.acceptors.push(spec);
        self
    }

    /// Adds a TCP acceptor on `addr`.
    pub fn tcp(self, addr: impl Into<String>) -> Self {
        self.acceptor(AcceptorSpec::tcp(addr))
    }

    /// Adds a WebSocket acceptor on `addr`.
    pub fn ws(self, addr: impl Into<String>) -> Self {
        self.acceptor(AcceptorSpec::ws(addr))
    }

    /// Registers a component's handlers.
    pub fn component(mut self, component: Component) -> Self {
        self.components.push(component);
        self
    }

    /// Wraps the handlers in a tower layer, e.g. [`before_fn`](crate::before_fn).
    /// Layers added later wrap the earlier ones (they run first).
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: tower::Layer<HandlerService> + Send + 'static,
        L::Service: tower::Service<pitaya_handler::Request, Response = pitaya_handler::Reply, Error = Error>
            + Clone
            + Send
            + Sync
            + 'static,
        <L::Service as tower::Service<pitaya_handler::Request>>::Future: Send + 'static,
    {
        self.layers.push(Box::new(move |inner| HandlerService::new(layer.layer(inner))));
        self
    }

    /// Shares `value` with handlers through the [`State`](crate::State) extractor.
    pub fn state<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// Sets the route dictionary sent in the handshake and used to compress routes.
    pub fn dictionary<'a>(mut self, entries: impl IntoIterator<Item = (&'a str, u16)>) -> Self {
        self.dict.extend(entries.into_iter().map(|(r, c)| (r.to_owned(), c)));
        self
    }

    /// Uses `groups` as this app's group service.
    ///
    /// Without it, each app gets memory groups of its own
    /// ([`MemoryGroups`](pitaya_groups::MemoryGroups) swept every
    /// `pitaya.groups.memory.tickduration`): two apps in one process do not see each
    /// other's groups. To share groups between apps of one process (tests, embedded
    /// use), pass every builder a handle on one service: a clone of one `MemoryGroups`
    /// (clones share their groups; its own sweep tick applies, not the apps'
    /// `tickduration`) or of one `Arc<dyn Groups>`. An etcd service (`EtcdGroups`) is
    /// shared through etcd by every server of the cluster instead.
    ///
    /// Differs from Go, where the memory group service is one per process: every app of
    /// a Go process shares its groups, with the first app's tick duration, whether it
    /// asked to or not. Here sharing is explicit and the default is one per app.
    pub fn groups(mut self, groups: impl Groups) -> Self {
        self.groups = Some(Arc::new(groups));
        self
    }

    /// Overrides `pitaya.serializertype`.
    pub fn serializer(mut self, kind: SerializerKind) -> Self {
        self.serializer = Some(kind);
        self
    }

    /// Overrides `pitaya.handler.messages.compressroutes.onlyifclientdoes` (off by
    /// default, which sends Go's bytes).
    ///
    /// On, a push's route (the only route a server sends a client) goes out as a full
    /// string, even when it is in the dictionary, until that client sends a request or
    /// notify whose route is a dictionary code; from then on its routes are codes. The
    /// handshake still announces the dictionary. Turn it on when serving clients that
    /// ignore the handshake's `sys.dict`, such as libpitaya, which crashes on a push
    /// whose route is a code (spec §2.3); Go has no such setting. A route over 255 bytes
    /// cannot go out as a string: such a push to such a client is dropped and logged.
    pub fn compress_routes_only_if_client_does(mut self, enabled: bool) -> Self {
        self.compress_routes_only_if_client_does = Some(enabled);
        self
    }

    /// Time a client has to finish the handshake (default 10 s; Go has no limit).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Enables per-connection rate limiting with `pitaya.conn.ratelimiting.*` (off by
    /// default, as in Go where the application must wrap its acceptors).
    pub fn rate_limiting(mut self, enabled: bool) -> Self {
        self.rate_limiting = enabled;
        self
    }

    /// The session pool, to register session callbacks and handshake validators before
    /// the server starts.
    pub fn sessions(&self) -> &SessionPool {
        &self.pool
    }

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

    /// Registers a module under `name` (Go's `RegisterModule`): started with the server
    /// after the framework's own modules, in registration order, and stopped in reverse.
    pub fn module(mut self, name: impl Into<String>, module: impl pitaya_modules::Module) -> Self {
        self.modules.push((name.into(), Arc::new(module)));
        self
    }

    /// Adds a metrics reporter besides those `pitaya.metrics.prometheus.enabled` and
    /// `pitaya.metrics.statsd.enabled` create (Go's `AddMetricsReporter`).
    pub fn reporter(mut self, reporter: impl pitaya_metrics::Reporter + 'static) -> Self {
        self.reporters.push(Arc::new(reporter));
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
        f: impl Fn(RouteRequest<'_>) -> Result<Arc<pitaya_cluster::Server>, Error>
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
            use pitaya_cluster::{GRPC_HOST_KEY, GRPC_PORT_KEY};
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
                Some(bindings.clone() as Arc<dyn pitaya_cluster::BindingStorage>),
            ));
            let discovery = pitaya_etcd::EtcdServiceDiscovery::new(
                config.cluster.sd.etcd.clone(),
                (*me).clone(),
                die,
            );
            pitaya_cluster::ServiceDiscovery::add_listener(&discovery, client.clone());
            let module = crate::modules::BindingStorageModule::new(
                bindings.clone(),
                |b| async move { b.start().await.map_err(Error::from) },
                |b| async move { b.stop().await },
            );
            let mut parts = ClusterParts::new(Arc::new(discovery), client, Arc::new(rpc_server));
            parts.bindings = Some(bindings as Arc<dyn pitaya_cluster::BindingStorage>);
            parts.modules.push((crate::modules::BINDING_STORAGE.to_owned(), Arc::new(module)));
            Ok(parts)
        })
    }

    /// Validates the setup.
    ///
    /// # Errors
    /// Bad configuration (environment or file), duplicate components or dictionary
    /// entries, no acceptor.
    pub fn build(self) -> Result<App, Error> {
        let mut config = match self.config {
            Some(c) => c,
            None => PitayaConfig::load(None).map_err(|e| Error::unknown(e.to_string()))?,
        };
        if let Some(enabled) = self.compress_routes_only_if_client_does {
            config.handler.messages.compress_routes.only_if_client_does = enabled;
        }
        if self.frontend && self.acceptors.is_empty() {
            return Err(Error::unknown("no acceptor configured: add one with .tcp() or .ws()"));
        }
        if !self.frontend && !self.acceptors.is_empty() {
            return Err(Error::unknown("a backend server (frontend(false)) takes no acceptor"));
        }
        if !self.frontend && self.cluster.is_none() {
            return Err(Error::unknown("a backend server needs a cluster: call .cluster(...)"));
        }
        let mut components = self.components;
        if let Some(docs) = self.docs {
            let protobuf = match self.serializer {
                Some(kind) => kind == SerializerKind::Protobuf,
                None => config.serializer_type == pitaya_config::SerializerType::Protobuf,
            };
            crate::docs::attach(&mut components, &self.remotes, &self.server_type, protobuf, docs);
        }
        let remotes = pitaya_handler::Remotes::new(self.remotes)?;
        let mut router = Router::new();
        for component in components {
            router.add(component)?;
        }
        let dict = RouteDict::from_entries(self.dict.iter().map(|(r, c)| (r.as_str(), *c)))?;
        let serializer = self.serializer.unwrap_or(match config.serializer_type {
            pitaya_config::SerializerType::Protobuf => SerializerKind::Protobuf,
            _ => SerializerKind::Json,
        });
        let groups = match self.groups {
            Some(g) => g,
            None => Arc::new(MemoryGroups::new(config.groups.memory.tick_duration)),
        };
        Ok(App {
            server_type: self.server_type,
            config,
            acceptors: self.acceptors,
            router,
            layers: self.layers,
            state: self.state,
            dict: Arc::new(dict),
            groups,
            serializer: serializer.serializer(),
            handshake_timeout: self.handshake_timeout,
            rate_limiting: self.rate_limiting,
            pool: self.pool,
            frontend: self.frontend,
            metadata: self.metadata,
            remotes,
            routes: self.routes,
            cluster: self.cluster,
            modules: self.modules,
            reporters: self.reporters,
        })
    }
}
