//! The dispatcher: client messages to this server's handlers, or forwarded to a
//! server of another type in cluster mode.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use pitaya_agent::{ClientMessage, Dispatch};
use pitaya_core::{BoxFuture, Error};
use pitaya_handler::{AppState, HandlerKind, HandlerService, Request, RouterService};
use pitaya_metrics::names::response_type::HANDLER;
use pitaya_metrics::names::{self, delay_type, label, status};
use pitaya_metrics::{MetricKind, Recorder, Reporter, nanos};
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
    pub(crate) metrics: Option<DispatchMetrics>,
}

/// The reporter, and the series of this server's own handler routes resolved once each,
/// so that a request to one of them reports without looking its series up by name and
/// labels (most of what a report cost).
pub(crate) struct DispatchMetrics {
    reporter: Arc<dyn Reporter>,
    /// `serverType.service.method` → its series. Built before serving and never changed,
    /// so reading it takes no lock; routes outside it (forwarded ones, unknown ones) are
    /// reported through [`Reporter::report`].
    routes: HashMap<String, RouteSeries, foldhash::fast::RandomState>,
}

/// One handler route's series, each resolved when first needed: a route that never
/// succeeds gets no `status="ok"` series, as in Go where series appear on first report.
struct RouteSeries {
    /// The route, shared with the response's report so that it is not copied per request.
    name: Arc<str>,
    delay: OnceLock<Option<Arc<dyn Recorder>>>,
    ok: OnceLock<Option<Arc<dyn Recorder>>>,
}

impl DispatchMetrics {
    pub(crate) fn new(
        reporter: Arc<dyn Reporter>,
        server_type: &str,
        short_routes: impl IntoIterator<Item = String>,
    ) -> Self {
        let routes = short_routes
            .into_iter()
            .map(|short| {
                let name = format!("{server_type}.{short}");
                let series = RouteSeries {
                    name: Arc::from(name.as_str()),
                    delay: OnceLock::new(),
                    ok: OnceLock::new(),
                };
                (name, series)
            })
            .collect();
        Self { reporter, routes }
    }

    /// The cached series `cell` of `route`, resolved on first use; `None` when the reporter
    /// refused it (logged once; such reports go through [`Reporter::report`]).
    fn series<'a>(
        &self,
        cell: &'a OnceLock<Option<Arc<dyn Recorder>>>,
        metric: &str,
        labels: &[(&str, &str)],
    ) -> Option<&'a Arc<dyn Recorder>> {
        cell.get_or_init(|| {
            pitaya_metrics::recorder(&self.reporter, MetricKind::Summary, metric, labels)
                .inspect_err(|e| tracing::warn!(error = %e, metric, "metric series refused"))
                .ok()
        })
        .as_ref()
    }
}

impl Dispatch for LocalDispatch {
    fn dispatch(
        &self,
        session: Session,
        msg: ClientMessage,
    ) -> BoxFuture<'static, Result<Option<Bytes>, Error>> {
        let Some(metrics) = &self.metrics else { return self.route(session, msg) };
        let started = Instant::now();
        let own_type = &self.handlers.server_type;
        let ClientMessage { route, id, is_request, data, received } = msg;
        let route =
            if route.server_type().is_empty() { route.with_server_type(own_type) } else { route };
        let local = route.server_type() == own_type;
        let cached = if local { metrics.routes.get(route.as_str()) } else { None };
        if let Some(received) = received {
            let waited = started.saturating_duration_since(received);
            let delay = cached.and_then(|c| {
                let labels = [(label::ROUTE, route.as_str()), (label::TYPE, delay_type::LOCAL)];
                metrics.series(&c.delay, names::PROCESS_DELAY, &labels)
            });
            match delay {
                Some(series) => crate::metrics_wiring::log(series.record(nanos(waited))),
                None => {
                    let kind = if local { delay_type::LOCAL } else { delay_type::REMOTE };
                    let reporter = metrics.reporter.as_ref();
                    crate::metrics_wiring::report_delay(reporter, route.as_str(), kind, waited);
                }
            }
        }
        let (name, ok_series) = match cached {
            Some(c) => {
                let labels = [
                    (label::ROUTE, route.as_str()),
                    (label::STATUS, status::OK),
                    (label::TYPE, HANDLER),
                    (label::CODE, ""),
                ];
                (c.name.clone(), metrics.series(&c.ok, names::RESPONSE_TIME, &labels).cloned())
            }
            None => (Arc::from(route.as_str()), None),
        };
        let reporter = metrics.reporter.clone();
        let fut = self.route_resolved(session, id, is_request, data, route);
        Box::pin(async move {
            let result = fut.await;
            match (&result, ok_series) {
                (Ok(_), Some(series)) => {
                    crate::metrics_wiring::log(series.record(nanos(started.elapsed())));
                }
                _ => crate::metrics_wiring::report_response(
                    reporter.as_ref(),
                    &name,
                    HANDLER,
                    started,
                    result.as_ref().map(|_| ()),
                ),
            }
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
        self.route_resolved(session, msg.id, msg.is_request, msg.data, msg.route)
    }

    /// Runs the handler of `route` or forwards it; `route` may lack its server type.
    fn route_resolved(
        &self,
        session: Session,
        id: u64,
        is_request: bool,
        data: Bytes,
        route: pitaya_codec::Route,
    ) -> BoxFuture<'static, Result<Option<Bytes>, Error>> {
        let own_type = &self.handlers.server_type;
        if !route.server_type().is_empty() && route.server_type() != own_type {
            if let Some(cluster) = &self.cluster {
                return cluster.forward(session, route, id, is_request, data);
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
            id,
            kind: if is_request { HandlerKind::Request } else { HandlerKind::Notify },
            data,
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
