//! [`AppHandle`]: what handlers and the application use to reach sessions and groups.

use std::sync::Arc;

use bytes::Bytes;
#[cfg(feature = "cluster")]
use pitaya_core::Context;
use pitaya_core::Error;
use pitaya_groups::Groups;
use pitaya_handler::{FromRequestParts, Request};
use pitaya_serialize::Serializer;
use pitaya_session::{SessionPool, SharedPush};

use crate::fanout::{FanoutCache, fan_out_resolved};
use pitaya_session::fan_out;

#[cfg(feature = "cluster")]
use pitaya_cluster_runtime::ClusterRuntime;

/// A cheap, cloneable handle on a server: its sessions, groups and serializer. Handlers
/// take it as an extractor.
#[derive(Clone)]
pub struct AppHandle(pub(crate) Arc<HandleInner>);

pub(crate) struct HandleInner {
    pub(crate) server_type: String,
    pub(crate) pool: SessionPool,
    pub(crate) groups: Arc<dyn Groups>,
    pub(crate) serializer: Arc<dyn Serializer>,
    /// Set once the cluster is up; empty on a standalone server.
    #[cfg(feature = "cluster")]
    pub(crate) cluster: std::sync::OnceLock<Arc<ClusterRuntime>>,
    /// Set when metrics are on.
    pub(crate) metrics: std::sync::OnceLock<Arc<dyn pitaya_metrics::Reporter>>,
    /// From the end of `App::start` to the start of `RunningApp::shutdown` (Go's
    /// `IsRunning`).
    pub(crate) running: std::sync::atomic::AtomicBool,
    /// Each broadcast group's sessions, for [`AppHandle::broadcast`].
    pub(crate) fanout: FanoutCache,
}

impl AppHandle {
    /// This server's type.
    pub fn server_type(&self) -> &str {
        &self.0.server_type
    }

    /// The sessions of this process.
    pub fn sessions(&self) -> &SessionPool {
        &self.0.pool
    }

    /// The metrics reporters, to report custom metrics from `pitaya.metrics.custom` by
    /// name (an unknown name or a wrong label set is an error, never a panic); `None`
    /// when metrics are off.
    pub fn metrics(&self) -> Option<&Arc<dyn pitaya_metrics::Reporter>> {
        self.0.metrics.get()
    }

    /// The groups service.
    pub fn groups(&self) -> &dyn Groups {
        self.0.groups.as_ref()
    }

    /// The client serializer.
    pub fn serializer(&self) -> &Arc<dyn Serializer> {
        &self.0.serializer
    }

    /// Encodes `value` with the client serializer, for pushes.
    ///
    /// # Errors
    /// `PIT-000` when the value cannot be encoded.
    pub fn encode<T: serde::Serialize + prost::Message>(&self, value: &T) -> Result<Bytes, Error> {
        pitaya_handler::extract::encode_with(self.0.serializer.as_ref(), value).map(Bytes::from)
    }

    /// Pushes `data` on `route` to the sessions bound to `uids` in this process. Returns
    /// the uids that could not be reached (Go's `SendPushToUsers`).
    ///
    /// The push is encoded once per wire variant in use and queued on each session
    /// without waiting: a client whose outgoing queue is full gets it after what is
    /// already queued and never holds up the others, and a client whose queue has been
    /// full for `pitaya.buffer.agent.conntimeout` is closed (its uid is then returned).
    /// The uids are looked up under one lock.
    pub async fn push_to_uids<'a>(
        &self,
        uids: impl IntoIterator<Item = &'a str>,
        route: &str,
        data: Bytes,
    ) -> Vec<String> {
        let uids: Vec<&str> = uids.into_iter().collect();
        let (_, sessions) = self.0.pool.by_uids(uids.iter().copied());
        let push = SharedPush::new(route, data);
        fan_out(uids.iter().copied().zip(sessions.iter().map(Option::as_ref)), &push).await
    }

    /// Pushes `data` on `route` to every member of `group` that has a session in this
    /// process (Go's `GroupBroadcast`). Returns the members that could not be reached.
    ///
    /// As [`push_to_uids`](Self::push_to_uids), and without looking uids up while the
    /// group's membership and this server's uid bindings are unchanged: the sessions
    /// each group resolved to are kept by the app.
    ///
    /// # Errors
    /// The group's error, e.g. `group not found`.
    pub async fn broadcast(
        &self,
        group: &str,
        route: &str,
        data: Bytes,
    ) -> Result<Vec<String>, Error> {
        let members = self.0.groups.member_snapshot(group).await?;
        let resolved = self.0.fanout.resolve(group, &members, &self.0.pool);
        Ok(fan_out_resolved(&resolved, &SharedPush::new(route, data)).await)
    }

    /// Kicks the session bound to `uid` in this process.
    ///
    /// # Errors
    /// `PIT-000` `session not found` when no session is bound to `uid`.
    pub async fn kick_uid(&self, uid: &str) -> Result<(), Error> {
        let session = self
            .0
            .pool
            .by_uid(uid)
            .ok_or_else(|| Error::unknown(pitaya_session::messages::NOT_FOUND))?;
        session.kick().await
    }
}

