//! Metric definitions: Go Pitaya's built-in metrics (spec §11.1) and custom ones from
//! `pitaya.metrics.custom`, with their validation.

use std::fmt;

use pitaya_config::model::CustomMetricsConfig;

use crate::MetricsError;
use crate::names::{self, label};

/// The four operations of Go's `metrics.Reporter`, and the Prometheus type each reports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MetricKind {
    /// A summary: observations with quantiles, sum and count.
    Summary,
    /// A histogram: observations counted into buckets.
    Histogram,
    /// A counter: only increases.
    Counter,
    /// A gauge: set to a value.
    Gauge,
}

impl MetricKind {
    /// The Prometheus `# TYPE` word.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::Summary => "summary",
            Self::Histogram => "histogram",
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// Objectives of Go's built-in summaries: quantile → allowed error.
pub const DEFAULT_OBJECTIVES: [(f64, f64); 3] = [(0.7, 0.02), (0.95, 0.005), (0.99, 0.001)];

/// One metric as registered: Go's `*Opts` plus variable label names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MetricDef {
    pub(crate) kind: MetricKind,
    pub(crate) subsystem: String,
    pub(crate) name: String,
    pub(crate) help: String,
    /// Variable labels, without the additional ones.
    pub(crate) labels: Vec<String>,
    /// Summary objectives, sorted by quantile.
    pub(crate) objectives: Vec<(f64, f64)>,
    /// Histogram upper bounds, strictly increasing, without `+Inf`.
    pub(crate) buckets: Vec<f64>,
}

