//! [`ClusterRuntime`]: forwarding client messages to backends, user RPC, push and kick
//! by uid (spec §6, §8), over whatever transports the [`ClusterParts`] hold.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use pitaya_cluster::protos::{self, KickMsg, Msg, MsgType, Push, RpcType};
use pitaya_cluster::{RpcClient, RpcServer, Server, ServiceDiscovery};
use pitaya_codec::Route;
use pitaya_core::context::{OPENTRACING_SPAN, PEER_ID, PEER_SERVICE};
use pitaya_core::{BoxFuture, Context, Error};
use pitaya_handler::{RemoteRequest, Remotes};
use pitaya_session::{Session, SessionPool};

use crate::errors::error_from_proto;
use crate::parts::{ClusterParts, RouteFn, RouteRequest};
use crate::{LocalHandlers, RpcMetrics};

/// Message of the error for an RPC to this server's own type without a server id
/// (spec §6.6).
pub const NONSENSE_RPC: &str = "you are making a rpc that may be processed locally, either specify a different server type or specify a server id";
/// Message of the error for an RPC route without a server type.
pub const NO_SERVER_TYPE: &str = "no server type chosen for sending RPC, send a full route in the format server.service.component";
/// Message of the error when no server of the wanted type is known.
pub const NO_SERVERS: &str = "no servers available of this type";

/// The running cluster side of a server: it forwards client messages for other server
/// types, sends user RPCs, pushes and kicks by uid, and serves what peers send (Sys and
/// User RPCs, backend sessions, the `sys` remotes).
///
/// Built by [`ClusterRuntime::new`] from the transports, started with
/// [`ClusterRuntime::start`]; the server runtime stops the transports at shutdown.
pub struct ClusterRuntime {
    /// Itself, weakly, for the objects it hands out (backend sessions, the RPC handler).
    pub(crate) this: Weak<ClusterRuntime>,
    pub(crate) me: Arc<Server>,
    pub(crate) discovery: Arc<dyn ServiceDiscovery>,
    pub(crate) client: Arc<dyn RpcClient>,
    pub(crate) rpc_server: Arc<dyn RpcServer>,
    pub(crate) pool: SessionPool,
    pub(crate) handlers: Arc<dyn LocalHandlers>,
    pub(crate) remotes: Remotes,
    pub(crate) routes: HashMap<String, RouteFn>,
    pub(crate) loopback: bool,
    /// Encodes the client packet a backend session answers by hand (spec §6.6), with
    /// this server's data compression, as Go's remote agent does.
    pub(crate) answer_codec: pitaya_codec::MessageCodec,
    /// Set when metrics are on: user RPCs report their round trip here.
    pub(crate) metrics: OnceLock<Arc<dyn RpcMetrics>>,
    /// Servers out of rotation after a transport-level failure (see `health`).
    pub(crate) health: Arc<crate::health::Health>,
    /// Which frontends serve batched pushes (see `batch`).
    pub(crate) capable: crate::batch::Capable,
    /// Whether pushes to many users may be batched.
    pub(crate) push_batch: bool,
    /// This frontend's bind announcements not yet echoed back (see `modules`).
    pub(crate) own_binds: crate::modules::OwnBinds,
}

/// What the runtime needs from the server besides the transports.
pub struct RuntimeOptions {
    /// The server's sessions: frontends look users up here, backends create their
    /// relayed sessions here.
    pub pool: SessionPool,
    /// This server's handlers, for messages forwarded to it.
    pub handlers: Arc<dyn LocalHandlers>,
    /// This server's remotes, for user RPCs.
    pub remotes: Remotes,
    /// Custom routing per server type (Go's `AddRoute`); random routing for the others.
    pub routes: HashMap<String, RouteFn>,
    /// `pitaya.cluster.rpc.server.loopbackenabled`: serve an RPC to this server's own
    /// type in process instead of refusing it (spec §6.6).
    pub loopback: bool,
    /// `pitaya.handler.messages.compression`, for answers by hand.
    pub data_compression: bool,
    /// `pitaya.cluster.rpc.client.pushbatch`: batched pushes between pitaya-rs
    /// frontends (see [`ClusterRuntime::push_to_users`]); `false`, Go's path only.
    pub push_batch: bool,
}

impl std::fmt::Debug for RuntimeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeOptions").field("loopback", &self.loopback).finish_non_exhaustive()
    }
}