/// Readiness, and pushes and kicks by uid: across the cluster in cluster mode, to this
/// process's sessions otherwise.
impl AppHandle {
    /// Whether this server can serve requests now (Go's `IsReady`), for a readiness
    /// probe: it has started and is not shutting down, and in cluster mode its RPC
    /// client and server are connected (NATS: not reconnecting or closed; see
    /// [`RpcClient::is_connected`](pitaya_cluster_runtime::RpcClient::is_connected)) and its
    /// service discovery reaches its backend
    /// ([`ServiceDiscovery::is_connected`](pitaya_cluster_runtime::ServiceDiscovery::is_connected)).
    ///
    /// A standalone server and in-process transports are always connected. With etcd
    /// this is one read bounded by `pitaya.cluster.sd.etcd.revoke.timeout` (5 s), so
    /// the answer comes within that bound.
    pub async fn is_ready(&self) -> bool {
        if !self.0.running.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        #[cfg(feature = "cluster")]
        if let Some(runtime) = self.0.cluster.get() {
            return runtime.client().is_connected()
                && runtime.rpc_server().is_connected()
                && runtime.discovery().is_connected().await;
        }
        true
    }

    /// Pushes `data` on `route` to the users `uids` connected to frontends of
    /// `frontend_type`, wherever they are (Go's `SendPushToUsers`, spec §8.4). Returns
    /// the uids that failed. On a standalone server only local sessions are reached.
    pub async fn send_push_to_users(
        &self,
        route: &str,
        data: Bytes,
        uids: &[String],
        frontend_type: &str,
    ) -> Vec<String> {
        #[cfg(feature = "cluster")]
        if let Some(c) = self.0.cluster.get() {
            return c.push_to_users(route, data, uids, frontend_type).await;
        }
        let _ = frontend_type;
        self.push_to_uids(uids.iter().map(String::as_str), route, data).await
    }

    /// Kicks the users `uids` from frontends of `frontend_type`, wherever they are (Go's
    /// `SendKickToUsers`). Returns the uids that failed.
    pub async fn send_kick_to_users(&self, uids: &[String], frontend_type: &str) -> Vec<String> {
        #[cfg(feature = "cluster")]
        if let Some(c) = self.0.cluster.get() {
            return c.kick_users(uids, frontend_type).await;
        }
        let _ = frontend_type;
        let mut failed = Vec::new();
        for uid in uids {
            if self.kick_uid(uid).await.is_err() {
                failed.push(uid.clone());
            }
        }
        failed
    }

    /// Pushes to every member of `group` on frontends of `frontend_type` (Go's
    /// `GroupBroadcast`). Returns the members that could not be reached.
    ///
    /// # Errors
    /// The group's error, e.g. `group not found`.
    pub async fn group_broadcast(
        &self,
        frontend_type: &str,
        group: &str,
        route: &str,
        data: Bytes,
    ) -> Result<Vec<String>, Error> {
        #[cfg(feature = "cluster")]
        if let Some(c) = self.0.cluster.get() {
            let members = self.0.groups.members(group).await?;
            return Ok(c.push_to_users(route, data, &members, frontend_type).await);
        }
        let _ = frontend_type;
        self.broadcast(group, route, data).await
    }
}

