//! [`RemoteEntity`]: what a backend's temporary session talks through. Every operation
//! is relayed to the frontend that holds the client (spec §8.3).

use std::net::SocketAddr;
use std::sync::{Mutex, Weak};

use bytes::{Bytes, BytesMut};
use pitaya_cluster::protos::{self, KickAnswer, KickMsg, Push, Response};
use pitaya_codec::Message;
use pitaya_core::{BoxFuture, Context, Error};
use pitaya_session::NetworkEntity;
use prost::Message as _;
use tokio::sync::oneshot;

use crate::runtime::ClusterRuntime;

/// Message for an operation that needs a bound uid.
pub(crate) const NO_UID: &str = "you have to bind an UID to the session to do that";
/// Go's `ErrSessionOnNotify`: answering by hand a message that was a notify.
pub(crate) const ON_NOTIFY: &str = "current session working on notify mode";
/// Go's `ErrNotImplemented`, what its gRPC client answers to a backend's `ResponseMID`.
pub(crate) const NOT_IMPLEMENTED: &str = "method not implemented";
/// Answering by hand a second time.
pub(crate) const ALREADY_ANSWERED: &str = "the request was already answered";

/// Where a backend handler's answer by hand (`Session::respond`, Go's `ResponseMID`)
/// goes: to the RPC server, which sends it at once as the request's reply.
pub(crate) enum EarlyAnswer {
    /// The transport cannot answer before the handler returns (gRPC, as in Go).
    Unsupported,
    /// Not answered yet.
    Ready(oneshot::Sender<Bytes>),
    /// Answered (or the request is over).
    Sent,
}

pub(crate) struct RemoteEntity {
    core: Weak<ClusterRuntime>,
    frontend_id: String,
    frontend_session_id: i64,
    /// The context of the request this session serves, forwarded on the RPCs it makes.
    ctx: Context,
    /// The uid as last bound through this entity or received from the frontend.
    uid: Mutex<Option<String>>,
    answer: Mutex<EarlyAnswer>,
}

impl RemoteEntity {
    pub(crate) fn new(
        core: Weak<ClusterRuntime>,
        frontend_id: String,
        frontend_session_id: i64,
        uid: Option<String>,
        ctx: Context,
        answer: EarlyAnswer,
    ) -> Self {
        Self {
            core,
            frontend_id,
            frontend_session_id,
            ctx,
            uid: Mutex::new(uid),
            answer: Mutex::new(answer),
        }
    }

    /// Go's backend `ResponseMID` (spec §6.6): the answer is a whole client packet (a
    /// Data packet holding a Response message for `id`), which the frontend relays to
    /// the client as the response body, byte for byte as with a Go backend.
    fn answer_early(&self, id: u64, data: Bytes, error: bool) -> Result<(), Error> {
        if id == 0 {
            return Err(Error::unknown(ON_NOTIFY));
        }
        let mut slot = self.answer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = match std::mem::replace(&mut *slot, EarlyAnswer::Sent) {
            EarlyAnswer::Ready(tx) => tx,
            EarlyAnswer::Unsupported => {
                *slot = EarlyAnswer::Unsupported;
                return Err(Error::unknown(NOT_IMPLEMENTED));
            }
            EarlyAnswer::Sent => return Err(Error::unknown(ALREADY_ANSWERED)),
        };
        drop(slot);
        let msg =
            if error { Message::error_response(id, data) } else { Message::response(id, data) };
        let core = self.core()?;
        let mut packet = BytesMut::new();
        core.answer_codec
            .encode_packet(&msg, &mut packet)
            .map_err(|e| Error::unknown(e.to_string()))?;
        // The receiver is gone once the request is over (answered or timed out).
        tx.send(packet.freeze()).map_err(|_| Error::unknown(ALREADY_ANSWERED))
    }

    fn core(&self) -> Result<std::sync::Arc<ClusterRuntime>, Error> {
        self.core.upgrade().ok_or_else(|| Error::internal("server is shutting down"))
    }

    /// Calls `sys.<method>` on the frontend with `arg` and returns the reply bytes.
    async fn sys_call(&self, method: &str, arg: Vec<u8>) -> Result<Bytes, Error> {
        let core = self.core()?;
        let target = core
            .discovery
            .server(&self.frontend_id)
            .ok_or_else(|| Error::unknown("server not found"))?;
        core.user_rpc(&target, self.ctx.clone(), format!("sys.{method}"), arg.into()).await
    }

    fn uid(&self, session_uid: Option<&str>) -> Option<String> {
        session_uid
            .map(str::to_owned)
            .or_else(|| self.uid.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
    }
}

impl NetworkEntity for RemoteEntity {
    fn push(&self, route: &str, data: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        let route = route.to_owned();
        Box::pin(async move {
            let uid = self.uid(None).ok_or_else(|| Error::unknown(NO_UID))?;
            let core = self.core()?;
            let frontend = core
                .discovery
                .server(&self.frontend_id)
                .ok_or_else(|| Error::unknown("server not found"))?;
            let push = Push { route, uid, data };
            core.client.send_push(&frontend.server_type, Some(&self.frontend_id), push).await
        })
    }

    fn respond(&self, id: u64, data: Bytes, error: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(std::future::ready(self.answer_early(id, data, error)))
    }

    fn kick(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let uid = self.uid(None).ok_or_else(|| Error::unknown(NO_UID))?;
            let reply = self.sys_call("kick", KickMsg { user_id: uid }.encode_to_vec()).await?;
            match KickAnswer::decode(reply) {
                Ok(KickAnswer { kicked: true }) => Ok(()),
                _ => Err(Error::unknown("kick failed")),
            }
        })
    }

    fn close(&self) {
        // Closing the client's connection from a backend is a kick; Go's backend
        // sessions refuse close callbacks too.
        tracing::debug!(frontend = %self.frontend_id, "close() on a backend session does nothing: use kick()");
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    fn bind_remote(&self, uid: &str) -> Option<BoxFuture<'_, Result<(), Error>>> {
        let uid = uid.to_owned();
        Some(Box::pin(async move {
            let arg = protos::Session {
                id: self.frontend_session_id,
                uid: uid.clone(),
                data: Bytes::new(),
            };
            let reply = self.sys_call("bindsession", arg.encode_to_vec()).await?;
            check_ack(&reply)?;
            *self.uid.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(uid);
            Ok(())
        }))
    }

    fn push_session(&self, uid: Option<&str>, data: Vec<u8>) -> BoxFuture<'_, Result<(), Error>> {
        let uid = self.uid(uid).unwrap_or_default();
        Box::pin(async move {
            let arg = protos::Session { id: self.frontend_session_id, uid, data: data.into() };
            let reply = self.sys_call("pushsession", arg.encode_to_vec()).await?;
            check_ack(&reply)
        })
    }

    fn frontend(&self) -> Option<(&str, i64)> {
        Some((&self.frontend_id, self.frontend_session_id))
    }
}

/// Checks the nested `Response{data:"ack"}` of `sys.bindsession` and `sys.pushsession`.
fn check_ack(reply: &[u8]) -> Result<(), Error> {
    match Response::decode(reply) {
        Ok(r) if r.error.is_none() => Ok(()),
        Ok(r) => Err(crate::errors::error_from_proto(r.error.unwrap_or_default())),
        Err(e) => Err(Error::unknown(format!("bad reply from frontend: {e}"))),
    }
}
