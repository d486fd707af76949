//! What this server does with the RPCs, pushes, kicks and bind announcements it
//! receives.

use std::sync::{Arc, Weak};

use bytes::Bytes;
use pitaya_cluster::context::req_timeout;
use pitaya_cluster::protos::{
    self, BindMsg, KickAnswer, KickMsg, MsgType, Push, Response, RpcType,
};
use pitaya_cluster::{RpcHandler, TIMEOUT_MESSAGE};
use pitaya_codec::Route;
use pitaya_core::context::REQ_ROUTE;
use pitaya_core::{BoxFuture, Context, Error};
use pitaya_handler::{HandlerKind, RemoteRequest};
use pitaya_session::messages::NOT_FOUND;
use prost::Message;

use tokio::sync::oneshot;

use crate::errors::error_to_proto;
use crate::remote_session::{EarlyAnswer, RemoteEntity};
use crate::runtime::ClusterRuntime;

/// Message for a request whose `metadata` is missing or not a JSON object (spec §6.5).
pub(crate) const NO_CONTEXT: &str = "no context found";

/// The [`RpcHandler`] the RPC server calls. Holds the core weakly: the core owns the
/// RPC server, which owns this handler.
pub(crate) struct Incoming(pub(crate) Weak<ClusterRuntime>);

fn gone() -> Error {
    Error::internal("server is shutting down")
}

impl RpcHandler for Incoming {
    fn handle_request(&self, req: protos::Request) -> BoxFuture<'static, Response> {
        let core = self.0.upgrade();
        Box::pin(async move {
            let result = match core {
                Some(core) => core.serve(req).await,
                None => Err(gone()),
            };
            match result {
                Ok(data) => Response { data, error: None },
                Err(e) => Response { data: Bytes::new(), error: Some(error_to_proto(&e)) },
            }
        })
    }

    fn handle_push(&self, push: Push) -> BoxFuture<'static, Result<(), Error>> {
        let core = self.0.upgrade();
        Box::pin(async move {
            let core = core.ok_or_else(gone)?;
            let session = core.pool.by_uid(&push.uid).ok_or_else(|| Error::unknown(NOT_FOUND))?;
            session.push(&push.route, push.data).await
        })
    }

    fn handle_kick(&self, kick: KickMsg) -> BoxFuture<'static, Result<KickAnswer, Error>> {
        let core = self.0.upgrade();
        Box::pin(async move {
            let core = core.ok_or_else(gone)?;
            let session =
                core.pool.by_uid(&kick.user_id).ok_or_else(|| Error::unknown(NOT_FOUND))?;
            kick_or_close(&session).await;
            Ok(KickAnswer { kicked: true })
        })
    }

    fn handle_bind(&self, bind: BindMsg) -> BoxFuture<'static, Result<(), Error>> {
        let core = self.0.upgrade();
        Box::pin(async move {
            let core = core.ok_or_else(gone)?;
            if bind.fid == core.me.id {
                if core.client.session_binds_echo_in_order() {
                    core.own_binds.echoed(&bind.uid);
                }
                return Ok(());
            }
            if core.own_binds.older_than_ours(&bind.uid) {
                tracing::debug!(uid = %bind.uid, frontend = %bind.fid, "an older bind on another frontend: the local session, newer, stays");
                return Ok(());
            }
            if let Some(session) = core.pool.by_uid(&bind.uid) {
                tracing::debug!(uid = %bind.uid, frontend = %bind.fid, "uid bound on another frontend: kicking the local session");
                kick_or_close(&session).await;
            }
            Ok(())
        })
    }
}

/// Kicks `session`; if the kick packet cannot be queued (a dead or stuck connection),
/// closes it anyway, so the newer login always wins.
pub(crate) async fn kick_or_close(session: &pitaya_session::Session) {
    if let Err(e) = session.kick().await {
        tracing::debug!(session = session.id(), error = %e, "kick failed: closing the session");
        session.close();
    }
}