/// Cluster operations (spec §6.6, §8.4; feature `cluster`).
#[cfg(feature = "cluster")]
impl AppHandle {
    fn cluster(&self) -> Result<&Arc<ClusterRuntime>, Error> {
        self.0.cluster.get().ok_or_else(|| Error::unknown("not running in cluster mode"))
    }

    /// This server's record in the cluster; `None` on a standalone server.
    pub fn server(&self) -> Option<Arc<pitaya_cluster_runtime::Server>> {
        self.0.cluster.get().map(|c| c.server().clone())
    }

    /// The service discovery; `None` on a standalone server.
    pub fn discovery(&self) -> Option<Arc<dyn pitaya_cluster_runtime::ServiceDiscovery>> {
        self.0.cluster.get().map(|c| c.discovery().clone())
    }

    /// Calls the remote `route` (`serverType.service.method`) on a server of that type,
    /// chosen by the routing function of the type or at random (Go's `RPC`).
    ///
    /// Pass the [`Context`] the handler extracted, so the request id and timeout travel
    /// on.
    ///
    /// # Errors
    /// The remote's error with its code and metadata; on timeout `PIT-408` over NATS,
    /// `PIT-000` `rpc error: code = DeadlineExceeded desc = context deadline exceeded`
    /// over gRPC (both as in Go); `PIT-000` for a route without server type, or for this server's own type unless
    /// `pitaya.cluster.rpc.server.loopbackenabled` (spec §6.6); `PIT-500` when no server
    /// of the type is known.
    pub async fn rpc<R: prost::Message + Default>(
        &self,
        ctx: &Context,
        route: &str,
        arg: &impl prost::Message,
    ) -> Result<R, Error> {
        let data = Bytes::from(arg.encode_to_vec());
        let reply = self.cluster()?.rpc(ctx, None, route, Some(data)).await?;
        R::decode(reply).map_err(|e| Error::unknown(e.to_string()))
    }

    /// As [`rpc`](Self::rpc), for a remote without argument.
    ///
    /// # Errors
    /// As [`rpc`](Self::rpc).
    pub async fn rpc_no_args<R: prost::Message + Default>(
        &self,
        ctx: &Context,
        route: &str,
    ) -> Result<R, Error> {
        let reply = self.cluster()?.rpc(ctx, None, route, None).await?;
        R::decode(reply).map_err(|e| Error::unknown(e.to_string()))
    }

    /// As [`rpc`](Self::rpc), on the server `server_id` (Go's `RPCTo`).
    ///
    /// # Errors
    /// As [`rpc`](Self::rpc); `PIT-000` `server not found` for an unknown id.
    pub async fn rpc_to<R: prost::Message + Default>(
        &self,
        ctx: &Context,
        server_id: &str,
        route: &str,
        arg: &impl prost::Message,
    ) -> Result<R, Error> {
        let data = Bytes::from(arg.encode_to_vec());
        let reply = self.cluster()?.rpc(ctx, Some(server_id), route, Some(data)).await?;
        R::decode(reply).map_err(|e| Error::unknown(e.to_string()))
    }

    /// Calls the remote `route` with an already encoded argument and returns the
    /// encoded reply: on `server_id` when given, else on a server of the route's type
    /// chosen as by [`rpc`](Self::rpc). For callers that hold protobuf bytes, such as
    /// the reliable-RPC worker.
    ///
    /// # Errors
    /// As [`rpc`](Self::rpc) and [`rpc_to`](Self::rpc_to).
    pub async fn rpc_raw(
        &self,
        ctx: &Context,
        server_id: Option<&str>,
        route: &str,
        data: Option<Bytes>,
    ) -> Result<Bytes, Error> {
        self.cluster()?.rpc(ctx, server_id, route, data).await
    }
}

impl FromRequestParts for AppHandle {
    fn from_request_parts(req: &Request) -> Result<Self, Error> {
        req.state
            .get::<AppHandle>()
            .ok_or_else(|| Error::internal("no application handle in the request state"))
    }
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHandle")
            .field("server_type", &self.0.server_type)
            .field("sessions", &self.0.pool.count())
            .finish()
    }
}
