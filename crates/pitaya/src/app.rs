//! [`App`] (built, not started) and [`RunningApp`] (accepting connections).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pitaya_acceptor::{Acceptor, AcceptorOptions, RateLimit, Transport};
use pitaya_agent::{AgentConfig, AgentShared};
use pitaya_codec::RouteDict;
use pitaya_config::PitayaConfig;
use pitaya_core::Error;
use pitaya_groups::Groups;
use pitaya_handler::{AppState, HandlerService, Lifecycle, Router};
use pitaya_serialize::Serializer;
use pitaya_session::SessionPool;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use pitaya_cluster::{DieSignal, Server};
use pitaya_handler::Remotes;

use crate::builder::{AcceptorSpec, Builder};
use crate::cluster::{ClusterCore, ClusterFactory, ClusterSetup, RouteFn};
use crate::dispatch::{DispatchMetrics, HandlerCore, Handlers, LocalDispatch};
use crate::handle::{AppHandle, HandleInner};
use crate::modules::{UNIQUE_SESSION, UniqueSession};

/// A configured server, not yet listening. Built by [`Builder::build`].
pub struct App {
    pub(crate) server_type: String,
    pub(crate) config: PitayaConfig,
    pub(crate) acceptors: Vec<AcceptorSpec>,
    pub(crate) router: Router,
    pub(crate) layers: Vec<Box<dyn FnOnce(HandlerService) -> HandlerService + Send>>,
    pub(crate) state: AppState,
    pub(crate) dict: Arc<RouteDict>,
    pub(crate) groups: Arc<dyn Groups>,
    pub(crate) serializer: Arc<dyn Serializer>,
    pub(crate) handshake_timeout: Duration,
    pub(crate) rate_limiting: bool,
    pub(crate) pool: SessionPool,
    pub(crate) frontend: bool,
    pub(crate) metadata: std::collections::BTreeMap<String, String>,
    pub(crate) remotes: Remotes,
    pub(crate) routes: std::collections::HashMap<String, RouteFn>,
    pub(crate) cluster: Option<ClusterFactory>,
    pub(crate) modules: Vec<(String, Arc<dyn pitaya_modules::Module>)>,
    pub(crate) reporters: Vec<Arc<dyn pitaya_metrics::Reporter>>,
}

/// A server that is accepting connections.
pub struct RunningApp {
    handle: AppHandle,
    addrs: Vec<(Transport, SocketAddr)>,
    stop_accepting: watch::Sender<bool>,
    tracker: TaskTracker,
    agents: Arc<AgentShared>,
    lifecycles: Vec<Arc<dyn Lifecycle>>,
    config: PitayaConfig,
    cluster: Option<Arc<ClusterCore>>,
    die: DieSignal,
    modules: pitaya_modules::Modules,
    metrics: Option<crate::metrics_wiring::MetricsRuntime>,
}

impl App {
    /// Starts a server from `builder`; shorthand for `builder.build()?.start()`.
    ///
    /// # Errors
    /// As [`Builder::build`] and [`App::start`].
    pub async fn start_from(builder: Builder) -> Result<RunningApp, Error> {
        builder.build()?.start().await
    }

    /// The resolved configuration.
    pub fn config(&self) -> &PitayaConfig {
        &self.config
    }

