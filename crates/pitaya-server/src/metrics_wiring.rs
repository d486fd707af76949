//! Metrics wiring: the reporters `pitaya.metrics.*` asks for, the periodic gauges, and
//! response-time reporting (spec §11).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pitaya_agent::AgentShared;
use pitaya_config::PitayaConfig;
use pitaya_core::Error;
use pitaya_metrics::names::label;
use pitaya_metrics::{MetricKind, Reporter, Reporters, names};
use pitaya_session::QueueFree;

#[cfg(feature = "cluster")]
use pitaya_cluster_runtime::ClusterRuntime;

/// The running metrics of a server; dropping it stops serving and reporting.
pub(crate) struct MetricsRuntime {
    pub(crate) prometheus_addr: Option<SocketAddr>,
    _server: Option<pitaya_metrics::MetricsServer>,
    _runtime: pitaya_metrics::RuntimeReporter,
    periodic: tokio::task::JoinHandle<()>,
}

impl Drop for MetricsRuntime {
    fn drop(&mut self) {
        self.periodic.abort();
    }
}

/// Builds the reporters of `config` plus `extra`; `None` when there are none, so that a
/// server without metrics pays nothing for them.
pub(crate) async fn start(
    server_type: &str,
    config: &PitayaConfig,
    extra: Vec<Arc<dyn Reporter>>,
) -> Result<Option<MetricsRuntimeParts>, Error> {
    let m = &config.metrics;
    let mut reporters = Reporters::new();
    let mut server = None;
    let mut prometheus_addr = None;
    if m.prometheus.enabled {
        let prom = pitaya_metrics::PrometheusReporter::new(server_type, m)
            .map_err(|e| Error::unknown(format!("metrics: {e}")))?;
        let addr = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, m.prometheus.port));
        let s = prom.serve(addr).await.map_err(|e| Error::unknown(format!("metrics: {e}")))?;
        prometheus_addr = Some(s.local_addr());
        server = Some(s);
        reporters.push(Arc::new(prom));
    }
    if m.statsd.enabled {
        let statsd = pitaya_metrics::StatsdReporter::new(server_type, m)
            .map_err(|e| Error::unknown(format!("metrics: {e}")))?;
        reporters.push(Arc::new(statsd));
    }
    for r in extra {
        reporters.push(r);
    }
    if reporters.is_empty() {
        return Ok(None);
    }
    let reporter: Arc<dyn Reporter> = Arc::new(reporters);
    Ok(Some(MetricsRuntimeParts { reporter, prometheus_addr, server }))
}

/// What [`start`] built, before the periodic reporting is attached.
pub(crate) struct MetricsRuntimeParts {
    pub(crate) reporter: Arc<dyn Reporter>,
    prometheus_addr: Option<SocketAddr>,
    server: Option<pitaya_metrics::MetricsServer>,
}

impl MetricsRuntimeParts {
    /// Starts the gauges reported every `period`: runtime, connected clients, the
    /// handler pool and the connections' queues, packets refused by rate limiting, gRPC
    /// pushes by uid that found no binding (`push_no_binding`, feature `grpc`) and,
    /// in cluster mode, the RPC server's queue and pool, dropped messages and servers per
    /// type (which Go registers but never reports).
    pub(crate) fn run(
        self,
        period: Duration,
        agents: Arc<AgentShared>,
        #[cfg(feature = "cluster")] cluster: Option<Arc<ClusterRuntime>>,
    ) -> MetricsRuntime {
        let runtime = pitaya_metrics::spawn_runtime_reporter(self.reporter.clone(), period);
        let reporter = self.reporter.clone();
        let periodic = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period.max(Duration::from_millis(10)));
            let mut rate_limited = pitaya_acceptor::exceeded_rate_limiting_total();
            #[cfg(feature = "grpc")]
            let mut unbound_pushes = PushNoBinding::default();
            loop {
                tick.tick().await;
                report_agents(reporter.as_ref(), &agents);
                // A counter: what was refused since the last tick. The total is
                // process-wide, like Go's package-level reporters.
                let total = pitaya_acceptor::exceeded_rate_limiting_total();
                let refused = total.saturating_sub(rate_limited) as f64;
                rate_limited = total;
                gauge(
                    reporter.as_ref(),
                    MetricKind::Counter,
                    names::EXCEEDED_RATE_LIMITING,
                    &[],
                    refused,
                );
                #[cfg(feature = "grpc")]
                unbound_pushes.report(reporter.as_ref());
                #[cfg(feature = "cluster")]
                if let Some(runtime) = &cluster {
                    report_cluster(reporter.as_ref(), runtime);
                }
            }
        });
        MetricsRuntime {
            prometheus_addr: self.prometheus_addr,
            _server: self.server,
            _runtime: runtime,
            periodic,
        }
    }
}

