//! The registry behind [`super::PrometheusReporter`]: families, label checks, rendering.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::prometheus::summary::{self, Summary};
use crate::prometheus::text::{escape_help, escape_label, go_float};
use crate::spec::{self, MetricDef};
use crate::{MetricKind, MetricsError, Recorder};

/// The maps' hasher: keys are our own metric names and label values, not chosen by an
/// attacker to collide, so a fast hash beats SipHash on every report.
type FastHash = foldhash::fast::RandomState;

/// All registered families, keyed by kind and short name as Go's reporter maps are.
#[derive(Debug)]
pub(crate) struct Registry {
    /// `game`, `serverType` and `pitaya.metrics.constLabels`.
    const_labels: BTreeMap<String, String>,
    /// Label → default value, on every metric.
    additional: BTreeMap<String, String>,
    /// Short name → the families of that name, one per kind at most. Keyed by name alone
    /// so that a report looks its family up with the caller's `&str`, without allocating.
    families: HashMap<String, Vec<Family>, FastHash>,
}

#[derive(Debug)]
struct Family {
    def: MetricDef,
    full_name: String,
    /// Variable label names (metric's plus additional), sorted.
    label_names: Vec<String>,
    /// The additional labels' defaults, in `label_names` order (`None` for own labels).
    defaults: Vec<Option<String>>,
    /// Series key of the label values (see [`Registry::report`]) → series. A report that
    /// hits an existing series allocates nothing: the key is built in a reused thread-local
    /// buffer.
    series: Mutex<HashMap<Box<[u8]>, Arc<SeriesCell>, FastHash>>,
}

/// One series: its label values (in `label_names` order, for rendering) and its numbers
/// behind their own lock, so that a [`Recorder`] holding it reports without touching the
/// family's map.
#[derive(Debug)]
pub(crate) struct SeriesCell {
    /// The metric's short name, for errors.
    name: String,
    values: Vec<String>,
    kind: MetricKind,
    /// The family's bucket bounds (histograms only).
    buckets: Box<[f64]>,
    data: Mutex<Series>,
}

impl SeriesCell {
    /// Adds `value` as the series' kind does; counter values are checked by the callers.
    fn observe(&self, value: f64) {
        observe(&mut lock(&self.data), self.kind, &self.buckets, value);
    }
}

impl Recorder for SeriesCell {
    fn record(&self, value: f64) -> Result<(), MetricsError> {
        check_count(self.kind, &self.name, value)?;
        self.observe(value);
        Ok(())
    }
}

/// A counter only goes up: a negative or non-finite count is refused before any series
/// is touched, whether it comes through a report or a recorder.
fn check_count(kind: MetricKind, name: &str, value: f64) -> Result<(), MetricsError> {
    if kind == MetricKind::Counter && !(value >= 0.0 && value.is_finite()) {
        return Err(MetricsError::InvalidCount { name: name.to_owned(), value });
    }
    Ok(())
}

#[derive(Debug)]
enum Series {
    Value(f64),
    Summary(Summary),
    Histogram { counts: Vec<u64>, sum: f64, count: u64 },
}

/// Label values placed without allocating for metrics with at most this many labels.
const INLINE_LABELS: usize = 8;

