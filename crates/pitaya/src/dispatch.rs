//! The standalone dispatcher: client messages to this server's handlers.

use bytes::Bytes;
use pitaya_agent::{ClientMessage, Dispatch};
use pitaya_core::{BoxFuture, Error};
use pitaya_handler::{AppState, HandlerKind, HandlerService, Request, RouterService};
use pitaya_serialize::Serializer;
use pitaya_session::Session;
use tower::{Service, ServiceExt};

/// The handlers as the dispatcher calls them.
pub(crate) enum Handlers {
    /// No layers: the router is called directly, which saves cloning a boxed service and
    /// boxing its oneshot future on every message.
    Router(RouterService),
    /// The router wrapped in the application's layers.
    Layered(HandlerService),
}

pub(crate) struct LocalDispatch {
    pub(crate) service: Handlers,
    pub(crate) server_type: String,
    pub(crate) serializer: std::sync::Arc<dyn Serializer>,
    pub(crate) state: AppState,
}

impl Dispatch for LocalDispatch {
    fn dispatch(
        &self,
        session: Session,
        msg: ClientMessage,
    ) -> BoxFuture<'static, Result<Option<Bytes>, Error>> {
        let route = msg.route;
        if !route.server_type().is_empty() && route.server_type() != self.server_type {
            // Spec §3.1: a standalone Go frontend stays silent here and the client waits
            // forever; every request gets an answer from us.
            let err = Error::not_found(format!("pitaya/handler: {route} not found"));
            return Box::pin(std::future::ready(Err(err)));
        }
        let route = if route.server_type().is_empty() {
            route.with_server_type(&self.server_type)
        } else {
            route
        };
        let req = Request {
            session,
            route,
            id: msg.id,
            kind: if msg.is_request { HandlerKind::Request } else { HandlerKind::Notify },
            data: msg.data,
            serializer: self.serializer.clone(),
            state: self.state.clone(),
        };
        match &self.service {
            Handlers::Router(router) => router.clone().call(req),
            Handlers::Layered(service) => Box::pin(service.clone().oneshot(req)),
        }
    }
}
