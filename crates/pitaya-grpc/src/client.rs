//! [`GrpcRpcClient`]: sends RPCs, pushes, kicks and bind announcements over gRPC
//! (spec §7, §8.4, §8.5).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pitaya_cluster::protos::{BindMsg, KickMsg, Push, Request, Response};
use pitaya_cluster::{BINDING_NOT_FOUND, BindingStorage, RpcClient, SdListener, Server};
use pitaya_config::model::GrpcClientConfig;
use pitaya_core::{BoxFuture, Context, Error};
use tonic::Status;
use tonic::transport::Channel;

use crate::errors::{CallFailure, no_binding_storage, no_connection, stopped};
use crate::peers::{DialSettings, Peers};
use crate::proto::pitaya_client::PitayaClient;
use pitaya_cluster::gate::Gate;

/// The gRPC RPC client of one server: one HTTP/2 channel per discovered server (spec §7).
///
/// Register it as an [`SdListener`] of the service discovery: a server is dialed as soon
/// as it is discovered (unless `lazyconnection`, then on first use; never this server
/// itself), at the address its metadata gives ([`grpc_address`](crate::grpc_address)),
/// and forgotten when it leaves. A server without a usable address, or one that left,
/// cannot be called: such calls fail with `PIT-000` `rpc client has no connection to the
/// chosen server`.
///
/// Every operation is bounded by the configured request timeout, which is also the gRPC
/// deadline. Reaching a user by uid (push without a frontend id, kick, bind
/// announcements) needs the [`BindingStorage`]. After [`RpcClient::stop`] every
/// operation fails.
pub struct GrpcRpcClient {
    me: Arc<Server>,
    request_timeout: Duration,
    bindings: Option<Arc<dyn BindingStorage>>,
    peers: Peers,
    in_flight: Gate,
}

impl GrpcRpcClient {
    /// A client speaking for `me` (the `fid` of a `BindMsg`)
    /// in region `region` (`pitaya.cluster.info.region`, for the address choice), with
    /// `dialtimeout`, `requesttimeout` and `lazyconnection` from `config`. `bindings`
    /// finds a user's frontend by uid (the etcd binding storage, spec §8.6); without it,
    /// pushes need a frontend id and kicks and bind announcements fail.
    ///
    /// Dials nothing: servers come through [`SdListener::server_added`]. Eager dials run
    /// on the tokio runtime current at `server_added`, or else the one current here; with
    /// neither, servers are dialed on first use.
    pub fn new(
        config: &GrpcClientConfig,
        region: String,
        me: Arc<Server>,
        bindings: Option<Arc<dyn BindingStorage>>,
    ) -> Self {
        let settings = DialSettings {
            dial_timeout: config.dial_timeout,
            lazy: config.lazy_connection,
            region,
        };
        let runtime = tokio::runtime::Handle::try_current().ok();
        Self {
            me,
            request_timeout: config.request_timeout,
            bindings,
            peers: Peers::new(settings, runtime),
            in_flight: Gate::default(),
        }
    }

    /// Runs one unary call on `target_id`'s channel, bounded by the request timeout, and
    /// maps failures as Go's client reports them.
    async fn unary<R, F, Fut>(&self, target_id: &str, call: F) -> Result<R, Error>
    where
        F: FnOnce(PitayaClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let _pass = self.in_flight.enter().ok_or_else(stopped)?;
        let peer = self.peers.get(target_id).ok_or_else(no_connection)?;
        let timeout = self.request_timeout;
        let attempt = async {
            let channel = peer.channel().await;
            call(PitayaClient::new(channel), timeout).await
        };
        let outcome = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(response)) => return Ok(response.into_inner()),
            Ok(Err(status)) => CallFailure::from(status),
            Err(_) => CallFailure::TimedOut,
        };
        Err(outcome.into_error())
    }

    /// The storage, or Go's error asking for one.
    fn bindings(&self) -> Result<&Arc<dyn BindingStorage>, Error> {
        self.bindings.as_ref().ok_or_else(no_binding_storage)
    }
}

/// A request carrying `timeout` as its gRPC deadline (`grpc-timeout`).
fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