/// Receiving: the RPC handler the runtime installs, and the per-user subscriptions.
impl ClusterRuntime {
    /// Starts receiving: the RPC server serves peers' requests from now on, and a
    /// frontend subscribes each user it binds (spec §6.2). Discovery registration is
    /// the caller's last step, once the whole server can serve.
    ///
    /// # Errors
    /// When the RPC server cannot start.
    pub async fn start(self: &Arc<Self>) -> Result<(), Error> {
        let incoming = Arc::new(Incoming(Arc::downgrade(self)));
        self.rpc_server.start(incoming).await?;
        self.register_bind_callbacks();
        Ok(())
    }

    /// Registers the frontend's bind callback: per-user subscriptions (spec §6.2).
    fn register_bind_callbacks(self: &Arc<Self>) {
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

    /// Serves one RPC: context checks, the server-side timeout, then Sys or User.
    async fn serve(self: Arc<Self>, mut req: protos::Request) -> Result<Bytes, Error> {
        if req.metadata.is_empty() {
            return Err(Error::internal(NO_CONTEXT));
        }
        let mut ctx =
            Context::decode_bytes(req.metadata.clone()).map_err(|_| Error::internal(NO_CONTEXT))?;
        let timeout = req_timeout(&ctx)?;
        let msg =
            req.msg.take().ok_or_else(|| Error::bad_request("route field can not be empty"))?;
        // A frontend's context already names the route it forwards: no need to rewrite it.
        if ctx.get_str(REQ_ROUTE) != Some(msg.route.as_str()) {
            ctx.insert(REQ_ROUTE, msg.route.as_str());
        }
        let span = tracing::info_span!(
            "pitaya.rpc.server",
            route = %msg.route,
            kind = if req.r#type == RpcType::User as i32 { "user" } else { "sys" },
            peer = ctx.get_str(pitaya_core::context::PEER_ID).unwrap_or(""),
            trace_id = %ctx.trace_parent().map(|t| t.trace_id_hex()).unwrap_or_default(),
            code = tracing::field::Empty,
        );
        crate::telemetry::link_incoming(&span, &ctx);
        let work = async {
            let result = match RpcType::try_from(req.r#type) {
                Ok(RpcType::Sys) => self.serve_sys(ctx, req, msg).await,
                Ok(RpcType::User) => self.serve_user(ctx, msg).await,
                Err(_) => Err(Error::bad_request("invalid rpc type")),
            };
            if let Err(e) = &result {
                tracing::Span::current().record("code", e.code());
            }
            result
        };
        let work = tracing::Instrument::instrument(work, span);
        match timeout {
            // Spec §6.3: past the caller's timeout nobody waits for the answer any more.
            Some(t) => tokio::time::timeout(t, work)
                .await
                .unwrap_or_else(|_| Err(Error::internal(TIMEOUT_MESSAGE))),
            None => work.await,
        }
    }

    /// A client message forwarded by a frontend: run the handler with a temporary
    /// session built from the one the frontend sent (spec §8.3).
    async fn serve_sys(
        &self,
        ctx: Context,
        req: protos::Request,
        msg: protos::Msg,
    ) -> Result<Bytes, Error> {
        let route = Route::parse(&msg.route).map_err(|e| Error::bad_request(e.to_string()))?;
        let route = if route.server_type().is_empty() {
            route.with_server_type(&self.me.server_type)
        } else {
            route
        };
        let remote = req.session.unwrap_or_default();
        let uid = (!remote.uid.is_empty()).then(|| remote.uid.clone());
        let (answer, early) = if self.rpc_server.answers_early() {
            let (tx, rx) = oneshot::channel();
            (EarlyAnswer::Ready(tx), Some(rx))
        } else {
            (EarlyAnswer::Unsupported, None)
        };
        let entity = Arc::new(RemoteEntity::new(
            self.this.clone(),
            req.frontend_id,
            remote.id,
            uid,
            ctx.clone(),
            answer,
        ));
        let session = self.pool.create_detached(entity, Some(remote.uid.as_str()));
        // `{}` (what a frontend sends for no data) leaves the new session as it is.
        if !remote.data.is_empty() && remote.data[..] != *b"{}" {
            if let Err(e) = session.set_encoded_data(&remote.data) {
                tracing::warn!(error = %e, "forwarded session data is not a JSON object; ignored");
            }
        }
        let kind = if msg.r#type == MsgType::MsgNotify as i32 {
            HandlerKind::Notify
        } else {
            HandlerKind::Request
        };
        let hreq = pitaya_handler::Request {
            session,
            route,
            id: msg.id,
            kind,
            data: msg.data,
            serializer: self.handlers.serializer().clone(),
            state: self.handlers.state().clone(),
            ctx,
        };
        let mut call = self.handlers.call(hreq);
        let reply = match early {
            None => call.await?,
            Some(mut early) => {
                let reply = tokio::select! {
                    biased;
                    Ok(packet) = &mut early => {
                        tokio::spawn(finish_answered(call, msg.route));
                        return Ok(packet);
                    }
                    reply = &mut call => reply,
                };
                // A handler that answered by hand and returned in the same poll: the
                // answer by hand wins, the return value is dropped.
                if let Ok(packet) = early.try_recv() {
                    finish_answered(std::future::ready(reply), msg.route).await;
                    return Ok(packet);
                }
                reply?
            }
        };
        // A notify answers the literal "ack" so that the caller's request completes.
        Ok(reply.unwrap_or_else(|| Bytes::from_static(b"ack")))
    }

