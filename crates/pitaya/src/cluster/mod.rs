//! Cluster mode: forwarding client messages to backends, user RPC, backend sessions,
//! push and kick by uid (spec §6, §8).
//!
//! The transports are traits of `pitaya-cluster`; this module only uses them, so
//! etcd or NATS can be swapped for other implementations.

mod incoming;
mod remote_session;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use pitaya_cluster::protos::{KickMsg, Msg, MsgType, Push, RpcType};
use pitaya_codec::Route;
use pitaya_config::PitayaConfig;
use pitaya_core::context::{OPENTRACING_SPAN, PEER_ID, PEER_SERVICE};
use pitaya_core::{BoxFuture, Context, Error};
use pitaya_handler::{RemoteRequest, Remotes};
use pitaya_session::{Session, SessionPool};

pub use pitaya_cluster::*;

use crate::dispatch::HandlerCore;

pub(crate) use incoming::{Incoming, kick_or_close};

/// Message of the error for an RPC to this server's own type without a server id
/// (spec §6.6).
pub const NONSENSE_RPC: &str = "you are making a rpc that may be processed locally, either specify a different server type or specify a server id";
/// Message of the error for an RPC route without a server type.
pub const NO_SERVER_TYPE: &str = "no server type chosen for sending RPC, send a full route in the format server.service.component";
/// Message of the error when no server of the wanted type is known.
pub const NO_SERVERS: &str = "no servers available of this type";

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

pub(crate) type ClusterFactory =
    Box<dyn FnOnce(ClusterSetup) -> BoxFuture<'static, Result<ClusterParts, Error>> + Send>;

pub(crate) fn boxed_factory<F, Fut>(f: F) -> ClusterFactory
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
    /// Every known server of the route's type (never empty).
    pub servers: &'a [Arc<Server>],
}

