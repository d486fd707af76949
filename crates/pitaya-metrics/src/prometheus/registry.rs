//! The registry behind [`super::PrometheusReporter`]: families, label checks, rendering.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::prometheus::summary::Summary;
use crate::prometheus::text::{escape_help, escape_label, go_float};
use crate::spec::{self, MetricDef};
use crate::{Labels, MetricKind, MetricsError};

/// All registered families, keyed by kind and short name as Go's reporter maps are.
#[derive(Debug)]
pub(crate) struct Registry {
    /// `game`, `serverType` and `pitaya.metrics.constLabels`.
    const_labels: BTreeMap<String, String>,
    /// Label → default value, on every metric.
    additional: BTreeMap<String, String>,
    families: HashMap<(MetricKind, String), Family>,
}

#[derive(Debug)]
struct Family {
    def: MetricDef,
    full_name: String,
    /// Variable label names (metric's plus additional), sorted.
    label_names: Vec<String>,
    /// Label values in `label_names` order → series.
    series: Mutex<BTreeMap<Vec<String>, Series>>,
}

#[derive(Debug)]
enum Series {
    Value(f64),
    Summary(Summary),
    Histogram { counts: Vec<u64>, sum: f64, count: u64 },
}

impl Registry {
    /// Registers `defs`; errors on bad label names, a label declared twice (between the
    /// metric's own, const and additional labels) and duplicate metrics.
    pub(crate) fn new(
        const_labels: BTreeMap<String, String>,
        additional: BTreeMap<String, String>,
        defs: Vec<MetricDef>,
    ) -> Result<Self, MetricsError> {
        for l in const_labels.keys().chain(additional.keys()) {
            spec::check_label_name(l)
                .map_err(|reason| MetricsError::InvalidDefinition { name: l.clone(), reason })?;
        }
        if let Some(l) = const_labels.keys().find(|l| additional.contains_key(*l)) {
            return Err(MetricsError::InvalidDefinition {
                name: l.clone(),
                reason: "label is both a const label and an additional label".to_owned(),
            });
        }
        let mut families = HashMap::new();
        let mut full_names = HashSet::new();
        for def in defs {
            spec::validate(&def)?;
            let full_name = def.full_name();
            let err = |reason: String| MetricsError::InvalidDefinition {
                name: full_name.clone(),
                reason,
            };
            let mut label_names: Vec<String> =
                def.labels.iter().chain(additional.keys()).cloned().collect();
            label_names.sort();
            if label_names.windows(2).any(|w| matches!(w, [a, b] if a == b)) {
                return Err(err(
                    "a label is declared twice (own labels and additional labels)".to_owned()
                ));
            }
            if let Some(l) = label_names.iter().find(|l| const_labels.contains_key(*l)) {
                return Err(err(format!("label {l:?} is also a const label")));
            }
            if !full_names.insert(full_name.clone()) {
                return Err(err("duplicate metric".to_owned()));
            }
            let key = (def.kind, def.name.clone());
            let family = Family {
                def,
                full_name: full_name.clone(),
                label_names,
                series: Mutex::new(BTreeMap::new()),
            };
            if families.insert(key, family).is_some() {
                return Err(err("duplicate metric".to_owned()));
            }
        }
        Ok(Self { const_labels, additional, families })
    }

    /// Records one report.
    pub(crate) fn report(
        &self,
        kind: MetricKind,
        name: &str,
        labels: &Labels,
        value: f64,
    ) -> Result<(), MetricsError> {
        let family = self
            .families
            .get(&(kind, name.to_owned()))
            .ok_or_else(|| MetricsError::UnknownMetric { kind, name: name.to_owned() })?;
        let values = self.label_values(family, labels)?;
        if kind == MetricKind::Counter && !(value >= 0.0 && value.is_finite()) {
            return Err(MetricsError::InvalidCount { name: name.to_owned(), value });
        }
        let mut series = lock(&family.series);
        let entry = series.entry(values).or_insert_with(|| match kind {
            MetricKind::Summary => Series::Summary(Summary::default()),
            MetricKind::Histogram => {
                Series::Histogram { counts: vec![0; family.def.buckets.len()], sum: 0.0, count: 0 }
            }
            MetricKind::Counter | MetricKind::Gauge => Series::Value(0.0),
        });
        match entry {
            Series::Value(v) if kind == MetricKind::Counter => *v += value,
            Series::Value(v) => *v = value,
            Series::Summary(s) => s.observe(Instant::now(), value),
            Series::Histogram { counts, sum, count } => {
                // Buckets are cumulative when rendered; here each observation lands in the
                // first bucket whose bound holds it (none: only `+Inf`).
                if let Some(i) = family.def.buckets.iter().position(|b| value <= *b) {
                    if let Some(c) = counts.get_mut(i) {
                        *c += 1;
                    }
                }
                *sum += value;
                *count += 1;
            }
        }
        Ok(())
    }