    /// A user RPC: a `sys` remote of the framework, or an application remote.
    async fn serve_user(&self, ctx: Context, msg: protos::Msg) -> Result<Bytes, Error> {
        let parts: Vec<&str> = msg.route.split('.').collect();
        let short = match parts.len() {
            3 => msg.route.split_once('.').map_or("", |(_, s)| s),
            2 => msg.route.as_str(),
            _ => {
                return Err(Error::bad_request("cannot decode route")
                    .with_metadata("route", msg.route.as_str()));
            }
        };
        match short {
            "sys.bindsession" => self.sys_bind_session(msg.data).await,
            "sys.pushsession" => self.sys_push_session(msg.data),
            "sys.kick" => self.sys_kick(msg.data).await,
            crate::batch::ROUTE => self.sys_push_batch(msg.data).await,
            _ => {
                let req = RemoteRequest { ctx, state: self.handlers.state().clone() };
                self.remotes.call(short, req, msg.data).await
            }
        }
    }

    async fn sys_bind_session(&self, data: Bytes) -> Result<Bytes, Error> {
        let s = protos::Session::decode(data).map_err(|e| Error::bad_request(e.to_string()))?;
        let session = self.pool.get(s.id).ok_or_else(|| Error::unknown(NOT_FOUND))?;
        session.bind(&s.uid).await?;
        Ok(nested_ack())
    }

    fn sys_push_session(&self, data: Bytes) -> Result<Bytes, Error> {
        let s = protos::Session::decode(data).map_err(|e| Error::bad_request(e.to_string()))?;
        let session = self.pool.get(s.id).ok_or_else(|| Error::unknown(NOT_FOUND))?;
        // Spec §8.3: the data replaces the whole map; an absent field changes nothing.
        if !s.data.is_empty() {
            session.set_encoded_data(&s.data)?;
        }
        Ok(nested_ack())
    }

    async fn sys_kick(&self, data: Bytes) -> Result<Bytes, Error> {
        let k = KickMsg::decode(data).map_err(|e| Error::bad_request(e.to_string()))?;
        let session = self.pool.by_uid(&k.user_id).ok_or_else(|| Error::unknown(NOT_FOUND))?;
        kick_or_close(&session).await;
        Ok(KickAnswer { kicked: true }.encode_to_vec().into())
    }
}

/// Runs the rest of a handler that answered by hand. Go's backend also publishes the
/// handler's return value as a second reply, which the caller never reads; we drop it
/// and say so in the log instead of sending it.
async fn finish_answered(
    call: impl std::future::Future<Output = Result<Option<Bytes>, Error>>,
    route: String,
) {
    match call.await {
        Ok(_) => {
            tracing::debug!(%route, "request answered by hand: the handler's return value is dropped")
        }
        Err(e) => {
            tracing::warn!(%route, error = %e, "request answered by hand: the handler's later error is dropped")
        }
    }
}

/// `Response{data:"ack"}` inside the outer response's data (`0a 05 0a 03 61 63 6b`,
/// spec §8.3).
fn nested_ack() -> Bytes {
    Response { data: Bytes::from_static(b"ack"), error: None }.encode_to_vec().into()
}