impl Family {
    /// Puts each of the call's values in the slot of its label (`label_names` order) and
    /// fills the additional labels it left out with their defaults (Go's `ensureLabels`).
    /// `false` when a label is not the family's, is given twice, or is missing.
    fn place<'a>(&'a self, labels: &[(&str, &'a str)], slots: &mut [Option<&'a str>]) -> bool {
        for (k, v) in labels {
            // Few labels: a scan that compares lengths first skips most byte comparisons,
            // which a binary search cannot (it orders by content).
            let found = if self.label_names.len() <= INLINE_LABELS {
                self.label_names
                    .iter()
                    .position(|l| l.len() == k.len() && l.as_bytes() == k.as_bytes())
                    .ok_or(())
            } else {
                self.label_names.binary_search_by(|l| l.as_str().cmp(k)).map_err(|_| ())
            };
            match found {
                Ok(i) => match slots.get_mut(i) {
                    Some(slot @ None) => *slot = Some(v),
                    _ => return false,
                },
                Err(_) => return false,
            }
        }
        for (slot, default) in slots.iter_mut().zip(&self.defaults) {
            if slot.is_none() {
                *slot = default.as_deref();
            }
        }
        slots.iter().all(Option::is_some)
    }
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
        let mut families = HashMap::with_hasher(FastHash::default());
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
            let same_name: &mut Vec<Family> = families.entry(def.name.clone()).or_default();
            if same_name.iter().any(|f| f.def.kind == def.kind) {
                return Err(err("duplicate metric".to_owned()));
            }
            let defaults = label_names.iter().map(|l| additional.get(l).cloned()).collect();
            same_name.push(Family {
                def,
                full_name: full_name.clone(),
                label_names,
                defaults,
                series: Mutex::new(HashMap::with_hasher(FastHash::default())),
            });
        }
        summary::start_coarse_clock();
        Ok(Self { const_labels, additional, families })
    }

    /// Records one report; `labels` are name/value pairs in any order.
    pub(crate) fn report(
        &self,
        kind: MetricKind,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), MetricsError> {
        check_count(kind, name, value)?;
        self.with_series(kind, name, labels, |cell| {
            cell.observe(value);
        })
    }

    /// The series of `name` with `labels`, created when missing, for a [`Recorder`].
    pub(crate) fn series(
        &self,
        kind: MetricKind,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<Arc<SeriesCell>, MetricsError> {
        self.with_series(kind, name, labels, Arc::clone)
    }

    /// Runs `f` on the series of `name` with `labels` (created when missing) under the
    /// family's lock; errors for an unknown metric or a wrong label set.
    fn with_series<R>(
        &self,
        kind: MetricKind,
        name: &str,
        labels: &[(&str, &str)],
        f: impl FnOnce(&Arc<SeriesCell>) -> R,
    ) -> Result<R, MetricsError> {
        let family = self
            .families
            .get(name)
            .and_then(|fs| fs.iter().find(|f| f.def.kind == kind))
            .ok_or_else(|| MetricsError::UnknownMetric { kind, name: name.to_owned() })?;
        let mut inline = [None; INLINE_LABELS];
        let mut spilled = Vec::new();
        let n = family.label_names.len();
        let slots = if n <= INLINE_LABELS {
            &mut inline[..n]
        } else {
            spilled.resize(n, None);
            &mut spilled[..]
        };
        if !family.place(labels, slots) {
            return Err(self.wrong_labels(family, labels));
        }
        Ok(KEY.with_borrow_mut(|key| {
            key.clear();
            // `<len><bytes>` per value: unambiguous whatever the values contain.
            for v in slots.iter().flatten() {
                key.extend_from_slice(&(v.len() as u64).to_le_bytes());
                key.extend_from_slice(v.as_bytes());
            }
            let mut series = lock(&family.series);
            let cell = match series.get(key.as_slice()) {
                Some(cell) => cell,
                None => {
                    let data = match kind {
                        MetricKind::Summary => Series::Summary(Summary::default()),
                        MetricKind::Histogram => Series::Histogram {
                            counts: vec![0; family.def.buckets.len()],
                            sum: 0.0,
                            count: 0,
                        },
                        MetricKind::Counter | MetricKind::Gauge => Series::Value(0.0),
                    };
                    let cell = SeriesCell {
                        name: family.def.name.clone(),
                        values: slots.iter().map(|v| v.unwrap_or_default().to_owned()).collect(),
                        kind,
                        buckets: family.def.buckets.clone().into_boxed_slice(),
                        data: Mutex::new(data),
                    };
                    series.entry(Box::from(key.as_slice())).or_insert(Arc::new(cell))
                }
            };
            f(cell)
        }))
    }

    /// [`MetricsError::WrongLabels`] for a call whose label names are not the family's.
    fn wrong_labels(&self, family: &Family, labels: &[(&str, &str)]) -> MetricsError {
        let mut got: Vec<String> = labels
            .iter()
            .map(|(k, _)| (*k).to_owned())
            .chain(self.additional.keys().cloned())
            .collect();
        got.sort();
        got.dedup();
        MetricsError::WrongLabels {
            name: family.def.name.clone(),
            expected: family.label_names.clone(),
            got,
        }
    }

    /// The text exposition format 0.0.4: families sorted by name, each with `# HELP` and
    /// `# TYPE`; series sorted by label values; labels sorted by name. Families without a
    /// series are left out, as Go's registry does.
    pub(crate) fn render(&self) -> String {
        let now = summary::precise_ms();
        let mut families: Vec<&Family> = self.families.values().flatten().collect();
        families.sort_by(|a, b| a.full_name.cmp(&b.full_name));
        let mut out = String::new();
        for f in families {
            let guard = lock(&f.series);
            if guard.is_empty() {
                continue;
            }
            let mut series: Vec<&Arc<SeriesCell>> = guard.values().collect();
            series.sort_by(|a, b| a.values.cmp(&b.values));
            let name = &f.full_name;
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.def.help));
            let _ = writeln!(out, "# TYPE {name} {}", f.def.kind);
            for cell in series {
                let values = &cell.values;
                let mut data = lock(&cell.data);
                let s = &mut *data;
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

thread_local! {
    /// The series key of the report in progress, reused so that hits allocate nothing.
    static KEY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Adds one report to a series.
fn observe(series: &mut Series, kind: MetricKind, buckets: &[f64], value: f64) {
    match series {
        Series::Value(v) if kind == MetricKind::Counter => *v += value,
        Series::Value(v) => *v = value,
        Series::Summary(s) => s.observe(summary::coarse_ms(), value),
        Series::Histogram { counts, sum, count } => {
            // Buckets are cumulative when rendered; here each observation lands in the
            // first bucket whose bound holds it (none: only `+Inf`).
            if let Some(i) = buckets.iter().position(|b| value <= *b) {
                if let Some(c) = counts.get_mut(i) {
                    *c += 1;
                }
            }
            *sum += value;
            *count += 1;
        }
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