/// Connected clients, the handler pool, and the fullest connection's queues: Go's
/// channels are shared, ours are per connection, so the gauge shows the smallest free
/// room of any connection, which is what a "queue about to fill" alert wants.
fn report_agents(reporter: &dyn Reporter, agents: &AgentShared) {
    let pool = agents.pool();
    gauge(reporter, MetricKind::Gauge, names::CONNECTED_CLIENTS, &[], pool.count() as f64);
    let (busy, total) = agents.handler_slots();
    let dispatch_pool = [(label::POOL, names::pool::HANDLER_DISPATCH)];
    gauge(
        reporter,
        MetricKind::Gauge,
        names::WORKER_POOL_BUSY_WORKERS,
        &dispatch_pool,
        busy as f64,
    );
    gauge(
        reporter,
        MetricKind::Gauge,
        names::WORKER_POOL_TOTAL_WORKERS,
        &dispatch_pool,
        total as f64,
    );
    let mut least: Option<QueueFree> = None;
    for session in pool.sessions() {
        if let Some(q) = session.queue_free() {
            least = Some(match least {
                None => q,
                Some(l) => QueueFree {
                    outgoing: l.outgoing.min(q.outgoing),
                    dispatch: l.dispatch.min(q.dispatch),
                },
            });
        }
    }
    if let Some(q) = least {
        let channel = |c| [(label::CHANNEL, c)];
        let send = channel(names::channel::AGENT_CHSEND);
        gauge(reporter, MetricKind::Gauge, names::CHANNEL_CAPACITY, &send, q.outgoing as f64);
        let local = channel(names::channel::HANDLER_CHLOCALPROCESS);
        gauge(reporter, MetricKind::Gauge, names::CHANNEL_CAPACITY, &local, q.dispatch as f64);
    }
}

#[cfg(feature = "cluster")]
fn report_cluster(reporter: &dyn Reporter, runtime: &ClusterRuntime) {
    let dropped = runtime.rpc_server().dropped_messages() as f64;
    gauge(reporter, MetricKind::Gauge, names::DROPPED_MESSAGES, &[], dropped);
    let load = runtime.rpc_server().load();
    if let Some(free) = load.request_queue_free {
        let l = [(label::CHANNEL, names::channel::RPC_SERVER_SUBCHAN)];
        gauge(reporter, MetricKind::Gauge, names::CHANNEL_CAPACITY, &l, free as f64);
    }
    if let Some((busy, total)) = load.workers {
        let l = [(label::POOL, names::pool::RPC_SERVER_REMOTE)];
        gauge(reporter, MetricKind::Gauge, names::WORKER_POOL_BUSY_WORKERS, &l, busy as f64);
        gauge(reporter, MetricKind::Gauge, names::WORKER_POOL_TOTAL_WORKERS, &l, total as f64);
    }
    let mut per_type = std::collections::BTreeMap::<String, usize>::new();
    for s in runtime.discovery().servers() {
        *per_type.entry(s.server_type.clone()).or_default() += 1;
    }
    for (t, n) in per_type {
        let l = [(label::TYPE, t.as_str())];
        gauge(reporter, MetricKind::Gauge, names::COUNT_SERVERS, &l, n as f64);
    }
}

/// `push_no_binding` per route: the pushes by uid the gRPC client did not send for lack
/// of a binding since the last tick (process-wide totals, as `exceeded_rate_limiting`).
#[cfg(feature = "grpc")]
#[derive(Default)]
struct PushNoBinding(std::collections::HashMap<String, u64>);

#[cfg(feature = "grpc")]
impl PushNoBinding {
    fn report(&mut self, reporter: &dyn Reporter) {
        for (route, total) in pitaya_grpc::pushes_without_binding() {
            let last = self.0.get(&route).copied().unwrap_or(0);
            if total > last {
                let labels = [(label::ROUTE, route.as_str())];
                let added = (total - last) as f64;
                gauge(reporter, MetricKind::Counter, names::PUSH_NO_BINDING, &labels, added);
            }
            self.0.insert(route, total);
        }
    }
}

fn gauge(
    reporter: &dyn Reporter,
    kind: MetricKind,
    metric: &str,
    labels: &[(&str, &str)],
    value: f64,
) {
    log(reporter.report(kind, metric, labels, value));
}

pub(crate) fn log(r: Result<(), pitaya_metrics::MetricsError>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "metric not reported");
    }
}

/// The labels of a `response_time_ns` series (spec §11.2: `type` is `handler` for a
/// client response, `rpc` for an RPC round trip; `code` is empty on success). Also used by
/// the dispatcher's cached series, so both name the same series.
pub(crate) fn response_labels<'a>(
    route: &'a str,
    kind: &'a str,
    result: Result<(), &'a Error>,
) -> [(&'static str, &'a str); 4] {
    let code = result.err().map_or("", Error::code);
    let status = if result.is_ok() { names::status::OK } else { names::status::FAILED };
    [(label::ROUTE, route), (label::STATUS, status), (label::TYPE, kind), (label::CODE, code)]
}

/// The labels of a `handler_delay_ns` series; `kind` is `local` or `remote`.
pub(crate) fn delay_labels<'a>(route: &'a str, kind: &'a str) -> [(&'static str, &'a str); 2] {
    [(label::ROUTE, route), (label::TYPE, kind)]
}

/// Reports `response_time_ns` for `route` (labels: [`response_labels`]).
pub(crate) fn report_response(
    reporter: &dyn Reporter,
    route: &str,
    kind: &str,
    took: Duration,
    result: Result<(), &Error>,
) {
    let labels = response_labels(route, kind, result);
    let ns = pitaya_metrics::nanos(took);
    log(reporter.report(MetricKind::Summary, names::RESPONSE_TIME, &labels, ns));
}

/// Reports `handler_delay_ns` for `route`: how long a client message waited between
/// being read and being handled (`local`) or forwarded (`remote`).
pub(crate) fn report_delay(reporter: &dyn Reporter, route: &str, kind: &str, waited: Duration) {
    let labels = delay_labels(route, kind);
    let ns = pitaya_metrics::nanos(waited);
    log(reporter.report(MetricKind::Summary, names::PROCESS_DELAY, &labels, ns));
}
