//! [`MetricsError`]: what reporting, registering and serving metrics can fail with.

use crate::MetricKind;

/// Errors of this crate. Reporting never panics: every misuse is one of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// No metric of this kind has this name (Go's `constants.ErrMetricNotKnown`).
    #[error("metric not known: {kind} {name:?}")]
    UnknownMetric {
        /// The kind the caller reported as.
        kind: MetricKind,
        /// The metric name the caller used (Go's short name, e.g. `response_time_ns`).
        name: String,
    },
    /// The call's labels, after additional labels got their defaults, are not the metric's.
    #[error("wrong labels for metric {name:?}: expected {expected:?}, got {got:?}")]
    WrongLabels {
        /// The metric name.
        name: String,
        /// Label names the metric declares (sorted), additional labels included.
        expected: Vec<String>,
        /// Label names the call gave (sorted), defaults of additional labels included.
        got: Vec<String>,
    },
    /// A counter was given a negative or non-finite increment (Go's client panics).
    #[error("counter {name:?} cannot be increased by {value}")]
    InvalidCount {
        /// The metric name.
        name: String,
        /// The rejected increment.
        value: f64,
    },
    /// A metric definition (custom metrics from configuration, const or additional labels)
    /// is unusable.
    #[error("invalid metric definition {name:?}: {reason}")]
    InvalidDefinition {
        /// The metric's full name, or the label in question.
        name: String,
        /// Why, in lower case.
        reason: String,
    },
    /// Binding the `/metrics` listener, or opening or addressing the statsd socket, failed.
    #[error("metrics i/o: {0}")]
    Io(#[from] std::io::Error),
}