    /// Binds every acceptor, runs the components' `init` then `after_init` hooks, and
    /// starts accepting.
    ///
    /// # Errors
    /// `PIT-000` when an address cannot be bound.
    pub async fn start(self) -> Result<RunningApp, Error> {
        let App {
            server_type,
            config,
            acceptors: specs,
            router,
            layers,
            mut state,
            dict,
            groups,
            serializer,
            handshake_timeout,
            rate_limiting,
            pool,
            frontend,
            metadata,
            remotes,
            routes,
            cluster: cluster_factory,
            modules: app_modules,
            reporters: extra_reporters,
        } = self;

        let die = DieSignal::new();
        let handle = AppHandle(Arc::new(HandleInner {
            server_type: server_type.clone(),
            pool: pool.clone(),
            groups,
            serializer: serializer.clone(),
            cluster: std::sync::OnceLock::new(),
            metrics: std::sync::OnceLock::new(),
            running: std::sync::atomic::AtomicBool::new(false),
        }));
        state.insert(handle.clone());
        state.insert(pitaya_handler::StructValidation(
            config.default_pipelines.struct_validation.enabled,
        ));

        let lifecycles: Vec<Arc<dyn Lifecycle>> = router.lifecycles().cloned().collect();
        let handler_routes: Vec<String> = router.routes().into_iter().map(|(r, _)| r).collect();
        let router = router.into_service();
        let service = if layers.is_empty() {
            Handlers::Router(router)
        } else {
            let mut service = HandlerService::new(router);
            for layer in layers {
                service = layer(service);
            }
            Handlers::Layered(service)
        };
        let handlers = Arc::new(HandlerCore {
            service,
            server_type: server_type.clone(),
            serializer: serializer.clone(),
            state,
        });

        let mut cluster_modules = Vec::new();
        let cluster = match cluster_factory {
            Some(factory) => {
                let me = Arc::new(Server::new(server_type.clone(), frontend, metadata));
                let setup =
                    ClusterSetup { server: me.clone(), config: config.clone(), die: die.clone() };
                let parts = factory(setup).await?;
                if parts.discovery.this_server().id != me.id {
                    return Err(Error::unknown(
                        "the cluster's discovery must register the server record it was given",
                    ));
                }
                // The transports may have added metadata (the bound gRPC port).
                let me = parts.discovery.this_server().clone();
                cluster_modules = parts.modules;
                let core = Arc::new_cyclic(|this| ClusterCore {
                    this: this.clone(),
                    me,
                    discovery: parts.discovery,
                    client: parts.client,
                    rpc_server: parts.server,
                    pool: pool.clone(),
                    handlers: handlers.clone(),
                    remotes,
                    routes,
                    loopback: config.cluster.rpc.server.loopback_enabled,
                    answer_codec: pitaya_codec::MessageCodec::new()
                        .with_data_compression(config.handler.messages.compression),
                    metrics: std::sync::OnceLock::new(),
                });
                let incoming = Arc::new(crate::cluster::Incoming(Arc::downgrade(&core)));
                core.rpc_server.start(incoming).await?;
                core.register_bind_callbacks();
                let _ = handle.0.cluster.set(core.clone());
                Some(core)
            }
            None => {
                if !remotes.routes().is_empty() {
                    tracing::warn!("remotes registered on a standalone server are never called");
                }
                None
            }
        };
        let metrics_parts =
            crate::metrics_wiring::start(&server_type, &config, extra_reporters).await?;
        let reporter = metrics_parts.as_ref().map(|m| m.reporter.clone());
        if let Some(r) = &reporter {
            let _ = handle.0.metrics.set(r.clone());
            if let Some(core) = &cluster {
                let _ = core.metrics.set(r.clone());
            }
        }
        if reporter.is_some() {
            // quanta calibrates its clock on first use (up to 200 ms): here, off the
            // runtime's workers, rather than in the first request.
            let _ = tokio::task::spawn_blocking(quanta::Instant::now).await;
        }
        let metrics =
            reporter.map(|r| Arc::new(DispatchMetrics::new(r, &server_type, handler_routes)));
        let dispatch = Arc::new(LocalDispatch { handlers, cluster: cluster.clone(), metrics });

        let mut modules = pitaya_modules::Modules::new();
        if config.session.unique {
            let cluster = cluster.as_ref().map(Arc::downgrade);
            modules.register(UNIQUE_SESSION, Arc::new(UniqueSession { cluster }))?;
        }
        for (name, module) in cluster_modules.into_iter().chain(app_modules) {
            modules.register(name, module)?;
        }
        let module_ctx = pitaya_modules::ModuleContext {
            server: match &cluster {
                Some(core) => core.me.clone(),
                // Standalone servers have a record too, for modules that want an identity.
                None => Arc::new(Server::new(server_type.clone(), frontend, Default::default())),
            },
            sessions: pool.clone(),
            die: die.clone(),
        };
        modules.start(&module_ctx).await?;

        let agent_config = AgentConfig {
            heartbeat: config.heartbeat.interval,
            handshake_timeout,
            outgoing_capacity: config.buffer.agent.messages,
            write_timeout: config.buffer.agent.conn_timeout,
            dispatch_capacity: config.buffer.handler.local_process,
            compress_routes_only_if_client_does: config
                .handler
                .messages
                .compress_routes
                .only_if_client_does,
            ..AgentConfig::default()
        };
        let agents = Arc::new(AgentShared::new(
            agent_config,
            serializer,
            dict,
            config.handler.messages.compression,
            pool,
            dispatch,
            config.concurrency.handler.dispatch,
        ));
        let metrics = metrics_parts
            .map(|parts| parts.run(config.metrics.period, agents.clone(), cluster.clone()));

        let limits = &config.conn.rate_limiting;
        let rate_limit = (rate_limiting && !limits.force_disable)
            .then_some(RateLimit { limit: limits.limit, interval: limits.interval });
        let mut acceptors = Vec::with_capacity(specs.len());
        for spec in &specs {
            let opts = AcceptorOptions {
                tls: spec.tls.clone(),
                proxy_protocol: config.acceptor.proxy_protocol,
                rate_limit,
                handshake_timeout,
                ..AcceptorOptions::default()
            };
            let addr = tokio::net::lookup_host(&spec.addr)
                .await
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| {
                    Error::unknown(format!("cannot resolve acceptor address {}", spec.addr))
                })?;
            let acceptor = if spec.websocket {
                Acceptor::bind_ws(addr, opts).await
            } else {
                Acceptor::bind_tcp(addr, opts).await
            }
            .map_err(|e| Error::unknown(format!("cannot listen on {}: {e}", spec.addr)))?;
            acceptors.push(acceptor);
        }

