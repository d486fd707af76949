//! Metrics wiring: the reporters `pitaya.metrics.*` asks for, the periodic gauges, and
//! response-time reporting (spec §11).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pitaya_config::PitayaConfig;
use pitaya_core::Error;
use pitaya_metrics::{Labels, Reporter, Reporters, names};
use pitaya_session::SessionPool;

use crate::cluster::ClusterCore;

/// The running metrics of a server; dropping it stops serving and reporting.
pub(crate) struct MetricsRuntime {
    pub(crate) reporter: Arc<dyn Reporter>,
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
    /// Starts the gauges reported every `period`: runtime, connected clients and, in
    /// cluster mode, servers per type (which Go registers but never reports).
    pub(crate) fn run(
        self,
        period: Duration,
        pool: SessionPool,
        cluster: Option<Arc<ClusterCore>>,
    ) -> MetricsRuntime {
        let runtime = pitaya_metrics::spawn_runtime_reporter(self.reporter.clone(), period);
        let reporter = self.reporter.clone();
        let periodic = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period.max(Duration::from_millis(10)));
            loop {
                tick.tick().await;
                let no_labels = Labels::new();
                log(reporter.report_gauge(
                    names::CONNECTED_CLIENTS,
                    &no_labels,
                    pool.count() as f64,
                ));
                if let Some(core) = &cluster {
                    let dropped = core.rpc_server.dropped_messages() as f64;
                    log(reporter.report_gauge(names::DROPPED_MESSAGES, &no_labels, dropped));
                    let mut per_type = std::collections::BTreeMap::<String, usize>::new();
                    for s in core.discovery.servers() {
                        *per_type.entry(s.server_type.clone()).or_default() += 1;
                    }
                    for (t, n) in per_type {
                        let labels = pitaya_metrics::labels([("type", t.as_str())]);
                        log(reporter.report_gauge(names::COUNT_SERVERS, &labels, n as f64));
                    }
                }
            }
        });
        MetricsRuntime {
            reporter: self.reporter,
            prometheus_addr: self.prometheus_addr,
            _server: self.server,
            _runtime: runtime,
            periodic,
        }
    }
}

fn log(r: Result<(), pitaya_metrics::MetricsError>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "metric not reported");
    }
}

/// Reports `response_time_ns` for `route` (spec §11.2: `type` is `handler` for a client
/// response, `rpc` for an RPC round trip; `code` is empty on success).
pub(crate) fn report_response(
    reporter: &dyn Reporter,
    route: &str,
    kind: &str,
    started: Instant,
    result: Result<(), &Error>,
) {
    let code = result.err().map_or("", Error::code);
    let status = if result.is_ok() { "ok" } else { "failed" };
    let labels = pitaya_metrics::labels([
        ("route", route),
        ("status", status),
        ("type", kind),
        ("code", code),
    ]);
    let ns = started.elapsed().as_nanos() as f64;
    log(reporter.report_summary(names::RESPONSE_TIME, &labels, ns));
}