impl MetricDef {
    fn new(kind: MetricKind, subsystem: &str, name: &str, help: &str, labels: &[&str]) -> Self {
        Self {
            kind,
            subsystem: subsystem.to_owned(),
            name: name.to_owned(),
            help: help.to_owned(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            objectives: if kind == MetricKind::Summary {
                DEFAULT_OBJECTIVES.to_vec()
            } else {
                Vec::new()
            },
            buckets: Vec::new(),
        }
    }

    /// `pitaya_<subsystem>_<name>`, leaving out an empty subsystem like Go's `BuildFQName`.
    pub(crate) fn full_name(&self) -> String {
        if self.subsystem.is_empty() {
            format!("pitaya_{}", self.name)
        } else {
            format!("pitaya_{}_{}", self.subsystem, self.name)
        }
    }
}

/// The built-in metrics with Go's subsystems, help texts and labels.
pub(crate) fn builtin() -> Vec<MetricDef> {
    use MetricKind::{Counter, Gauge, Summary};
    vec![
        MetricDef::new(
            Summary,
            "handler",
            names::RESPONSE_TIME,
            "the time to process a msg in nanoseconds",
            &[label::ROUTE, label::STATUS, label::TYPE, label::CODE],
        ),
        MetricDef::new(
            Summary,
            "handler",
            names::PROCESS_DELAY,
            "the delay to start processing a msg in nanoseconds",
            &[label::ROUTE, label::TYPE],
        ),
        MetricDef::new(
            Gauge,
            "acceptor",
            names::CONNECTED_CLIENTS,
            "the number of clients connected right now",
            &[],
        ),
        MetricDef::new(
            Gauge,
            "service_discovery",
            names::COUNT_SERVERS,
            "the number of discovered servers by service discovery",
            &[label::TYPE],
        ),
        // Go v3 also declares a `channel_capacity` histogram but never registers it; the gauge
        // (Go v2's type, same name and help) is what reaches dashboards.
        MetricDef::new(
            Gauge,
            "channel",
            names::CHANNEL_CAPACITY,
            "the available capacity of the channel",
            &[label::CHANNEL],
        ),
        MetricDef::new(
            Gauge,
            "rpc_server",
            names::DROPPED_MESSAGES,
            "the number of rpc server dropped messages (messages that are not handled)",
            &[],
        ),
        MetricDef::new(
            Gauge,
            "worker_pool",
            names::WORKER_POOL_BUSY_WORKERS,
            "the number of workers of a goroutine pool currently processing a message",
            &[label::POOL],
        ),
        MetricDef::new(
            Gauge,
            "worker_pool",
            names::WORKER_POOL_TOTAL_WORKERS,
            "the total number of workers of a goroutine pool",
            &[label::POOL],
        ),
        MetricDef::new(Gauge, "sys", names::GOROUTINES, "the current number of goroutines", &[]),
        MetricDef::new(Gauge, "sys", names::HEAP_SIZE, "the current heap size", &[]),
        MetricDef::new(
            Gauge,
            "sys",
            names::HEAP_OBJECTS,
            "the current number of allocated heap objects",
            &[],
        ),
        MetricDef::new(
            Gauge,
            "worker",
            names::WORKER_JOBS_RETRY,
            "the current number of job retries",
            &[],
        ),
        MetricDef::new(
            Gauge,
            "worker",
            names::WORKER_QUEUE_SIZE,
            "the current queue size",
            &[label::QUEUE],
        ),
        MetricDef::new(
            Gauge,
            "worker",
            names::WORKER_JOBS_TOTAL,
            "the total executed jobs",
            &[label::STATUS],
        ),
        MetricDef::new(
            Counter,
            "acceptor",
            names::EXCEEDED_RATE_LIMITING,
            "the number of blocked requests by exceeded rate limiting",
            &[],
        ),
        MetricDef::new(
            Counter,
            "rpc_client",
            names::PUSH_NO_BINDING,
            "the number of pushes not sent because the user has no binding",
            &[label::ROUTE],
        ),
    ]
}

/// The custom metrics of `pitaya.metrics.custom`, validated one by one. Histograms are
/// registered too (Go reads but never registers them).
///
/// # Errors
/// [`MetricsError::InvalidDefinition`] for an empty or malformed name or subsystem, a bad
/// label name, objectives outside `[0, 1]`, repeated quantiles, or empty, non-finite or
/// unsorted buckets. Duplicates across metrics are checked by the registry.
pub(crate) fn custom(config: &CustomMetricsConfig) -> Result<Vec<MetricDef>, MetricsError> {
    let mut out = Vec::new();
    for s in &config.summaries {
        let mut objectives: Vec<(f64, f64)> =
            s.objectives.iter().map(|o| (o.quantile, o.error)).collect();
        objectives.sort_by(|a, b| a.0.total_cmp(&b.0));
        out.push(MetricDef {
            kind: MetricKind::Summary,
            subsystem: s.subsystem.clone(),
            name: s.name.clone(),
            help: s.help.clone(),
            labels: s.labels.clone(),
            objectives,
            buckets: Vec::new(),
        });
    }
    for h in &config.histograms {
        let mut buckets = h.buckets.clone();
        // Prometheus adds `+Inf` itself; a trailing one in configuration is redundant.
        if buckets.last() == Some(&f64::INFINITY) {
            buckets.pop();
        }
        out.push(MetricDef {
            kind: MetricKind::Histogram,
            subsystem: h.subsystem.clone(),
            name: h.name.clone(),
            help: h.help.clone(),
            labels: h.labels.clone(),
            objectives: Vec::new(),
            buckets,
        });
    }
    for (kind, specs) in
        [(MetricKind::Gauge, &config.gauges), (MetricKind::Counter, &config.counters)]
    {
        for g in specs {
            out.push(MetricDef {
                kind,
                subsystem: g.subsystem.clone(),
                name: g.name.clone(),
                help: g.help.clone(),
                labels: g.labels.clone(),
                objectives: Vec::new(),
                buckets: Vec::new(),
            });
        }
    }
    for def in &out {
        validate(def)?;
    }
    Ok(out)
}

/// Checks one definition on its own (names, labels, objectives, buckets).
pub(crate) fn validate(def: &MetricDef) -> Result<(), MetricsError> {
    let err = |reason: String| MetricsError::InvalidDefinition { name: def.full_name(), reason };
    if def.name.is_empty() {
        return Err(err(format!("{} has an empty name", def.kind)));
    }
    if !is_name(&def.name) {
        return Err(err(format!("name {:?} is not [a-zA-Z_][a-zA-Z0-9_]*", def.name)));
    }
    if !def.subsystem.is_empty() && !is_name(&def.subsystem) {
        return Err(err(format!("subsystem {:?} is not [a-zA-Z_][a-zA-Z0-9_]*", def.subsystem)));
    }
    for l in &def.labels {
        check_label_name(l).map_err(err)?;
        let reserved = match def.kind {
            MetricKind::Summary => "quantile",
            MetricKind::Histogram => "le",
            MetricKind::Counter | MetricKind::Gauge => "",
        };
        if l == reserved {
            return Err(err(format!("label {l:?} is reserved for {}", def.kind)));
        }
    }
    for (q, e) in &def.objectives {
        if !(0.0..=1.0).contains(q) {
            return Err(err(format!("objective quantile {q} is outside [0, 1]")));
        }
        if !(0.0..=1.0).contains(e) {
            return Err(err(format!("objective error {e} for quantile {q} is outside [0, 1]")));
        }
    }
    if def.objectives.windows(2).any(|w| matches!(w, [a, b] if a.0 == b.0)) {
        return Err(err("objective quantiles repeat".to_owned()));
    }
    if def.kind == MetricKind::Histogram {
        if def.buckets.is_empty() {
            return Err(err("histogram has no buckets".to_owned()));
        }
        if def.buckets.iter().any(|b| !b.is_finite()) {
            return Err(err("histogram buckets must be finite (+Inf is implied)".to_owned()));
        }
        if def.buckets.windows(2).any(|w| matches!(w, [a, b] if a >= b)) {
            return Err(err(format!(
                "histogram buckets {:?} are not strictly increasing",
                def.buckets
            )));
        }
    }
    Ok(())
}

/// Prometheus label-name rule; `__` is reserved for Prometheus itself.
pub(crate) fn check_label_name(l: &str) -> Result<(), String> {
    if !is_name(l) {
        return Err(format!("label {l:?} is not [a-zA-Z_][a-zA-Z0-9_]*"));
    }
    if l.starts_with("__") {
        return Err(format!("label {l:?} starts with the reserved \"__\""));
    }
    Ok(())
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
