//! The dispatcher: client messages to this server's handlers, or forwarded to a
//! server of another type in cluster mode.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use pitaya_agent::{ClientMessage, Dispatch, Dispatched, Tracked};
use pitaya_core::{BoxFuture, Error};
use pitaya_handler::{AppState, HandlerKind, HandlerService, Request, RouterService};
use pitaya_metrics::names::response_type::HANDLER;
use pitaya_metrics::names::{self, delay_type};
use pitaya_metrics::{MetricKind, Recorder, Reporter, nanos};
use pitaya_serialize::Serializer;
use pitaya_session::Session;
use tower::{Service, ServiceExt};

#[cfg(feature = "cluster")]
use pitaya_cluster_runtime::ClusterRuntime;

/// What a handler or a forwarded message resolves to: the response body, if any.
type HandlerFuture = BoxFuture<'static, Result<Option<Bytes>, Error>>;

/// The handlers as the dispatcher calls them.
pub(crate) enum Handlers {
    /// No layers: the router is called directly, which saves cloning a boxed service and
    /// boxing its oneshot future on every message.
    Router(RouterService),
    /// The router wrapped in the application's layers.
    Layered(HandlerService),
}

/// This server's handlers with what every call needs; shared by the client dispatcher
/// and, as its [`LocalHandlers`](pitaya_cluster_runtime::LocalHandlers), the cluster
/// runtime.
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
    #[cfg(feature = "cluster")]
    pub(crate) cluster: Option<Arc<ClusterRuntime>>,
    /// Set when metrics are on; `None` keeps the hot path free of timing.
    pub(crate) metrics: Option<Arc<DispatchMetrics>>,
}

/// The reporter, and the series of this server's own handler routes resolved once each,
/// so that a request to one of them reports without looking its series up by name and
/// labels (most of what a report cost).
pub(crate) struct DispatchMetrics {
    reporter: Arc<dyn Reporter>,
    /// `serverType.service.method` → its index in `routes`, the [`Tracked`] token. Built
    /// before serving and never changed, so reading it takes no lock; routes outside it
    /// (forwarded ones, unknown ones) are reported through [`Reporter::report`].
    index: HashMap<String, usize, foldhash::fast::RandomState>,
    routes: Vec<RouteSeries>,
}

/// One handler route's series, each resolved when first needed: a route that never
/// succeeds gets no `status="ok"` series, as in Go where series appear on first report.
struct RouteSeries {
    name: String,
    delay: OnceLock<Option<Arc<dyn Recorder>>>,
    ok: OnceLock<Option<Arc<dyn Recorder>>>,
}

impl DispatchMetrics {
    pub(crate) fn new(
        reporter: Arc<dyn Reporter>,
        server_type: &str,
        short_routes: impl IntoIterator<Item = String>,
    ) -> Self {
        let routes: Vec<RouteSeries> = short_routes
            .into_iter()
            .map(|short| RouteSeries {
                name: format!("{server_type}.{short}"),
                delay: OnceLock::new(),
                ok: OnceLock::new(),
            })
            .collect();
        let index = routes.iter().enumerate().map(|(i, r)| (r.name.clone(), i)).collect();
        Self { reporter, index, routes }
    }

    /// The cached series `cell`, resolved on first use; `None` when the reporter refused
    /// it (logged once; such reports go through [`Reporter::report`]).
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

    /// `handler_delay_ns` of a message that waited `waited` before `route` started.
    fn delay(&self, route: &str, cached: Option<usize>, local: bool, waited: Duration) {
        let series = cached.and_then(|i| self.routes.get(i)).and_then(|r| {
            let labels = crate::metrics_wiring::delay_labels(route, delay_type::LOCAL);
            self.series(&r.delay, names::PROCESS_DELAY, &labels)
        });
        match series {
            Some(series) => crate::metrics_wiring::log(series.record(nanos(waited))),
            None => {
                let kind = if local { delay_type::LOCAL } else { delay_type::REMOTE };
                crate::metrics_wiring::report_delay(self.reporter.as_ref(), route, kind, waited);
            }
        }
    }

    /// `response_time_ns` of a tracked request to one of this server's handlers.
    fn completed(&self, tracked: Tracked, result: Result<(), &Error>) {
        let Some(route) = self.routes.get(tracked.token) else { return };
        if result.is_ok() {
            let labels = crate::metrics_wiring::response_labels(&route.name, HANDLER, Ok(()));
            if let Some(series) = self.series(&route.ok, names::RESPONSE_TIME, &labels) {
                crate::metrics_wiring::log(series.record(nanos(tracked.started.elapsed())));
                return;
            }
        }
        let reporter = self.reporter.as_ref();
        let took = tracked.started.elapsed();
        crate::metrics_wiring::report_response(reporter, &route.name, HANDLER, took, result);
    }
}