impl ClusterRuntime {
    /// The runtime of the server whose record is `parts.discovery.this_server()`; the
    /// parts' modules are left to the caller, who starts them with its own.
    pub fn new(parts: &ClusterParts, options: RuntimeOptions) -> Arc<Self> {
        let RuntimeOptions {
            pool,
            handlers,
            remotes,
            routes,
            loopback,
            data_compression,
            push_batch,
        } = options;
        let health = Arc::new(crate::health::Health::default());
        // A (re)registration seen through discovery brings a server back into rotation.
        parts.discovery.add_listener(health.clone());
        Arc::new_cyclic(|this| Self {
            this: this.clone(),
            me: parts.discovery.this_server().clone(),
            discovery: parts.discovery.clone(),
            client: parts.client.clone(),
            rpc_server: parts.server.clone(),
            pool,
            handlers,
            remotes,
            routes,
            loopback,
            answer_codec: pitaya_codec::MessageCodec::new().with_data_compression(data_compression),
            metrics: OnceLock::new(),
            health,
            capable: crate::batch::Capable::default(),
            push_batch,
            own_binds: crate::modules::OwnBinds::default(),
        })
    }

    /// Reports each user RPC's round trip to `metrics` from now on; only the first call
    /// takes effect.
    pub fn set_metrics(&self, metrics: Arc<dyn RpcMetrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// This server's record as registered (with what the transports added).
    pub fn server(&self) -> &Arc<Server> {
        &self.me
    }

    /// The service discovery.
    pub fn discovery(&self) -> &Arc<dyn ServiceDiscovery> {
        &self.discovery
    }

    /// The RPC client.
    pub fn client(&self) -> &Arc<dyn RpcClient> {
        &self.client
    }

    /// The RPC server.
    pub fn rpc_server(&self) -> &Arc<dyn RpcServer> {
        &self.rpc_server
    }
}

impl ClusterRuntime {
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
    /// of that type, or one at random. Both choose among the servers in rotation while
    /// any is (a server that failed at the transport level is out until it answers a
    /// probe or registers again, see `health`), else among all.
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
        let servers = self.routable(servers);
        if let Some(f) = self.routes.get(server_type) {
            return f(RouteRequest { session, route, payload, servers: &servers });
        }
        Ok(servers[random_index(servers.len())].clone())
    }

