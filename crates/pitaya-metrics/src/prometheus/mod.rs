//! [`PrometheusReporter`]: Go Pitaya's Prometheus series, served as text on `GET /metrics`.

mod registry;
mod server;
mod summary;
mod text;

use std::net::SocketAddr;
use std::sync::Arc;

use pitaya_config::model::MetricsConfig;

use crate::names::label;
use crate::reporter::pairs;
use crate::{Labels, MetricKind, MetricsError, Recorder, Reporter, spec};

pub use server::MetricsServer;

/// Reports into an in-process registry with Go Pitaya's names, types, help texts and
/// labels (spec §11.3), rendered in the Prometheus text format.
///
/// Every series carries the const labels `game` (`pitaya.metrics.game`) and `serverType`
/// plus `pitaya.metrics.constLabels`, and every metric has the additional labels
/// (`pitaya.metrics.additionalLabels`), filled with their default when a call omits them.
/// Registered: the built-in metrics of [`crate::names`] and the custom metrics of
/// `pitaya.metrics.custom`, histograms included (Go leaves those out).
///
/// Cheap to clone; clones share the registry. Reports take one short mutex per metric and
/// one per series; a report to an existing series through [`Reporter::report`] allocates
/// nothing, and a [`Recorder`] from [`Reporter::recorder`] takes only the series' lock.
#[derive(Debug, Clone)]
pub struct PrometheusReporter {
    registry: Arc<registry::Registry>,
}

impl PrometheusReporter {
    /// Registers the built-in and custom metrics for a server of type `server_type`.
    /// Does not listen: see [`Self::serve`].
    ///
    /// # Errors
    /// [`MetricsError::InvalidDefinition`] for a bad custom metric (empty or malformed name,
    /// duplicate of another metric, objectives outside `[0, 1]`, empty or unsorted
    /// buckets, reserved or repeated labels) or a bad const or additional label name.
    pub fn new(server_type: &str, config: &MetricsConfig) -> Result<Self, MetricsError> {
        let mut const_labels = config.const_labels.clone();
        // As in Go, `game` and `serverType` win over a const label of the same name.
        const_labels.insert(label::GAME.to_owned(), config.game.clone());
        const_labels.insert(label::SERVER_TYPE.to_owned(), server_type.to_owned());
        let mut defs = spec::custom(&config.custom)?;
        defs.extend(spec::builtin());
        let registry =
            registry::Registry::new(const_labels, config.additional_labels.clone(), defs)?;
        Ok(Self { registry: Arc::new(registry) })
    }

    /// The current exposition, as `GET /metrics` returns it.
    pub fn render(&self) -> String {
        self.registry.render()
    }

    /// Serves `GET /metrics` on `addr` (Go: `:<pitaya.metrics.prometheus.port>`; tests use
    /// `127.0.0.1:0`) until the returned [`MetricsServer`] is dropped. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// [`MetricsError::Io`] when the address cannot be bound.
    pub async fn serve(&self, addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
        server::MetricsServer::bind(addr, self.clone()).await
    }
}

impl Reporter for PrometheusReporter {
    fn report_summary(
        &self,
        metric: &str,
        labels: &Labels,
        value: f64,
    ) -> Result<(), MetricsError> {
        self.registry.report(MetricKind::Summary, metric, &pairs(labels), value)
    }

    fn report_histogram(
        &self,
        metric: &str,
        labels: &Labels,
        value: f64,
    ) -> Result<(), MetricsError> {
        self.registry.report(MetricKind::Histogram, metric, &pairs(labels), value)
    }

    fn report_count(&self, metric: &str, labels: &Labels, count: f64) -> Result<(), MetricsError> {
        self.registry.report(MetricKind::Counter, metric, &pairs(labels), count)
    }

    fn report_gauge(&self, metric: &str, labels: &Labels, value: f64) -> Result<(), MetricsError> {
        self.registry.report(MetricKind::Gauge, metric, &pairs(labels), value)
    }

    fn report(
        &self,
        kind: MetricKind,
        metric: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), MetricsError> {
        self.registry.report(kind, metric, labels, value)
    }

    fn recorder(
        &self,
        kind: MetricKind,
        metric: &str,
        labels: &[(&str, &str)],
    ) -> Result<Option<Arc<dyn Recorder>>, MetricsError> {
        let series: Arc<dyn Recorder> = self.registry.series(kind, metric, labels)?;
        Ok(Some(series))
    }
}
