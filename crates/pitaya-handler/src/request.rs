//! [`Request`]: everything a handler can extract, and [`Reply`].

use std::sync::Arc;

use bytes::Bytes;
use pitaya_codec::Route;
use pitaya_core::Context;
use pitaya_serialize::Serializer;
use pitaya_session::Session;

use crate::{HandlerKind, state::AppState};

/// One client message on its way to a handler.
#[derive(Clone)]
pub struct Request {
    /// The client's session.
    pub session: Session,
    /// The route, with the server type filled in.
    pub route: Route,
    /// The message id of a request; 0 for a notify.
    pub id: u64,
    /// Whether the client sent a request or a notify.
    pub kind: HandlerKind,
    /// The payload, already inflated.
    pub data: Bytes,
    /// The server's serializer, used by [`Msg`](crate::Msg) and for error bodies.
    pub serializer: Arc<dyn Serializer>,
    /// Application state, for [`State`](crate::State).
    pub state: AppState,
    /// The propagated context of an RPC this request arrived in (spec §6.5); empty for
    /// a client message handled on its frontend.
    pub ctx: Context,
}

/// What a handler produced: a body for a request, nothing for a notify.
pub type Reply = Option<Bytes>;

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("session", &self.session.id())
            .field("route", &self.route.to_string())
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("len", &self.data.len())
            .finish()
    }
}
