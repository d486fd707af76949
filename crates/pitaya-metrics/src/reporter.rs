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

    /// This reporter's own handle on the series of `metric` (of `kind`) with `labels`,
    /// resolved once so that repeated reports skip the name and label look-ups; same
    /// errors as [`Reporter::report`], checked now. Resolving may create the series (a
    /// Prometheus series is exported from then on, as after a first report).
    ///
    /// `Ok(None)`, the default, means the reporter has no faster path than `report`;
    /// callers go through [`recorder`], which then reports with owned copies of the labels.
    fn recorder(
        &self,
        kind: MetricKind,
        metric: &str,
        labels: &[(&str, &str)],
    ) -> Result<Option<Arc<dyn Recorder>>, MetricsError> {
        let _ = (kind, metric, labels);
        Ok(None)
    }
}

/// One series of one metric, resolved by [`recorder`]: the hot-path handle for a caller
/// that reports to the same series again and again (the server keeps one per handler
/// route).
pub trait Recorder: Send + Sync {
    /// Reports `value` as [`Reporter::report`] would to the series: observes it (summary,
    /// histogram), adds it (counter) or sets it (gauge). Does not block on I/O and never
    /// panics; a negative or non-finite count is [`MetricsError::InvalidCount`].
    fn record(&self, value: f64) -> Result<(), MetricsError>;
}

/// A [`Recorder`] for `reporter`'s series of `metric` with `labels`: the reporter's own
/// (see [`Reporter::recorder`]) or, when it has none, one that calls [`Reporter::report`]
/// with owned copies of `labels`.
///
/// # Errors
/// Those of [`Reporter::recorder`]: an unknown metric or a wrong label set.
pub fn recorder(
    reporter: &Arc<dyn Reporter>,
    kind: MetricKind,
    metric: &str,
    labels: &[(&str, &str)],
) -> Result<Arc<dyn Recorder>, MetricsError> {
    if let Some(own) = reporter.recorder(kind, metric, labels)? {
        return Ok(own);
    }
    Ok(Arc::new(Fallback {
        reporter: reporter.clone(),
        kind,
        metric: metric.to_owned(),
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    }))
}

/// The recorder of a reporter without its own: a report per record.
struct Fallback {
    reporter: Arc<dyn Reporter>,
    kind: MetricKind,
    metric: String,
    labels: Vec<(String, String)>,
}

impl Recorder for Fallback {
    fn record(&self, value: f64) -> Result<(), MetricsError> {
        // Not a hot path: reporters without their own recorders (statsd) build a datagram
        // per report anyway.
        let labels: Vec<(&str, &str)> =
            self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.reporter.report(self.kind, &self.metric, &labels, value)
    }
}

/// The recorders of each reporter of a [`Reporters`], in order.
struct FanOut(Vec<Arc<dyn Recorder>>);

impl Recorder for FanOut {
    fn record(&self, value: f64) -> Result<(), MetricsError> {
        call_all(&self.0, |r| r.record(value))
    }
}

/// Calls `f` on every item, in order, even after one fails; returns the first error.
fn call_all<T>(
    items: &[T],
    f: impl Fn(&T) -> Result<(), MetricsError>,
) -> Result<(), MetricsError> {
    let mut first = Ok(());
    for item in items {
        if let Err(e) = f(item) {
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
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
        call_all(&self.inner, |r| f(r.as_ref()))
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

    fn recorder(
        &self,
        kind: MetricKind,
        metric: &str,
        labels: &[(&str, &str)],
    ) -> Result<Option<Arc<dyn Recorder>>, MetricsError> {
        let mut each = self
            .inner
            .iter()
            .map(|r| recorder(r, kind, metric, labels))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(if each.len() == 1 { each.remove(0) } else { Arc::new(FanOut(each)) }))
    }
}

/// Borrowed pairs of a [`Labels`] map, for reporters whose core takes pairs.
pub(crate) fn pairs(labels: &Labels) -> Vec<(&str, &str)> {
    labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `d` in nanoseconds as the value of a `*_ns` metric; exact below 2^53 ns (104 days).
/// Cheaper than `d.as_nanos() as f64`, whose 128-bit conversion is a library call.
pub fn nanos(d: std::time::Duration) -> f64 {
    d.as_secs() as f64 * 1e9 + f64::from(d.subsec_nanos())
}

/// Builds a [`Labels`] map from pairs: `labels([("route", "room.join")])`.
pub fn labels<const N: usize>(pairs: [(&str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}