    /// Forwards a client message to a server of its route's type (Sys RPC, spec §6.6)
    /// and turns the answer into the client's response body (`None` for a notify).
    ///
    /// # Errors
    /// `PIT-500` when no server of the type is known; the backend's error; transport
    /// errors and timeouts as [`RpcClient::call`] gives them.
    ///
    /// Also returns the message's lane (see `pitaya_agent::Dispatched::lane`): when the
    /// transport sends calls in the order of their first poll
    /// ([`RpcClient::orders_on_first_poll`]), a hash of the chosen server's id, so that a
    /// session's next messages to the same server leave without waiting for this answer;
    /// `None` otherwise. The receiving server runs one session's messages in arrival
    /// order (a Go backend runs them concurrently: ordering is then Go's).
    ///
    /// Routing is sticky: without a custom route for the type, a session keeps the server
    /// it was first sent to for each type while that server is registered and in
    /// rotation (see `health`), so its messages stay in one lane. A custom route function
    /// is asked for every message; when it picks another server the lane changes and the
    /// agent waits for the earlier answers first.
    pub fn forward(
        self: &Arc<Self>,
        session: Session,
        route: Route,
        id: u64,
        is_request: bool,
        data: Bytes,
    ) -> (BoxFuture<'static, Result<Option<Bytes>, Error>>, Option<u64>) {
        let target = match self.forward_target(&session, &route, &data) {
            Ok(t) => t,
            Err(e) => return (Box::pin(std::future::ready(Err(e))), None),
        };
        let lane = self.client.orders_on_first_poll().then(|| lane_of(&target.id));
        let route_str = route.as_str().to_owned();
        // The peer keys `stamp` would add, written with the others.
        let mut ctx = Context::for_request_from(&route_str, &self.me.id, &self.me.server_type);
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
        if !span.is_disabled() {
            span.record("trace_id", tracing::field::display(trace.trace_id_hex()));
        }
        let req = protos::Request {
            r#type: RpcType::Sys as i32,
            session: Some(protos::Session {
                id: session.id(),
                uid: session.uid().map(|u| u.to_string()).unwrap_or_default(),
                data: session.encoded_data(),
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
            let answer = core.client.call(&target, ctx, req).await;
            core.observe(&target, &answer);
            let result = match answer {
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
        (Box::pin(tracing::Instrument::instrument(fut, span)), lane)
    }

    /// The server a client message of `session` goes to: the custom route of its type if
    /// there is one, else the server this session was sent to before for that type while
    /// it is still registered and in rotation, else one at random, remembered for the
    /// session.
    fn forward_target(
        &self,
        session: &Session,
        route: &Route,
        payload: &[u8],
    ) -> Result<Arc<Server>, Error> {
        let server_type = route.server_type();
        if self.routes.contains_key(server_type) {
            return self.choose(server_type, Some(session), route, payload);
        }
        let sticky = session.extension::<StickyRoutes>().unwrap_or_default();
        if let Some(known) = sticky.get(server_type) {
            if self.discovery.server(&known.id).is_some() && self.in_rotation(&known.id) {
                return Ok(known);
            }
        }
        let chosen = self.choose(server_type, Some(session), route, payload)?;
        session.set_extension(sticky.with(server_type, chosen.clone()));
        Ok(chosen)
    }

    /// Sends a user RPC (spec §6.6) and returns the reply's protobuf bytes.
    ///
    /// # Errors
    /// The remote's error; `PIT-000` for a route without server type, for this
    /// server's own type without loopback, or an unknown `server_id`; `PIT-500` when no
    /// server of the type is known; transport errors and timeouts.
    pub async fn rpc(
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
            let req = RemoteRequest { ctx, state: self.handlers.state().clone() };
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
    pub(crate) async fn user_rpc(
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
        if !span.is_disabled() {
            span.record("trace_id", tracing::field::display(trace.trace_id_hex()));
        }
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
        let answer =
            tracing::Instrument::instrument(self.client.call(target, ctx, req), span.clone()).await;
        self.observe(target, &answer);
        let result = match answer {
            Ok(resp) => match resp.error {
                Some(e) => Err(error_from_proto(e)),
                None => Ok(resp.data),
            },
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            span.record("code", e.code());
        }
        if let (Some(metrics), Some(route)) = (self.metrics.get(), metric_route) {
            metrics.rpc_completed(&route, started.elapsed(), result.as_ref().map(|_| ()));
        }
        result
    }

    /// Pushes to users by uid (spec §8.4): locally when this server is a frontend of
    /// `frontend_type` holding the uid, through the RPC client otherwise: one
    /// `sys.pushbatch` per frontend of the type when they are all pitaya-rs servers (see
    /// `batch`), else one message per uid as Go does. Returns the uids that failed.
    pub async fn push_to_users(
        &self,
        route: &str,
        data: Bytes,
        uids: &[String],
        frontend_type: &str,
    ) -> Vec<String> {
        let held = if self.me.server_type == frontend_type {
            self.pool.by_uids(uids.iter().map(String::as_str)).1
        } else {
            vec![None; uids.len()]
        };
        // The uids held here: encoded once per wire variant and queued on every connection
        // without waiting (a full queue does not hold up the others).
        let (local, remote): (Vec<_>, Vec<_>) =
            uids.iter().map(String::as_str).zip(&held).partition(|(_, s)| s.is_some());
        let remote: Vec<String> = remote.into_iter().map(|(uid, _)| uid.to_owned()).collect();
        let shared = pitaya_session::SharedPush::new(route, data.clone());
        let local =
            pitaya_session::fan_out(local.into_iter().map(|(u, s)| (u, s.as_ref())), &shared);
        let batched = self.push_batched(route, &data, &remote, frontend_type);
        let (mut failed, batched) = futures_util::join!(local, batched);
        for uid in &failed {
            tracing::debug!(%uid, "push to user failed");
        }
        match batched {
            Some(remote_failed) => failed.extend(remote_failed),
            None => {
                let sends = remote.iter().map(|uid| {
                    let push =
                        Push { route: route.to_owned(), uid: uid.clone(), data: data.clone() };
                    async move {
                        self.client.send_push(frontend_type, None, push).await.err().map(|e| {
                            tracing::debug!(%uid, error = %e, "push to user failed");
                            uid.clone()
                        })
                    }
                });
                failed.extend(futures_util::future::join_all(sends).await.into_iter().flatten());
            }
        }
        failed
    }

    /// Kicks users by uid (spec §8.4): locally when a local session holds the uid,
    /// through the RPC client otherwise. Returns the uids that failed.
    pub async fn kick_users(&self, uids: &[String], frontend_type: &str) -> Vec<String> {
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
}

/// The server a session was last routed to, per server type: a session talks to few
/// types, so a short list, replaced whole (copy on write) on the rare change.
#[derive(Clone, Default)]
struct StickyRoutes(Arc<[(String, Arc<Server>)]>);

impl StickyRoutes {
    fn get(&self, server_type: &str) -> Option<Arc<Server>> {
        self.0.iter().find(|(t, _)| t == server_type).map(|(_, s)| s.clone())
    }

    fn with(&self, server_type: &str, server: Arc<Server>) -> Self {
        let mut routes: Vec<_> = self.0.iter().filter(|(t, _)| t != server_type).cloned().collect();
        routes.push((server_type.to_owned(), server));
        Self(routes.into())
    }
}

/// A session's lane toward the server `id`: messages in one lane may be in flight together.
fn lane_of(id: &str) -> u64 {
    use std::hash::BuildHasher;
    LANE_HASH.hash_one(id)
}

/// One fixed hasher for the process, so that a server id always gives the same lane.
static LANE_HASH: std::sync::LazyLock<std::collections::hash_map::RandomState> =
    std::sync::LazyLock::new(std::collections::hash_map::RandomState::new);

fn random_index(len: usize) -> usize {
    (pitaya_core::context::random_u64() % len as u64) as usize
}
