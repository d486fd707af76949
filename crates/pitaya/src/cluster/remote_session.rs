//! [`RemoteEntity`]: what a backend's temporary session talks through. Every operation
//! is relayed to the frontend that holds the client (spec §8.3).

use std::net::SocketAddr;
use std::sync::{Mutex, Weak};

use bytes::Bytes;
use pitaya_cluster::protos::{self, KickAnswer, KickMsg, Push, Response};
use pitaya_core::{BoxFuture, Context, Error};
use pitaya_session::NetworkEntity;
use prost::Message;

use super::ClusterCore;

/// Message for an operation that needs a bound uid.
pub(crate) const NO_UID: &str = "you have to bind an UID to the session to do that";

pub(crate) struct RemoteEntity {
    core: Weak<ClusterCore>,
    frontend_id: String,
    frontend_session_id: i64,
    /// The context of the request this session serves, forwarded on the RPCs it makes.
    ctx: Context,
    /// The uid as last bound through this entity or received from the frontend.
    uid: Mutex<Option<String>>,
}

impl RemoteEntity {
    pub(crate) fn new(
        core: Weak<ClusterCore>,
        frontend_id: String,
        frontend_session_id: i64,
        uid: Option<String>,
        ctx: Context,
    ) -> Self {
        Self { core, frontend_id, frontend_session_id, ctx, uid: Mutex::new(uid) }
    }

    fn core(&self) -> Result<std::sync::Arc<ClusterCore>, Error> {
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

    fn respond(&self, _id: u64, _data: Bytes, _error: bool) -> BoxFuture<'_, Result<(), Error>> {
        // The handler's return value is the response; Go's edge path of answering from a
        // backend by hand (ResponseMID over NATS only) is not supported.
        Box::pin(std::future::ready(Err(Error::unknown(
            "a backend session answers through its handler's return value",
        ))))
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
        Ok(r) => Err(super::error_from_proto(r.error.unwrap_or_default())),
        Err(e) => Err(Error::unknown(format!("bad reply from frontend: {e}"))),
    }
}
