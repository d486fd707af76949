//! The dispatcher: client messages to this server's handlers, or forwarded to a
//! server of another type in cluster mode.

use std::sync::Arc;

use bytes::Bytes;
use pitaya_agent::{ClientMessage, Dispatch};
use pitaya_core::{BoxFuture, Error};
use pitaya_handler::{AppState, HandlerKind, HandlerService, Request, RouterService};
use pitaya_serialize::Serializer;
use pitaya_session::Session;
use tower::{Service, ServiceExt};

use crate::cluster::ClusterCore;

/// The handlers as the dispatcher calls them.
pub(crate) enum Handlers {
    /// No layers: the router is called directly, which saves cloning a boxed service and
    /// boxing its oneshot future on every message.
    Router(RouterService),
    /// The router wrapped in the application's layers.
    Layered(HandlerService),
}

/// This server's handlers with what every call needs; shared by the client dispatcher
/// and the cluster's RPC server.
pub(crate) struct HandlerCore {
    pub(crate) service: Handlers,
    pub(crate) server_type: String,
    pub(crate) serializer: Arc<dyn Serializer>,
    pub(crate) state: AppState,
}

impl HandlerCore {
    pub(crate) fn call(&self, req: Request) -> BoxFuture<'static, Result<Option<Bytes>, Error>> {
        match &self.service {
            Handlers::Router(router) => router.clone().call(req),
            Handlers::Layered(service) => Box::pin(service.clone().oneshot(req)),
        }
    }
}

pub(crate) struct LocalDispatch {
    pub(crate) handlers: Arc<HandlerCore>,
    pub(crate) cluster: Option<Arc<ClusterCore>>,
    /// Set when metrics are on; `None` keeps the hot path free of timing.
    pub(crate) metrics: Option<Arc<dyn pitaya_metrics::Reporter>>,
}

impl Dispatch for LocalDispatch {
    fn dispatch(
        &self,
        session: Session,
        msg: ClientMessage,
    ) -> BoxFuture<'static, Result<Option<Bytes>, Error>> {
        let Some(reporter) = self.metrics.clone() else { return self.route(session, msg) };
        let route = if msg.route.server_type().is_empty() {
            msg.route.clone().with_server_type(&self.handlers.server_type)
        } else {
            msg.route.clone()
        };
        let started = std::time::Instant::now();
        if let Some(received) = msg.received {
            let kind = if route.server_type() == self.handlers.server_type {
                pitaya_metrics::names::delay_type::LOCAL
            } else {
                pitaya_metrics::names::delay_type::REMOTE
            };
            crate::metrics_wiring::report_delay(
                reporter.as_ref(),
                route.as_str(),
                kind,
                started.saturating_duration_since(received),
            );
        }
        let fut = self.route(session, msg);
        Box::pin(async move {
            let result = fut.await;
            crate::metrics_wiring::report_response(
                reporter.as_ref(),
                route.as_str(),
                "handler",
                started,
                result.as_ref().map(|_| ()),
            );
            result
        })
    }

    fn wants_receipt_time(&self) -> bool {
        self.metrics.is_some()
    }
}

impl LocalDispatch {
    fn route(
        &self,
        session: Session,
        msg: ClientMessage,
    ) -> BoxFuture<'static, Result<Option<Bytes>, Error>> {
        let route = msg.route;
        let own_type = &self.handlers.server_type;
        if !route.server_type().is_empty() && route.server_type() != own_type {
            if let Some(cluster) = &self.cluster {
                return cluster.forward(session, route, msg.id, msg.is_request, msg.data);
            }
            // Spec §3.1: a standalone Go frontend stays silent here and the client waits
            // forever; every request gets an answer from us.
            let err = Error::not_found(format!("pitaya/handler: {route} not found"));
            return Box::pin(std::future::ready(Err(err)));
        }
        let route =
            if route.server_type().is_empty() { route.with_server_type(own_type) } else { route };
        let req = Request {
            session,
            route,
            id: msg.id,
            kind: if msg.is_request { HandlerKind::Request } else { HandlerKind::Notify },
            data: msg.data,
            serializer: self.handlers.serializer.clone(),
            state: self.handlers.state.clone(),
            ctx: pitaya_core::Context::new(),
        };
        let span =
            tracing::debug_span!("pitaya.handler", route = %req.route, session = req.session.id());
        if span.is_disabled() {
            // The hot path stays free of the span's extra boxing when nobody records it.
            return self.handlers.call(req);
        }
        Box::pin(tracing::Instrument::instrument(self.handlers.call(req), span))
    }
}
