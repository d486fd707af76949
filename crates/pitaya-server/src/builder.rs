//! [`Builder`]: assembles a server from configuration, acceptors and components.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "cluster")]
use pitaya_cluster_runtime::RouteFn;
use pitaya_codec::RouteDict;
use pitaya_config::PitayaConfig;
use pitaya_core::Error;
use pitaya_groups::{Groups, MemoryGroups};
#[cfg(feature = "cluster")]
use pitaya_handler::RemoteComponent;
use pitaya_handler::{AppState, Component, HandlerService, Router};
use pitaya_serialize::SerializerKind;
use pitaya_session::SessionPool;

use crate::acceptor_spec::AcceptorSpec;
use crate::app::{App, RunningApp};

type LayerFn = Box<dyn FnOnce(HandlerService) -> HandlerService + Send>;

/// Builds an [`App`]: `Builder::new()` (or `Pitaya::builder()` through the `pitaya`
/// facade).
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
    #[cfg(feature = "cluster")]
    pub(crate) frontend: bool,
    #[cfg(feature = "cluster")]
    pub(crate) metadata: std::collections::BTreeMap<String, String>,
    #[cfg(feature = "cluster")]
    pub(crate) remotes: Vec<RemoteComponent>,
    #[cfg(feature = "cluster")]
    pub(crate) routes: std::collections::HashMap<String, RouteFn>,
    #[cfg(feature = "cluster")]
    pub(crate) cluster: Option<pitaya_cluster_runtime::ClusterFactory>,
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
            #[cfg(feature = "cluster")]
            frontend: true,
            #[cfg(feature = "cluster")]
            metadata: std::collections::BTreeMap::new(),
            #[cfg(feature = "cluster")]
            remotes: Vec::new(),
            #[cfg(feature = "cluster")]
            routes: std::collections::HashMap::new(),
            #[cfg(feature = "cluster")]
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

    /// Wraps the handlers in a tower layer, e.g. [`before_fn`](pitaya_handler::before_fn).
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

    /// Shares `value` with handlers through the [`State`](pitaya_handler::State) extractor.
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

    /// Serves documentation on the component `name`: `name.docs` replies the JSON
    /// document of every handler and remote (see [`pitaya_handler::docs`]) and
    /// `name.descriptors` the protobuf file descriptors `docs` knows. Both are ordinary
    /// handlers: the pipeline, metrics and the dictionary apply to them as to any other.
    ///
    /// ```no_run
    /// use pitaya_handler::Docs;
    /// let builder = pitaya_server::Builder::new().docs("docsHandler", Docs::new());
    /// // pitaya-cli --docs connector.docsHandler.docs
    /// ```
    pub fn docs(mut self, name: impl Into<String>, docs: pitaya_handler::Docs) -> Self {
        self.docs = Some((name.into(), docs));
        self
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
        #[cfg(feature = "cluster")]
        let frontend = self.frontend;
        #[cfg(not(feature = "cluster"))]
        let frontend = true;
        if frontend && self.acceptors.is_empty() {
            return Err(Error::unknown("no acceptor configured: add one with .tcp() or .ws()"));
        }
        #[cfg(feature = "cluster")]
        if !frontend && !self.acceptors.is_empty() {
            return Err(Error::unknown("a backend server (frontend(false)) takes no acceptor"));
        }
        #[cfg(feature = "cluster")]
        if !frontend && self.cluster.is_none() {
            return Err(Error::unknown("a backend server needs a cluster: call .cluster(...)"));
        }
        #[cfg(feature = "cluster")]
        let remote_components = self.remotes;
        #[cfg(not(feature = "cluster"))]
        let remote_components = Vec::new();
        let mut components = self.components;
        if let Some(docs) = self.docs {
            let protobuf = match self.serializer {
                Some(kind) => kind == SerializerKind::Protobuf,
                None => config.serializer_type == pitaya_config::SerializerType::Protobuf,
            };
            crate::docs::attach(
                &mut components,
                &remote_components,
                &self.server_type,
                protobuf,
                docs,
            );
        }
        #[cfg(feature = "cluster")]
        let cluster = crate::cluster_glue::ClusterSpec {
            frontend,
            metadata: self.metadata,
            remotes: pitaya_handler::Remotes::new(remote_components)?,
            routes: self.routes,
            factory: self.cluster,
        };
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
            #[cfg(feature = "cluster")]
            cluster,
            modules: self.modules,
            reporters: self.reporters,
        })
    }
}

impl App {
    /// Starts a server from `builder`; shorthand for `builder.build()?.start()`.
    ///
    /// # Errors
    /// As [`Builder::build`] and [`App::start`].
    pub async fn start_from(builder: Builder) -> Result<RunningApp, Error> {
        builder.build()?.start().await
    }
}
