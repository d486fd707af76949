//! [`Reporter`], Go's `metrics.Reporter`, and [`Reporters`], the fan-out to several of them.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{MetricKind, MetricsError};

/// Label name → value of one report. Sorted, so statsd tags come out in a stable order.
pub type Labels = BTreeMap<String, String>;

/// Go's `metrics.Reporter`: reports one value of a metric named by its short name
/// (see [`crate::names`]) with a label map.
///
/// Contract for every method: it does not block on I/O, it never panics, and it returns
/// [`MetricsError::UnknownMetric`] for a name the reporter does not know as that kind and
/// [`MetricsError::WrongLabels`] when the labels (after additional labels got their
/// defaults) are not exactly the metric's. A schemaless reporter (statsd) accepts any name
/// and labels, as Go's does.
pub trait Reporter: Send + Sync {
    /// Observes `value` in a summary (Go: `ReportSummary`).
    fn report_summary(&self, metric: &str, labels: &Labels, value: f64)
    -> Result<(), MetricsError>;
    /// Observes `value` in a histogram (Go: `ReportHistogram`).
    fn report_histogram(
        &self,
        metric: &str,
        labels: &Labels,
        value: f64,
    ) -> Result<(), MetricsError>;
    /// Adds `count` to a counter (Go: `ReportCount`). A negative or non-finite `count` is
    /// [`MetricsError::InvalidCount`].
    fn report_count(&self, metric: &str, labels: &Labels, count: f64) -> Result<(), MetricsError>;
    /// Sets a gauge to `value` (Go: `ReportGauge`).
    fn report_gauge(&self, metric: &str, labels: &Labels, value: f64) -> Result<(), MetricsError>;

    /// Reports `value` to the metric of `kind` with borrowed label pairs, in any order,
    /// each name at most once; same contract as the method of that kind.
    ///
    /// This is the hot-path entry: the server reports every response through it. The
    /// default builds a [`Labels`] map and calls the kind's method; the built-in reporters
    /// override it so that a report to an existing series allocates nothing.
    fn report(
        &self,
        kind: MetricKind,
        metric: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), MetricsError> {
        let labels: Labels =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        match kind {
            MetricKind::Summary => self.report_summary(metric, &labels, value),
            MetricKind::Histogram => self.report_histogram(metric, &labels, value),
            MetricKind::Counter => self.report_count(metric, &labels, value),
            MetricKind::Gauge => self.report_gauge(metric, &labels, value),
        }
    }
}

/// Several reporters behind one [`Reporter`], e.g. Prometheus and statsd at once.
///
/// Each call goes to every reporter, in order, even when one fails; the first error is
/// returned. With no reporters every call succeeds and does nothing.
#[derive(Clone, Default)]
pub struct Reporters {
    inner: Vec<Arc<dyn Reporter>>,
}

impl Reporters {
    /// An empty fan-out.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a reporter; calls reach reporters in the order they were added.
    pub fn push(&mut self, reporter: Arc<dyn Reporter>) {
        self.inner.push(reporter);
    }

    /// Adds a reporter, builder style.
    #[must_use]
    pub fn with(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.push(reporter);
        self
    }

    /// How many reporters there are.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether there are none (metrics disabled).
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    fn each(
        &self,
        f: impl Fn(&dyn Reporter) -> Result<(), MetricsError>,
    ) -> Result<(), MetricsError> {
        let mut first = Ok(());
        for r in &self.inner {
            if let Err(e) = f(r.as_ref()) {
                if first.is_ok() {
                    first = Err(e);
                }
            }
        }
        first
    }
}

impl std::fmt::Debug for Reporters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporters").field("len", &self.inner.len()).finish()
    }
}

impl Reporter for Reporters {
    fn report_summary(
        &self,
        metric: &str,
        labels: &Labels,
        value: f64,
    ) -> Result<(), MetricsError> {
        self.each(|r| r.report_summary(metric, labels, value))
    }

    fn report_histogram(
        &self,
        metric: &str,
        labels: &Labels,
        value: f64,
    ) -> Result<(), MetricsError> {
        self.each(|r| r.report_histogram(metric, labels, value))
    }

    fn report_count(&self, metric: &str, labels: &Labels, count: f64) -> Result<(), MetricsError> {
        self.each(|r| r.report_count(metric, labels, count))
    }

    fn report_gauge(&self, metric: &str, labels: &Labels, value: f64) -> Result<(), MetricsError> {
        self.each(|r| r.report_gauge(metric, labels, value))
    }

    fn report(
        &self,
        kind: MetricKind,
        metric: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), MetricsError> {
        self.each(|r| r.report(kind, metric, labels, value))
    }
}

/// Borrowed pairs of a [`Labels`] map, for reporters whose core takes pairs.
pub(crate) fn pairs(labels: &Labels) -> Vec<(&str, &str)> {
    labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Builds a [`Labels`] map from pairs: `labels([("route", "room.join")])`.
pub fn labels<const N: usize>(pairs: [(&str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}
