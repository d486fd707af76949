//! `pitaya.metrics.*`: reporters, labels and app-defined metrics (spec §11).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// `pitaya.metrics.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// `period` (15s): how often gauges such as connected clients are reported (spec §11.5).
    #[serde(with = "crate::serde_go_duration")]
    pub period: Duration,
    /// `game` (""): value of the `game` label.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub game: String,
    /// `constLabels` (empty): labels with fixed values added to every metric.
    // Go's docs say `pitaya.metrics.constTags`; the code reads `constLabels`.
    #[serde(
        rename = "constLabels",
        alias = "constlabels",
        deserialize_with = "crate::lenient::string_map"
    )]
    pub const_labels: BTreeMap<String, String>,
    /// `additionalLabels` (empty): label names whose values come from each request's
    /// `metric-tags` context key.
    // Go's docs say `pitaya.metrics.prometheus.additionalTags`; the code reads this key.
    #[serde(
        rename = "additionalLabels",
        alias = "additionallabels",
        deserialize_with = "crate::lenient::string_map"
    )]
    pub additional_labels: BTreeMap<String, String>,
    /// `pitaya.metrics.custom.*`
    pub custom: CustomMetricsConfig,
    /// `pitaya.metrics.prometheus.*`
    pub prometheus: PrometheusConfig,
    /// `pitaya.metrics.statsd.*`
    pub statsd: StatsdConfig,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            period: Duration::from_secs(15),
            game: String::new(),
            const_labels: BTreeMap::new(),
            additional_labels: BTreeMap::new(),
            custom: CustomMetricsConfig::default(),
            prometheus: PrometheusConfig::default(),
            statsd: StatsdConfig::default(),
        }
    }
}

/// `pitaya.metrics.prometheus.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PrometheusConfig {
    /// `enabled` (false)
    pub enabled: bool,
    /// `port` (9090): where `/metrics` is served.
    pub port: u16,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        Self { enabled: false, port: 9090 }
    }
}

/// `pitaya.metrics.statsd.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct StatsdConfig {
    /// `enabled` (false)
    pub enabled: bool,
    /// `host` ("localhost:9125")
    #[serde(deserialize_with = "crate::lenient::string")]
    pub host: String,
    /// `prefix` ("pitaya.")
    #[serde(deserialize_with = "crate::lenient::string")]
    pub prefix: String,
    /// `rate` (1.0): sample rate.
    pub rate: f64,
}

impl Default for StatsdConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: "localhost:9125".to_owned(),
            prefix: "pitaya.".to_owned(),
            rate: 1.0,
        }
    }
}

/// `pitaya.metrics.custom.*`: metrics the app declares in configuration.
///
/// Go registers summaries, gauges and counters; it reads `histograms` but never registers them
/// (and does not document the key).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct CustomMetricsConfig {
    /// `summaries`
    pub summaries: Vec<SummarySpec>,
    /// `histograms`
    pub histograms: Vec<HistogramSpec>,
    /// `gauges`
    pub gauges: Vec<MetricSpec>,
    /// `counters`
    pub counters: Vec<MetricSpec>,
}

/// One custom gauge or counter.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MetricSpec {
    /// `subsystem`: the middle part of the metric name.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub subsystem: String,
    /// `name`
    #[serde(deserialize_with = "crate::lenient::string")]
    pub name: String,
    /// `help`
    #[serde(deserialize_with = "crate::lenient::string")]
    pub help: String,
    /// `labels`: label names; a comma-separated string is split.
    #[serde(deserialize_with = "crate::lenient::string_list")]
    pub labels: Vec<String>,
}

/// One custom summary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SummarySpec {
    /// `subsystem`
    #[serde(deserialize_with = "crate::lenient::string")]
    pub subsystem: String,
    /// `name`
    #[serde(deserialize_with = "crate::lenient::string")]
    pub name: String,
    /// `help`
    #[serde(deserialize_with = "crate::lenient::string")]
    pub help: String,
    /// `labels`
    #[serde(deserialize_with = "crate::lenient::string_list")]
    pub labels: Vec<String>,
    /// `objectives`: a map of quantile to allowed error, e.g. `{ "0.9" = 0.01 }`.
    #[serde(serialize_with = "write_objectives", deserialize_with = "read_objectives")]
    pub objectives: Vec<Objective>,
}

/// One custom histogram.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HistogramSpec {
    /// `subsystem`
    #[serde(deserialize_with = "crate::lenient::string")]
    pub subsystem: String,
    /// `name`
    #[serde(deserialize_with = "crate::lenient::string")]
    pub name: String,
    /// `help`
    #[serde(deserialize_with = "crate::lenient::string")]
    pub help: String,
    /// `labels`
    #[serde(deserialize_with = "crate::lenient::string_list")]
    pub labels: Vec<String>,
    /// `buckets`: upper bounds of the buckets.
    pub buckets: Vec<f64>,
}

/// A summary quantile and its allowed absolute error (Go: `map[float64]float64`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Objective {
    /// The quantile, in `[0, 1]`.
    pub quantile: f64,
    /// The allowed error.
    pub error: f64,
}

impl Objective {
    /// An objective for `quantile` with allowed `error`.
    pub fn new(quantile: f64, error: f64) -> Self {
        Self { quantile, error }
    }
}

/// Writes objectives as Go writes its map: quantile keys as text.
fn write_objectives<S: Serializer>(objectives: &[Objective], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(objectives.len()))?;
    for o in objectives {
        map.serialize_entry(&o.quantile.to_string(), &o.error)?;
    }
    map.end()
}

/// Reads `{quantile: error}`; keys are text in TOML and JSON, so they are parsed here.
/// The result is sorted by quantile.
fn read_objectives<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Objective>, D::Error> {
    struct ObjectivesVisitor;

    impl<'de> Visitor<'de> for ObjectivesVisitor {
        type Value = Vec<Objective>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of quantile to allowed error")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((key, error)) = map.next_entry::<String, f64>()? {
                let quantile: f64 = key.trim().parse().map_err(|_| {
                    de::Error::invalid_value(
                        de::Unexpected::Str(&key),
                        &"a quantile such as \"0.9\"",
                    )
                })?;
                out.push(Objective { quantile, error });
            }
            out.sort_by(|a, b| a.quantile.total_cmp(&b.quantile));
            Ok(out)
        }
    }

    d.deserialize_map(ObjectivesVisitor)
}
