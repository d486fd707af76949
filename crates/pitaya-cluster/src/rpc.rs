//! RPC transport traits: [`RpcClient`] sends, [`RpcServer`] receives and hands messages
//! to an [`RpcHandler`].

use std::sync::Arc;

use pitaya_core::{BoxFuture, Context, Error};
use pitaya_protos::protos::{BindMsg, KickAnswer, KickMsg, Push, Request, Response};

use crate::Server;

/// Sends RPCs, pushes, kicks and bind announcements to other servers (spec §6, §7).
pub trait RpcClient: Send + Sync + 'static {
    /// Sends `req` to `target` and waits for its response.
    ///
    /// The client writes `ctx` into `req.metadata`. The NATS client adds its configured
    /// timeout as `reqTimeout` when `ctx` has none and waits that long; the gRPC client
    /// always writes its own (spec §6.3, §7).
    ///
    /// # Errors
    /// On timeout, what Go's client of the same transport gives: NATS `PIT-408` `rpc
    /// client: request timeout` (metadata `timeout`, `route`, `server`, `peer.id`), gRPC
    /// `PIT-000` with grpc-go's deadline text; transport errors as `PIT-000` with their
    /// text. An error
    /// the remote handler returned is *not* an `Err`: it is in `Response.error`.
    ///
    /// When the transport knows the request reached no live target (NATS no responders,
    /// gRPC `Unavailable` or no connection), the error's local source is an
    /// [`Unreachable`](crate::Unreachable) mark, read with
    /// [`unreachable_kind`](crate::unreachable_kind): the cluster runtime then routes
    /// around the target. Timeouts are not marked.
    fn call(
        &self,
        target: &Server,
        ctx: Context,
        req: Request,
    ) -> BoxFuture<'_, Result<Response, Error>>;

    /// Pushes to a user of a frontend type (spec §8.4). `frontend_id` is the user's
    /// frontend when known (a backend session knows it); NATS publishes on the user's
    /// subject whether or not anybody holds the uid.
    ///
    /// # Errors
    /// Transport errors.
    fn send_push<'a>(
        &'a self,
        frontend_type: &'a str,
        frontend_id: Option<&'a str>,
        push: Push,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Asks the frontends of `frontend_type` holding `kick.user_id` to kick it.
    ///
    /// # Errors
    /// Transport errors.
    fn send_kick<'a>(
        &'a self,
        frontend_type: &'a str,
        kick: KickMsg,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Announces that this frontend bound `uid` (unique-session module, spec §8.5).
    ///
    /// # Errors
    /// Transport errors.
    fn broadcast_session_bind<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// Whether this frontend's own [`broadcast_session_bind`](Self::broadcast_session_bind)
    /// announcements come back to its [`RpcHandler::handle_bind`](crate::RpcHandler::handle_bind)
    /// in the one order every frontend of the type sees them (NATS: one subject, echo
    /// on). The unique-session module then tells an announcement older than its own bind
    /// from a newer one. `false` (the default) for transports without such an order.
    fn session_binds_echo_in_order(&self) -> bool {
        false
    }

    /// Closes the client once in-flight calls have finished. Idempotent.
    fn stop(&self) -> BoxFuture<'_, ()>;

    /// Whether a call's request is handed to the connection by the first poll of the
    /// future [`call`](Self::call) returns, in the order of those first polls, and sent in
    /// that order. The caller may then start a call before the earlier ones are
    /// answered and still know that the target receives them in order. NATS does (one
    /// ordered command queue per connection); the default, `false`, promises nothing.
    fn orders_on_first_poll(&self) -> bool {
        false
    }

    /// Whether the client's connection is up right now (Go's NATS `IsConnected`), for
    /// the application's readiness check. Never waits. The default is `true`: a
    /// transport without a standing connection (gRPC dials per peer, in-process) has
    /// nothing to report.
    fn is_connected(&self) -> bool {
        true
    }
}