impl Dispatch for LocalDispatch {
    fn dispatch(
        &self,
        session: Session,
        msg: ClientMessage,
    ) -> BoxFuture<'static, Result<Option<Bytes>, Error>> {
        match (self.dispatch_tracked(session, msg), &self.metrics) {
            ((fut, Some(tracked)), Some(metrics)) => {
                let metrics = metrics.clone();
                Box::pin(async move {
                    let result = fut.await;
                    metrics.completed(tracked, result.as_ref().map(|_| ()));
                    result
                })
            }
            ((fut, _), _) => fut,
        }
    }

    /// With metrics on, a request to one of this server's handlers is tracked: its
    /// response time is reported from [`Dispatch::completed`], without a wrapping future.
    /// Other requests (forwarded, unknown routes) are wrapped and reported by name.
    fn dispatch_tracked(
        &self,
        session: Session,
        msg: ClientMessage,
    ) -> (BoxFuture<'static, Result<Option<Bytes>, Error>>, Option<Tracked>) {
        let Dispatched { answer, tracked, .. } = self.dispatch_laned(session, msg);
        (answer, tracked)
    }

    /// As [`Dispatch::dispatch_tracked`], with the lane of a forwarded message (see
    /// `ClusterRuntime::forward`); local handlers have none.
    fn dispatch_laned(&self, session: Session, msg: ClientMessage) -> Dispatched {
        let Some(metrics) = &self.metrics else {
            let (answer, lane) = self.route(session, msg);
            return Dispatched { answer, tracked: None, lane };
        };
        let started = quanta::Instant::now();
        let own_type = &self.handlers.server_type;
        let ClientMessage { route, id, is_request, data, received } = msg;
        let route =
            if route.server_type().is_empty() { route.with_server_type(own_type) } else { route };
        let local = route.server_type() == own_type;
        let cached = if local { metrics.index.get(route.as_str()).copied() } else { None };
        if let Some(received) = received {
            metrics.delay(
                route.as_str(),
                cached,
                local,
                started.saturating_duration_since(received),
            );
        }
        if let Some(token) = cached {
            let (answer, lane) = self.route_resolved(session, id, is_request, data, route);
            return Dispatched { answer, tracked: Some(Tracked { started, token }), lane };
        }
        let name = route.as_str().to_owned();
        let reporter = metrics.reporter.clone();
        let (fut, lane) = self.route_resolved(session, id, is_request, data, route);
        let fut = Box::pin(async move {
            let result = fut.await;
            let outcome = result.as_ref().map(|_| ());
            let took = started.elapsed();
            crate::metrics_wiring::report_response(
                reporter.as_ref(),
                &name,
                HANDLER,
                took,
                outcome,
            );
            result
        });
        Dispatched { answer: fut, tracked: None, lane }
    }

    fn completed(&self, tracked: Tracked, result: Result<(), &Error>) {
        if let Some(metrics) = &self.metrics {
            metrics.completed(tracked, result);
        }
    }

    fn wants_receipt_time(&self) -> bool {
        self.metrics.is_some()
    }
}

impl LocalDispatch {
    fn route(&self, session: Session, msg: ClientMessage) -> (HandlerFuture, Option<u64>) {
        self.route_resolved(session, msg.id, msg.is_request, msg.data, msg.route)
    }

    /// Runs the handler of `route` or forwards it, with the forwarded message's lane;
    /// `route` may lack its server type.
    fn route_resolved(
        &self,
        session: Session,
        id: u64,
        is_request: bool,
        data: Bytes,
        route: pitaya_codec::Route,
    ) -> (HandlerFuture, Option<u64>) {
        let own_type = &self.handlers.server_type;
        if !route.server_type().is_empty() && route.server_type() != own_type {
            #[cfg(feature = "cluster")]
            if let Some(cluster) = &self.cluster {
                return cluster.forward(session, route, id, is_request, data);
            }
            // Spec §3.1: a standalone Go frontend stays silent here and the client waits
            // forever; every request gets an answer from us.
            let err = Error::not_found(format!("pitaya/handler: {route} not found"));
            return (Box::pin(std::future::ready(Err(err))), None);
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
            return (self.handlers.call(req), None);
        }
        (Box::pin(tracing::Instrument::instrument(self.handlers.call(req), span)), None)
    }
}