        for hooks in &lifecycles {
            hooks.init().await;
        }
        for hooks in &lifecycles {
            hooks.after_init().await;
        }

        if let Some(core) = &cluster {
            // Registered last: peers route to this server only once it can serve.
            core.discovery.start().await?;
        }

        let (stop_accepting, stop) = watch::channel(false);
        let tracker = TaskTracker::new();
        let addrs = acceptors.iter().map(|a| (a.transport(), a.local_addr())).collect();
        for acceptor in acceptors {
            tracker.spawn(accept_loop(acceptor, agents.clone(), tracker.clone(), stop.clone()));
        }
        match &cluster {
            Some(core) => {
                tracing::info!(?addrs, id = %core.me.id, server_type = %core.me.server_type, frontend = core.me.frontend, "pitaya server started in cluster mode")
            }
            None => tracing::info!(?addrs, "pitaya server started"),
        }
        // Go Pitaya's readiness line, which its e2e helpers wait for.
        tracing::info!("all modules started!");
        handle.0.running.store(true, std::sync::atomic::Ordering::Release);
        Ok(RunningApp {
            handle,
            addrs,
            stop_accepting,
            tracker,
            agents,
            lifecycles,
            config,
            cluster,
            die,
            modules,
            metrics,
        })
    }

    /// Starts the server and runs it until SIGINT or SIGTERM, then shuts it down
    /// gracefully ([`RunningApp::shutdown`]).
    ///
    /// # Errors
    /// As [`App::start`].
    pub async fn run(self) -> Result<(), Error> {
        let running = self.start().await?;
        running.wait_for_signal().await;
        running.shutdown().await;
        Ok(())
    }
}