impl RpcClient for GrpcRpcClient {
    /// Calls `/protos.Pitaya/Call` on `target`.
    ///
    /// The configured request timeout is the gRPC deadline and is written into the
    /// context as `reqTimeout`, replacing the caller's (spec §6.5, §7); the context
    /// becomes `req.metadata`. Cancel-safe: dropping the future cancels the call.
    ///
    /// # Errors
    /// - `PIT-000` `rpc client has no connection to the chosen server` when `target` has
    ///   no usable gRPC address or is not (or no longer) in service discovery;
    /// - `PIT-000` `rpc error: code = DeadlineExceeded desc = context deadline exceeded`
    ///   ([`DEADLINE_EXCEEDED`](crate::DEADLINE_EXCEEDED)), with no metadata, when no
    ///   answer came within the timeout, dialing included: Go's gRPC client passes
    ///   grpc-go's error through (the NATS client's `PIT-408` is not used here);
    /// - `PIT-000` `rpc error: code = <Code> desc = <message>` for any other gRPC status,
    ///   dial failures included (`code = Unavailable`);
    /// - `PIT-000` after `stop`.
    ///
    /// `Unavailable` and no-connection errors carry the local
    /// [`Unreachable`](pitaya_cluster::Unreachable) mark; timeouts do not.
    fn call(
        &self,
        target: &Server,
        mut ctx: Context,
        mut req: Request,
    ) -> BoxFuture<'_, Result<Response, Error>> {
        pitaya_cluster::context::set_req_timeout(&mut ctx, self.request_timeout);
        req.metadata = ctx.to_bytes();
        let target_id = target.id.clone();
        Box::pin(async move {
            self.unary(&target_id, |mut client, timeout| async move {
                client.call(with_deadline(req, timeout)).await
            })
            .await
        })
    }

    /// Calls `/protos.Pitaya/PushToUser` on the user's frontend: `frontend_id` when given
    /// (and not empty), otherwise the frontend of `frontend_type` the binding storage
    /// names for `push.uid`.
    ///
    /// # Errors
    /// - the storage's error when the uid has no binding (`binding for this user was not
    ///   found in etcd`): nothing is sent, the push is counted in
    ///   [`pushes_without_binding`](crate::pushes_without_binding) under its route, and
    ///   the caller counts the uid as failed, as Go's `SendPush` returns the same error
    ///   and its `SendPushToUsers` lists the uid as not pushed;
    /// - `PIT-000` asking for a binding storage when there is none and no `frontend_id`;
    /// - `PIT-000` `rpc error: code = Unknown desc = session not found` when the frontend
    ///   does not hold the user; otherwise as [`RpcClient::call`].
    fn send_push<'a>(
        &'a self,
        frontend_type: &'a str,
        frontend_id: Option<&'a str>,
        push: Push,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let target = match frontend_id.filter(|id| !id.is_empty()) {
                Some(id) => id.to_owned(),
                None => match self.bindings()?.frontend_of(&push.uid, frontend_type).await {
                    Ok(target) => target,
                    Err(e) => {
                        if e.message() == BINDING_NOT_FOUND {
                            // Usually a user who is offline: counted apart from failures.
                            crate::counters::count_push_without_binding(&push.route);
                        }
                        return Err(e);
                    }
                },
            };
            self.unary(&target, |mut client, timeout| async move {
                client.push_to_user(with_deadline(push, timeout)).await
            })
            .await
            .map(drop)
        })
    }

    /// Calls `/protos.Pitaya/KickUser` on the frontend of `frontend_type` the binding
    /// storage names for `kick.user_id`.
    ///
    /// # Errors
    /// As [`RpcClient::send_push`]; without a binding storage, always.
    fn send_kick<'a>(
        &'a self,
        frontend_type: &'a str,
        kick: KickMsg,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let target = self.bindings()?.frontend_of(&kick.user_id, frontend_type).await?;
            self.unary(&target, |mut client, timeout| async move {
                client.kick_user(with_deadline(kick, timeout)).await
            })
            .await
            .map(drop)
        })
    }

    /// Unique sessions (spec §8.5): asks the frontend that held `uid` before this one to
    /// kick it, by calling `/protos.Pitaya/SessionBindRemote` with `BindMsg{uid, fid: <this
    /// server's id>}` on the frontend of this server's type that the binding storage
    /// names. The caller must call this *before* writing the new binding, so the lookup
    /// still finds the previous frontend.
    ///
    /// Nothing is sent, and the result is `Ok`, when the uid has no binding (or the lookup
    /// fails, as Go ignores lookup errors), when the binding names this server, or when
    /// the named frontend is not in service discovery any more (a binding left by a
    /// crashed frontend).
    ///
    /// # Errors
    /// `PIT-000` asking for a binding storage when there is none (as Go, which then fails
    /// the bind); the call's errors, as [`RpcClient::call`].
    fn broadcast_session_bind<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let bindings = self.bindings()?;
            let holder = match bindings.frontend_of(uid, &self.me.server_type).await {
                Ok(holder) => holder,
                Err(e) => {
                    if e.message() != BINDING_NOT_FOUND {
                        tracing::warn!(%uid, error = %e, "grpc client: binding lookup failed; bind not announced");
                    }
                    return Ok(());
                }
            };
            if holder.is_empty() || holder == self.me.id {
                return Ok(());
            }
            if self.peers.get(&holder).is_none() {
                tracing::debug!(%uid, frontend = %holder, "grpc client: previous frontend of the uid is gone; bind not announced");
                return Ok(());
            }
            let bind = BindMsg { uid: uid.to_owned(), fid: self.me.id.clone() };
            self.unary(&holder, |mut client, timeout| async move {
                client.session_bind_remote(with_deadline(bind, timeout)).await
            })
            .await
            .map(drop)
        })
    }

    /// Refuses new operations, waits for those in flight (each bounded by the request
    /// timeout, the wait too), then drops every channel, closing the connections.
    /// Idempotent.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if !self.in_flight.is_closed()
                && !self.in_flight.close_and_wait(self.request_timeout).await
            {
                tracing::warn!("grpc client: operations still in flight at stop");
            }
            self.peers.close();
        })
    }
}

impl SdListener for GrpcRpcClient {
    /// Records `server`'s gRPC address (spec §7) and, unless `lazyconnection`, dials it in
    /// the background within `dialtimeout` (a failure is logged; the next call dials
    /// again). This server itself is skipped. A server rediscovered at the same address
    /// keeps its connection; at another address it gets a new one. Does not block.
    fn server_added(&self, server: &Arc<Server>) {
        if server.id == self.me.id {
            return;
        }
        self.peers.add(server);
    }

    /// Forgets `server`: calls made from now on fail with "no connection"; calls in
    /// flight finish.
    fn server_removed(&self, server: &Arc<Server>) {
        self.peers.remove(&server.id);
    }
}