/// Receives what other servers send to this one and hands it to an [`RpcHandler`].
pub trait RpcServer: Send + Sync + 'static {
    /// Subscribes this server's subjects (or starts listening) and dispatches to
    /// `handler`. Resolves once messages can be received.
    ///
    /// # Errors
    /// When the transport cannot be reached.
    fn start(&self, handler: Arc<dyn RpcHandler>) -> BoxFuture<'_, Result<(), Error>>;

    /// Starts receiving pushes and kicks for `uid` (a frontend calls this when a session
    /// binds). Receiving stops when the returned subscription is dropped. Two live
    /// subscriptions for one uid must not deliver a message twice.
    ///
    /// # Errors
    /// Transport errors; the bind then fails.
    fn subscribe_user<'a>(&'a self, uid: &'a str)
    -> BoxFuture<'a, Result<UserSubscription, Error>>;

    /// Stops receiving, waits for the requests being handled to be answered, and closes.
    /// Idempotent.
    fn stop(&self) -> BoxFuture<'_, ()>;

    /// Messages dropped since start because a bounded buffer was full (reported as the
    /// `dropped_messages` gauge). Transports without such buffers keep the default, 0.
    fn dropped_messages(&self) -> u64 {
        0
    }

    /// The server's request queue and handler pool right now, for the
    /// `channel_capacity{channel="rpc_server_subchan"}` and
    /// `busy_workers`/`total_workers{pool="rpc_server_remote"}` gauges. Transports
    /// without a bounded queue or pool keep the default: nothing to report.
    fn load(&self) -> RpcServerLoad {
        RpcServerLoad::default()
    }

    /// Whether a Sys RPC can be answered before its handler returns: Go's
    /// `session.ResponseMID` on a backend session (spec §6.6), which publishes the answer
    /// to the request's reply subject while the handler goes on. NATS can (each request
    /// has its own reply subject); gRPC cannot (Go's gRPC client answers such a call with
    /// `method not implemented`), nor can the other transports: the default, `false`.
    fn answers_early(&self) -> bool {
        false
    }

    /// Whether the server's connection is up right now (Go's NATS `IsConnected`), for
    /// the application's readiness check. Never waits; the default is `true`, as for
    /// [`RpcClient::is_connected`].
    fn is_connected(&self) -> bool {
        true
    }
}

/// What [`RpcServer::load`] reports; `None` for what the transport does not have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpcServerLoad {
    /// Free slots of the queue of received requests waiting for a handler.
    pub request_queue_free: Option<usize>,
    /// Requests being handled, and the most that may be handled at once.
    pub workers: Option<(usize, usize)>,
}

/// What a server does with what it receives. Implemented by the cluster runtime.
pub trait RpcHandler: Send + Sync + 'static {
    /// Serves a Sys or User RPC. Always produces a response: errors travel in
    /// `Response.error`.
    fn handle_request(&self, req: Request) -> BoxFuture<'static, Response>;

    /// Delivers a push to the local session bound to `push.uid`.
    ///
    /// # Errors
    /// `session not found` when no local session holds the uid.
    fn handle_push(&self, push: Push) -> BoxFuture<'static, Result<(), Error>>;

    /// Kicks the local session bound to `kick.user_id`.
    ///
    /// # Errors
    /// `session not found` when no local session holds the uid.
    fn handle_kick(&self, kick: KickMsg) -> BoxFuture<'static, Result<KickAnswer, Error>>;

    /// Another frontend bound `bind.uid`: kick the local holder unless `bind.fid` is this
    /// server (spec §8.5).
    ///
    /// # Errors
    /// When the kick fails.
    fn handle_bind(&self, bind: BindMsg) -> BoxFuture<'static, Result<(), Error>>;
}

/// A live per-user subscription; dropping it unsubscribes.
#[must_use = "dropping the subscription unsubscribes at once"]
pub struct UserSubscription(Option<Box<dyn FnOnce() + Send + Sync>>);

impl UserSubscription {
    /// A subscription that runs `release` when dropped.
    pub fn new(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(release)))
    }

    /// A subscription with nothing to release (transports that need none, e.g. gRPC).
    pub fn none() -> Self {
        Self(None)
    }
}

impl Drop for UserSubscription {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}

impl std::fmt::Debug for UserSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSubscription").field("live", &self.0.is_some()).finish()
    }
}
