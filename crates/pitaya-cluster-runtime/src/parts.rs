//! What a cluster is assembled from: the transports a factory builds ([`ClusterParts`])
//! from this server's record and configuration ([`ClusterSetup`]), and custom routing
//! ([`RouteFn`]).

use std::future::Future;
use std::sync::Arc;

use pitaya_cluster::{BindingStorage, DieSignal, RpcClient, RpcServer, Server, ServiceDiscovery};
use pitaya_codec::Route;
use pitaya_config::PitayaConfig;
use pitaya_core::{BoxFuture, Error};
use pitaya_session::Session;

/// The transports of a cluster server: its discovery and its RPC client and server.
pub struct ClusterParts {
    /// Service discovery. Its `this_server()` is this server's record: the one given in
    /// [`ClusterSetup`], possibly with metadata added (e.g. the bound gRPC port).
    pub discovery: Arc<dyn ServiceDiscovery>,
    /// Sends RPCs, pushes and kicks.
    pub client: Arc<dyn RpcClient>,
    /// Receives them.
    pub server: Arc<dyn RpcServer>,
    /// Where users are bound (needed by transports without per-user subjects, gRPC):
    /// kept up to date by the binding-storage module on frontends.
    pub bindings: Option<Arc<dyn BindingStorage>>,
    /// Modules the transports need (e.g. the binding storage's lifecycle), started
    /// before the application's own.
    pub modules: Vec<(String, Arc<dyn pitaya_modules::Module>)>,
}

impl std::fmt::Debug for ClusterParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterParts").field("server", self.discovery.this_server()).finish()
    }
}

/// What a cluster factory gets to build [`ClusterParts`] with.
#[derive(Debug, Clone)]
pub struct ClusterSetup {
    /// This server's record (fresh UUID id, type, frontend flag, metadata).
    pub server: Arc<Server>,
    /// The resolved configuration.
    pub config: PitayaConfig,
    /// Raise it when a transport cannot go on: the server then shuts down.
    pub die: DieSignal,
}

impl ClusterParts {
    /// Parts without binding storage or modules.
    pub fn new(
        discovery: Arc<dyn ServiceDiscovery>,
        client: Arc<dyn RpcClient>,
        server: Arc<dyn RpcServer>,
    ) -> Self {
        Self { discovery, client, server, bindings: None, modules: Vec::new() }
    }
}

/// A cluster factory as the builder stores it: called once, when the server starts.
pub type ClusterFactory =
    Box<dyn FnOnce(ClusterSetup) -> BoxFuture<'static, Result<ClusterParts, Error>> + Send>;

/// Boxes `f` as a [`ClusterFactory`].
pub fn boxed_factory<F, Fut>(f: F) -> ClusterFactory
where
    F: FnOnce(ClusterSetup) -> Fut + Send + 'static,
    Fut: Future<Output = Result<ClusterParts, Error>> + Send + 'static,
{
    Box::new(move |setup| Box::pin(f(setup)))
}

/// What a custom routing function sees (Go's `AddRoute` callback arguments).
#[derive(Debug)]
pub struct RouteRequest<'a> {
    /// The client's session, for a forwarded client message; `None` for a user RPC.
    pub session: Option<&'a Session>,
    /// The route being sent.
    pub route: &'a Route,
    /// The payload.
    pub payload: &'a [u8],
    /// The servers of the route's type that may be chosen (never empty): those in
    /// rotation while any is, else every known one. A server leaves the rotation when a
    /// call to it fails at the transport level (NATS no responders, gRPC `Unavailable`)
    /// and comes back when it answers a probe or registers again; a function that
    /// returns a server not in this list is obeyed.
    pub servers: &'a [Arc<Server>],
}

/// A custom routing function for one server type.
pub type RouteFn = Arc<dyn Fn(RouteRequest<'_>) -> Result<Arc<Server>, Error> + Send + Sync>;
