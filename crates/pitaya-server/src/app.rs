//! [`App`] (built, not started) and [`RunningApp`] (accepting connections).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pitaya_acceptor::{Acceptor, AcceptorOptions, RateLimit, Transport};
use pitaya_agent::{AgentConfig, AgentShared, ResumeSettings};
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
#[cfg(feature = "cluster")]
use pitaya_cluster_runtime::ClusterRuntime;
#[cfg(feature = "cluster")]
use pitaya_cluster_runtime::modules::{UNIQUE_SESSION, UniqueSession};

use crate::acceptor_spec::AcceptorSpec;
use crate::dispatch::{DispatchMetrics, HandlerCore, Handlers, LocalDispatch};
use crate::handle::{AppHandle, HandleInner};

/// A configured server, not yet listening. Built by
/// [`Builder::build`](crate::Builder::build).
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
    #[cfg(feature = "cluster")]
    pub(crate) cluster: crate::cluster_glue::ClusterSpec,
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
    #[cfg(feature = "cluster")]
    cluster: Option<Arc<ClusterRuntime>>,
    die: DieSignal,
    modules: pitaya_modules::Modules,
    metrics: Option<crate::metrics_wiring::MetricsRuntime>,
}

impl App {
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
            #[cfg(feature = "cluster")]
                cluster: cluster_spec,
            modules: app_modules,
            reporters: extra_reporters,
        } = self;

        let die = DieSignal::new();
        let handle = AppHandle(Arc::new(HandleInner {
            server_type: server_type.clone(),
            pool: pool.clone(),
            groups,
            serializer: serializer.clone(),
            #[cfg(feature = "cluster")]
            cluster: std::sync::OnceLock::new(),
            metrics: std::sync::OnceLock::new(),
            running: std::sync::atomic::AtomicBool::new(false),
            fanout: Default::default(),
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

        #[cfg(feature = "cluster")]
        let (cluster, cluster_modules) = match crate::cluster_glue::start(
            cluster_spec,
            &server_type,
            &config,
            &die,
            &pool,
            handlers.clone(),
        )
        .await?
        {
            Some((runtime, modules)) => {
                let _ = handle.0.cluster.set(runtime.clone());
                (Some(runtime), modules)
            }
            None => (None, Vec::new()),
        };
        #[cfg(not(feature = "cluster"))]
        let cluster_modules: Vec<(String, Arc<dyn pitaya_modules::Module>)> = Vec::new();
        let metrics_parts =
            crate::metrics_wiring::start(&server_type, &config, extra_reporters).await?;
        let reporter = metrics_parts.as_ref().map(|m| m.reporter.clone());
        if let Some(r) = &reporter {
            let _ = handle.0.metrics.set(r.clone());
            #[cfg(feature = "cluster")]
            if let Some(runtime) = &cluster {
                runtime.set_metrics(Arc::new(crate::cluster_glue::RpcResponseTimes(r.clone())));
            }
        }
        if reporter.is_some() {
            // quanta calibrates its clock on first use (up to 200 ms): here, off the
            // runtime's workers, rather than in the first request.
            let _ = tokio::task::spawn_blocking(quanta::Instant::now).await;
        }
        let metrics =
            reporter.map(|r| Arc::new(DispatchMetrics::new(r, &server_type, handler_routes)));
        let dispatch = Arc::new(LocalDispatch {
            handlers,
            #[cfg(feature = "cluster")]
            cluster: cluster.clone(),
            metrics,
        });

        let mut modules = pitaya_modules::Modules::new();
        // The unique-session module is part of the cluster runtime: without feature
        // `cluster` a second bind of a uid still closes the older session (the session
        // pool does that), without a kick packet.
        #[cfg(feature = "cluster")]
        if config.session.unique {
            let cluster = cluster.as_ref().map(Arc::downgrade);
            modules.register(UNIQUE_SESSION, Arc::new(UniqueSession::new(cluster)))?;
        }
        for (name, module) in cluster_modules.into_iter().chain(app_modules) {
            modules.register(name, module)?;
        }
        // Standalone servers have a record too, for modules that want an identity.
        let standalone = || Arc::new(Server::new(server_type.clone(), true, Default::default()));
        #[cfg(feature = "cluster")]
        let record = cluster.as_ref().map_or_else(standalone, |runtime| runtime.server().clone());
        #[cfg(not(feature = "cluster"))]
        let record = standalone();
        let module_ctx = pitaya_modules::ModuleContext {
            server: record,
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
            resume: config.session.resume.enabled.then_some(ResumeSettings {
                ttl: config.session.resume.ttl,
                buffer: config.session.resume.buffer,
                buffer_bytes: config.session.resume.buffer_bytes,
            }),
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
        let metrics = metrics_parts.map(|parts| {
            parts.run(
                config.metrics.period,
                agents.clone(),
                #[cfg(feature = "cluster")]
                cluster.clone(),
            )
        });

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

        #[cfg(feature = "cluster")]
        if let Some(runtime) = &cluster {
            // Registered last: peers route to this server only once it can serve.
            runtime.discovery().start().await?;
        }

        let (stop_accepting, stop) = watch::channel(false);
        let tracker = TaskTracker::new();
        let addrs = acceptors.iter().map(|a| (a.transport(), a.local_addr())).collect();
        for acceptor in acceptors {
            tracker.spawn(accept_loop(acceptor, agents.clone(), tracker.clone(), stop.clone()));
        }
        #[cfg(feature = "cluster")]
        let me = cluster.as_ref().map(|runtime| runtime.server().clone());
        #[cfg(not(feature = "cluster"))]
        let me: Option<Arc<Server>> = None;
        match me {
            Some(me) => {
                tracing::info!(?addrs, id = %me.id, server_type = %me.server_type, frontend = me.frontend, "pitaya server started in cluster mode")
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
            #[cfg(feature = "cluster")]
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
        #[cfg(feature = "cluster")]
        if let Some(runtime) = &self.cluster {
            // Peers stop routing here first; what is already on its way is still served.
            runtime.discovery().stop().await;
        }
        let _ = self.stop_accepting.send(true);
        for hooks in self.lifecycles.iter().rev() {
            hooks.before_shutdown().await;
        }
        self.modules.before_shutdown().await;
        // Sessions waiting for their clients to resume close at the start of a shutdown,
        // with their callbacks, rather than being waited for (docs/resume.md).
        self.agents.close_away_sessions();
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
        #[cfg(feature = "cluster")]
        if let Some(runtime) = &self.cluster {
            runtime.rpc_server().stop().await;
            runtime.client().stop().await;
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