/// A custom routing function for one server type.
pub(crate) type RouteFn = Arc<dyn Fn(RouteRequest<'_>) -> Result<Arc<Server>, Error> + Send + Sync>;

/// The running cluster side of a server.
pub(crate) struct ClusterCore {
    /// Itself, weakly, for the objects it hands out (backend sessions, the RPC handler).
    pub(crate) this: std::sync::Weak<ClusterCore>,
    pub(crate) me: Arc<Server>,
    pub(crate) discovery: Arc<dyn ServiceDiscovery>,
    pub(crate) client: Arc<dyn RpcClient>,
    pub(crate) rpc_server: Arc<dyn RpcServer>,
    pub(crate) pool: SessionPool,
    pub(crate) handlers: Arc<HandlerCore>,
    pub(crate) remotes: Remotes,
    pub(crate) routes: HashMap<String, RouteFn>,
    pub(crate) loopback: bool,
    /// Encodes the client packet a backend session answers by hand (spec §6.6), with
    /// this server's data compression, as Go's remote agent does.
    pub(crate) answer_codec: pitaya_codec::MessageCodec,
    /// Set when metrics are on: user RPCs report `response_time_ns` with type `rpc`.
    pub(crate) metrics: std::sync::OnceLock<Arc<dyn pitaya_metrics::Reporter>>,
}

impl ClusterCore {
    /// Adds this server as the sender of an RPC (spec §6.5: the peer keys are replaced,
    /// everything else is forwarded).
    fn stamp(&self, ctx: &mut Context) {
        ctx.insert(PEER_ID, self.me.id.as_str());
        ctx.insert(PEER_SERVICE, self.me.server_type.as_str());
        if !ctx.contains(OPENTRACING_SPAN) {
            ctx.insert(OPENTRACING_SPAN, serde_json::Value::Object(serde_json::Map::new()));
        }
    }

    fn frontend_id(&self) -> String {
        if self.me.frontend { self.me.id.clone() } else { String::new() }
    }

    /// Picks the server of `server_type` a message goes to: the custom routing function
    /// of that type, or one at random.
    fn choose(
        &self,
        server_type: &str,
        session: Option<&Session>,
        route: &Route,
        payload: &[u8],
    ) -> Result<Arc<Server>, Error> {
        let servers = self.discovery.servers_by_type(server_type);
        if servers.is_empty() {
            return Err(Error::internal(NO_SERVERS));
        }
        if let Some(f) = self.routes.get(server_type) {
            return f(RouteRequest { session, route, payload, servers: &servers });
        }
        Ok(servers[random_index(servers.len())].clone())
    }

    /// Forwards a client message to a server of its route's type (Sys RPC, spec §6.6)
    /// and turns the answer into the client's response body.
    pub(crate) fn forward(
        self: &Arc<Self>,
        session: Session,
        route: Route,
        id: u64,
        is_request: bool,
        data: Bytes,
    ) -> BoxFuture<'static, Result<Option<Bytes>, Error>> {
        let target = match self.choose(route.server_type(), Some(&session), &route, &data) {
            Ok(t) => t,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let route_str = route.as_str().to_owned();
        let mut ctx = Context::for_request(&route_str);
        self.stamp(&mut ctx);
        let span = tracing::info_span!(
            "pitaya.forward",
            route = %route_str,
            session = session.id(),
            uid = session.uid().as_deref().unwrap_or(""),
            target = %target.id,
            trace_id = tracing::field::Empty,
            code = tracing::field::Empty,
        );
        let trace = crate::telemetry::link_outgoing(&span, &mut ctx);
        span.record("trace_id", tracing::field::display(trace.trace_id_hex()));
        let req = protos::Request {
            r#type: RpcType::Sys as i32,
            session: Some(protos::Session {
                id: session.id(),
                uid: session.uid().map(|u| u.to_string()).unwrap_or_default(),
                data: session.encoded_data().into(),
            }),
            msg: Some(Msg {
                id,
                route: route_str,
                data,
                reply: String::new(),
                r#type: if is_request { MsgType::MsgRequest } else { MsgType::MsgNotify } as i32,
            }),
            frontend_id: self.frontend_id(),
            metadata: Bytes::new(),
        };
        let core = self.clone();
        let fut = async move {
            let result = match core.client.call(&target, ctx, req).await {
                Ok(resp) => match resp.error {
                    Some(e) => Err(error_from_proto(e)),
                    // A notify's "ack" is only there to complete the request/reply.
                    None => Ok(is_request.then_some(resp.data)),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = &result {
                tracing::Span::current().record("code", e.code());
            }
            result
        };
        Box::pin(tracing::Instrument::instrument(fut, span))
    }

    /// Sends a user RPC (spec §6.6) and returns the reply's protobuf bytes.
    pub(crate) async fn rpc(
        self: &Arc<Self>,
        ctx: &Context,
        server_id: Option<&str>,
        route: &str,
        data: Option<Bytes>,
    ) -> Result<Bytes, Error> {
        let parsed = Route::parse(route).map_err(|e| Error::unknown(e.to_string()))?;
        if parsed.server_type().is_empty() {
            return Err(Error::unknown(NO_SERVER_TYPE));
        }
        let to_self = match server_id {
            Some(id) => id == self.me.id,
            None => parsed.server_type() == self.me.server_type,
        };
        let mut ctx = ctx.clone();
        self.stamp(&mut ctx);
        if to_self {
            ctx.next_hop();
            if !self.loopback {
                return Err(Error::unknown(NONSENSE_RPC));
            }
            // Loopback (spec §6.6): served in process, same reply and error shapes.
            let req = RemoteRequest { ctx, state: self.handlers.state.clone() };
            return self.remotes.call(parsed.short(), req, data.unwrap_or_default()).await;
        }
        let target = match server_id {
            Some(id) => {
                self.discovery.server(id).ok_or_else(|| Error::unknown("server not found"))?
            }
            None => {
                self.choose(parsed.server_type(), None, &parsed, data.as_deref().unwrap_or(&[]))?
            }
        };
        self.user_rpc(&target, ctx, route.to_owned(), data.unwrap_or_default()).await
    }

    /// Sends `route` (already validated) to `target` as a user RPC.
    async fn user_rpc(
        &self,
        target: &Server,
        mut ctx: Context,
        route: String,
        data: Bytes,
    ) -> Result<Bytes, Error> {
        self.stamp(&mut ctx);
        let span = tracing::info_span!(
            "pitaya.rpc",
            route = %route,
            target = %target.id,
            trace_id = tracing::field::Empty,
            code = tracing::field::Empty,
        );
        let trace = crate::telemetry::link_outgoing(&span, &mut ctx);
        span.record("trace_id", tracing::field::display(trace.trace_id_hex()));
        let req = protos::Request {
            r#type: RpcType::User as i32,
            session: None,
            msg: Some(Msg {
                id: 0,
                route,
                data,
                reply: String::new(),
                r#type: MsgType::MsgRequest as i32,
            }),
            frontend_id: self.frontend_id(),
            metadata: Bytes::new(),
        };
        let started = std::time::Instant::now();
        let metric_route = self
            .metrics
            .get()
            .map(|_| req.msg.as_ref().map(|m| m.route.clone()).unwrap_or_default());
        let result =
            match tracing::Instrument::instrument(self.client.call(target, ctx, req), span.clone())
                .await
            {
                Ok(resp) => match resp.error {
                    Some(e) => Err(error_from_proto(e)),
                    None => Ok(resp.data),
                },
                Err(e) => Err(e),
            };
        if let Err(e) = &result {
            span.record("code", e.code());
        }
        if let (Some(reporter), Some(route)) = (self.metrics.get(), metric_route) {
            let outcome = result.as_ref().map(|_| ());
            crate::metrics_wiring::report_response(
                reporter.as_ref(),
                &route,
                "rpc",
                started.elapsed(),
                outcome,
            );
        }
        result
    }

    /// Pushes to users by uid (spec §8.4): locally when this server is a frontend of
    /// `frontend_type` holding the uid, through the RPC client otherwise. Returns the
    /// uids that failed.
    pub(crate) async fn push_to_users(
        &self,
        route: &str,
        data: Bytes,
        uids: &[String],
        frontend_type: &str,
    ) -> Vec<String> {
        let local_type = self.me.server_type == frontend_type;
        let sends = uids.iter().map(|uid| {
            let local = if local_type { self.pool.by_uid(uid) } else { None };
            let data = data.clone();
            async move {
                let result = match local {
                    Some(s) => s.push(route, data).await,
                    None => {
                        let push = Push { route: route.to_owned(), uid: uid.clone(), data };
                        self.client.send_push(frontend_type, None, push).await
                    }
                };
                result.err().map(|e| {
                    tracing::debug!(%uid, error = %e, "push to user failed");
                    uid.clone()
                })
            }
        });
        futures_util::future::join_all(sends).await.into_iter().flatten().collect()
    }

    /// Kicks users by uid (spec §8.4): locally when a local session holds the uid,
    /// through the RPC client otherwise. Returns the uids that failed.
    pub(crate) async fn kick_users(&self, uids: &[String], frontend_type: &str) -> Vec<String> {
        let kicks = uids.iter().map(|uid| {
            let local = self.pool.by_uid(uid);
            async move {
                let result = match local {
                    Some(s) => s.kick().await,
                    None => {
                        self.client.send_kick(frontend_type, KickMsg { user_id: uid.clone() }).await
                    }
                };
                result.err().map(|_| uid.clone())
            }
        });
        futures_util::future::join_all(kicks).await.into_iter().flatten().collect()
    }

    /// Registers the frontend's bind callback: per-user subscriptions (spec §6.2).
    pub(crate) fn register_bind_callbacks(self: &Arc<Self>) {
        if !self.me.frontend {
            return;
        }
        let core = Arc::downgrade(self);
        self.pool.on_session_bind(move |session| {
            let core = core.upgrade();
            async move {
                let (Some(core), Some(uid)) = (core, session.uid()) else { return Ok(()) };
                let sub = core.rpc_server.subscribe_user(&uid).await?;
                session.on_close(move |_| drop(sub));
                Ok(())
            }
        });
    }
}

/// A Pitaya error from a peer's `Response.error`; an empty code becomes `PIT-000`
/// (spec §6.6).
pub(crate) fn error_from_proto(e: protos::Error) -> Error {
    let code = if e.code.is_empty() { pitaya_core::codes::UNKNOWN.to_owned() } else { e.code };
    let mut err = Error::new(code, e.msg);
    for (k, v) in e.metadata {
        err = err.with_metadata(k, v);
    }
    err
}

/// The `Response.error` carrying `e`.
pub(crate) fn error_to_proto(e: &Error) -> protos::Error {
    protos::Error {
        code: e.code().to_owned(),
        msg: e.message().to_owned(),
        metadata: e.metadata().clone(),
    }
}

fn random_index(len: usize) -> usize {
    (pitaya_core::context::random_u64() % len as u64) as usize
}