    /// The call's values in `label_names` order, additional labels defaulted (Go's
    /// `ensureLabels`), or [`MetricsError::WrongLabels`].
    fn label_values(&self, family: &Family, labels: &Labels) -> Result<Vec<String>, MetricsError> {
        let mut values = Vec::with_capacity(family.label_names.len());
        let mut ok = labels.len() <= family.label_names.len();
        for l in &family.label_names {
            match labels.get(l).or_else(|| self.additional.get(l)) {
                Some(v) => values.push(v.clone()),
                None => ok = false,
            }
        }
        ok &= labels.keys().all(|k| family.label_names.binary_search(k).is_ok());
        if ok {
            return Ok(values);
        }
        let mut got: Vec<String> = labels.keys().chain(self.additional.keys()).cloned().collect();
        got.sort();
        got.dedup();
        Err(MetricsError::WrongLabels {
            name: family.def.name.clone(),
            expected: family.label_names.clone(),
            got,
        })
    }

    /// The text exposition format 0.0.4: families sorted by name, each with `# HELP` and
    /// `# TYPE`; series sorted by label values; labels sorted by name. Families without a
    /// series are left out, as Go's registry does.
    pub(crate) fn render(&self) -> String {
        let now = Instant::now();
        let mut families: Vec<&Family> = self.families.values().collect();
        families.sort_by(|a, b| a.full_name.cmp(&b.full_name));
        let mut out = String::new();
        for f in families {
            let mut series = lock(&f.series);
            if series.is_empty() {
                continue;
            }
            let name = &f.full_name;
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.def.help));
            let _ = writeln!(out, "# TYPE {name} {}", f.def.kind);
            for (values, s) in series.iter_mut() {
                let mut pairs: Vec<(&str, &str)> =
                    self.const_labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                pairs.extend(
                    f.label_names.iter().map(String::as_str).zip(values.iter().map(String::as_str)),
                );
                pairs.sort_unstable();
                let labels = render_labels(&pairs, None);
                match s {
                    Series::Value(v) => {
                        let _ = writeln!(out, "{name}{labels} {}", go_float(*v));
                    }
                    Series::Summary(sum) => {
                        let qs: Vec<f64> = f.def.objectives.iter().map(|(q, _)| *q).collect();
                        for (q, v) in qs.iter().zip(sum.quantiles(now, &qs)) {
                            let l = render_labels(&pairs, Some(("quantile", &go_float(*q))));
                            let _ = writeln!(out, "{name}{l} {}", go_float(v));
                        }
                        let _ = writeln!(out, "{name}_sum{labels} {}", go_float(sum.sum));
                        let _ = writeln!(out, "{name}_count{labels} {}", sum.count);
                    }
                    Series::Histogram { counts, sum, count } => {
                        let mut cumulative = 0;
                        for (bound, c) in f.def.buckets.iter().zip(counts.iter()) {
                            cumulative += c;
                            let l = render_labels(&pairs, Some(("le", &go_float(*bound))));
                            let _ = writeln!(out, "{name}_bucket{l} {cumulative}");
                        }
                        let l = render_labels(&pairs, Some(("le", "+Inf")));
                        let _ = writeln!(out, "{name}_bucket{l} {count}");
                        let _ = writeln!(out, "{name}_sum{labels} {}", go_float(*sum));
                        let _ = writeln!(out, "{name}_count{labels} {count}");
                    }
                }
            }
        }
        out
    }
}

/// `{a="x",b="y"}`, with `extra` (quantile or le) last; empty when there is no label.
fn render_labels(pairs: &[(&str, &str)], extra: Option<(&str, &str)>) -> String {
    let mut out = String::new();
    for (k, v) in pairs.iter().copied().chain(extra) {
        out.push(if out.is_empty() { '{' } else { ',' });
        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
    }
    if !out.is_empty() {
        out.push('}');
    }
    out
}

/// Locks a family; a poisoned lock still holds consistent numbers (no update panics midway).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