async fn accept_loop(
    acceptor: Acceptor,
    agents: Arc<AgentShared>,
    tracker: TaskTracker,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let incoming = tokio::select! {
            () = async { let _ = stop.wait_for(|s| *s).await; } => return,
            incoming = acceptor.accept() => incoming,
        };
        match incoming {
            Ok(incoming) => {
                let agents = agents.clone();
                tracker.spawn(async move {
                    // Boxed: the TLS and WebSocket handshake state would otherwise be part
                    // of the connection task for its whole life (memory per idle client).
                    match Box::pin(incoming.establish()).await {
                        Ok(conn) => pitaya_agent::serve(conn, agents).await,
                        Err(e) => tracing::debug!(error = %e, "connection handshake failed"),
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl RunningApp {
    /// The bound addresses, in acceptor order (useful with port 0).
    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.addrs
    }

    /// Where Prometheus metrics are served (`pitaya.metrics.prometheus.enabled`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.prometheus_addr)
    }

    /// A handle on sessions and groups.
    pub fn handle(&self) -> &AppHandle {
        &self.handle
    }

    /// Whether the server can serve requests now; see [`AppHandle::is_ready`].
    pub async fn is_ready(&self) -> bool {
        self.handle.is_ready().await
    }

    /// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
    pub async fn wait_for_signal(&self) {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("SIGINT received"),
            _ = term => tracing::info!("SIGTERM received"),
            reason = self.die.wait() => tracing::error!(%reason, "shutting down after a fatal cluster error"),
        }
    }

    /// Shuts down gracefully: stops accepting, runs `before_shutdown` hooks (in reverse
    /// registration order), waits for clients to leave when `pitaya.session.drain` is
    /// enabled, lets every connection answer the requests it already read, closes the
    /// connections (no kick packet, as Go), then runs `shutdown` hooks.
    pub async fn shutdown(self) {
        // Readiness probes fail from here on, as Go's `IsReady` once `running` is false.
        self.handle.0.running.store(false, std::sync::atomic::Ordering::Release);
        if let Some(core) = &self.cluster {
            // Peers stop routing here first; what is already on its way is still served.
            core.discovery.stop().await;
        }
        let _ = self.stop_accepting.send(true);
        for hooks in self.lifecycles.iter().rev() {
            hooks.before_shutdown().await;
        }
        self.modules.before_shutdown().await;
        let drain = &self.config.session.drain;
        if drain.enabled {
            let deadline = tokio::time::Instant::now() + drain.timeout;
            while self.handle.sessions().count() > 0 && tokio::time::Instant::now() < deadline {
                tracing::info!(sessions = self.handle.sessions().count(), "draining sessions");
                tokio::time::sleep(drain.period).await;
            }
        }
        self.agents.begin_shutdown();
        self.tracker.close();
        let grace = self.config.buffer.agent.conn_timeout * 2 + Duration::from_secs(1);
        if tokio::time::timeout(grace, self.tracker.wait()).await.is_err() {
            tracing::warn!("connections still open after the shutdown grace period");
        }
        if let Some(core) = &self.cluster {
            core.rpc_server.stop().await;
            core.client.stop().await;
        }
        self.modules.shutdown().await;
        for hooks in self.lifecycles.iter().rev() {
            hooks.shutdown().await;
        }
        tracing::info!("pitaya server stopped");
    }
}

impl std::fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApp").field("addrs", &self.addrs).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use pitaya_core::BoxFuture;
    use pitaya_session::NetworkEntity;

    use super::*;

    /// A connection whose kick packet can never be queued (dead or stuck).
    #[derive(Default)]
    struct KickFails {
        closes: AtomicUsize,
    }

    impl NetworkEntity for KickFails {
        fn push(&self, _: &str, _: Bytes) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn respond(&self, _: u64, _: Bytes, _: bool) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn kick(&self) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Err(Error::new(pitaya_core::codes::CLIENT_CLOSED_REQUEST, "stuck")) })
        }
        fn close(&self) {
            self.closes.fetch_add(1, Ordering::SeqCst);
        }
        fn remote_addr(&self) -> Option<SocketAddr> {
            None
        }
    }

    /// Go's TestUniqueSession_ShouldSucceedIfKickFails: the newer login wins even when
    /// the older session cannot be sent its kick; that session is closed instead.
    #[tokio::test]
    async fn unique_session_bind_succeeds_when_the_kick_fails() {
        let pool = SessionPool::new();
        let ctx = pitaya_modules::ModuleContext {
            server: Arc::new(Server::new("connector", true, Default::default())),
            sessions: pool.clone(),
            die: DieSignal::new(),
        };
        pitaya_modules::Module::init(&UniqueSession { cluster: None }, &ctx).await.unwrap();
        let old_conn = Arc::new(KickFails::default());
        let old = pool.create(old_conn.clone());
        old.bind("u").await.unwrap();
        let new = pool.create(Arc::new(KickFails::default()));
        new.bind("u").await.expect("the newer login binds");
        assert!(pool.by_uid("u").unwrap().ptr_eq(&new));
        // Closed twice: by the unique-session module after the failed kick, then by the
        // bind replacing the uid's index entry (real connections make close idempotent).
        assert_eq!(old_conn.closes.load(Ordering::SeqCst), 2);
    }
}
