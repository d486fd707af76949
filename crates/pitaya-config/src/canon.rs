//! Case folding of configuration keys onto Pitaya's spelling.
//!
//! Viper treats keys case-insensitively, and environment variables arrive upper case, so
//! `PITAYA_METRICS_CONSTLABELS`, `constlabels` in a file and `constLabels` must all name one key.
//! Figment's dictionaries are case-sensitive: two spellings would stay two keys and lose the
//! precedence between sources. So every source is folded before it is merged ([`Canonical`]),
//! and the merged tree is folded once more before extraction for figments built elsewhere.
//!
//! Under the top-level `pitaya` key, every key is lower-cased, then the five camelCase keys Go
//! reads are restored. Keys inside `constLabels` and `additionalLabels` are label names chosen by
//! the app and keep their case. Keys outside `pitaya` belong to the app and are left alone.

use std::borrow::Cow;

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// The top-level key of every Pitaya setting.
pub(crate) const ROOT: &str = "pitaya";

/// Go's camelCase keys; any other Pitaya key is all lower case.
const CAMEL_CASE: [&str; 5] =
    ["constLabels", "additionalLabels", "minDelay", "maxDelay", "maxRandom"];

/// Keys whose children are app-chosen names, left as written.
const FREE_FORM: [&str; 2] = ["constLabels", "additionalLabels"];

/// Pitaya's spelling of one key segment.
pub(crate) fn canonical_key(key: &str) -> Cow<'static, str> {
    let lower = key.to_ascii_lowercase();
    CAMEL_CASE
        .iter()
        .find(|camel| camel.eq_ignore_ascii_case(&lower))
        .map_or(Cow::Owned(lower), |camel| Cow::Borrowed(*camel))
}

/// Folds the `pitaya` subtree of a top-level dictionary; other top-level keys pass through.
///
/// When two spellings of one key meet, dictionaries are merged and, for other values, the
/// exactly spelled key wins (otherwise the last in sorted order does).
pub(crate) fn canonical_root(root: Dict) -> Dict {
    let mut out = Dict::new();
    let mut pitaya: Vec<(bool, Value)> = Vec::new();
    for (key, value) in root {
        if key.eq_ignore_ascii_case(ROOT) {
            pitaya.push((key == ROOT, canonical_value(value)));
        } else {
            out.insert(key, value);
        }
    }
    if let Some(value) = fold(pitaya) {
        out.insert(ROOT.to_owned(), value);
    }
    out
}

/// A provider whose data is folded with [`canonical_root`] before figment merges it, optionally
/// renamed so error messages say where a value came from.
pub(crate) struct Canonical<P> {
    inner: P,
    name: Option<String>,
}

impl<P: Provider> Canonical<P> {
    pub(crate) fn new(inner: P) -> Self {
        Self { inner, name: None }
    }

    pub(crate) fn named(inner: P, name: String) -> Self {
        Self { inner, name: Some(name) }
    }
}

impl<P: Provider> Provider for Canonical<P> {
    fn metadata(&self) -> Metadata {
        let mut metadata = self.inner.metadata();
        if let Some(name) = &self.name {
            metadata.name = name.clone().into();
        }
        metadata
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let data = self.inner.data()?;
        Ok(data.into_iter().map(|(profile, dict)| (profile, canonical_root(dict))).collect())
    }

    fn profile(&self) -> Option<Profile> {
        self.inner.profile()
    }
}

fn canonical_value(value: Value) -> Value {
    match value {
        Value::Dict(tag, dict) => Value::Dict(tag, canonical_dict(dict)),
        Value::Array(tag, items) => {
            Value::Array(tag, items.into_iter().map(canonical_value).collect())
        }
        other => other,
    }
}

fn canonical_dict(dict: Dict) -> Dict {
    let mut groups: Map<String, Vec<(bool, Value)>> = Map::new();
    for (key, value) in dict {
        let canonical = canonical_key(&key);
        let value =
            if FREE_FORM.contains(&canonical.as_ref()) { value } else { canonical_value(value) };
        let exact = key == canonical;
        groups.entry(canonical.into_owned()).or_default().push((exact, value));
    }
    groups.into_iter().filter_map(|(key, values)| fold(values).map(|v| (key, v))).collect()
}

/// Combines the values of one key's spellings; exact spellings are applied last so they win.
fn fold(mut values: Vec<(bool, Value)>) -> Option<Value> {
    values.sort_by_key(|(exact, _)| *exact);
    values.into_iter().map(|(_, v)| v).reduce(merge)
}

/// `over` wins, except that two dictionaries merge key by key.
fn merge(under: Value, over: Value) -> Value {
    match (under, over) {
        (Value::Dict(_, mut base), Value::Dict(tag, top)) => {
            for (key, value) in top {
                let merged = match base.remove(&key) {
                    Some(existing) => merge(existing, value),
                    None => value,
                };
                base.insert(key, merged);
            }
            Value::Dict(tag, base)
        }
        (_, over) => over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dict(json: serde_json::Value) -> Dict {
        Value::serialize(json).ok().and_then(Value::into_dict).unwrap_or_default()
    }

    #[test]
    fn lowercases_keys_and_restores_camel_case() {
        assert_eq!(canonical_key("HEARTBEAT"), "heartbeat");
        assert_eq!(canonical_key("constlabels"), "constLabels");
        assert_eq!(canonical_key("MAXRANDOM"), "maxRandom");
        assert_eq!(canonical_key("minDelay"), "minDelay");
    }

    #[test]
    fn folds_only_under_pitaya_and_keeps_label_names() {
        let root = dict(json!({
            "PITAYA": { "Metrics": { "constlabels": { "Region": "us" } } },
            "App": { "Key": 1 },
        }));
        let value = Value::from(canonical_root(root));
        assert_eq!(
            value.find_ref("pitaya.metrics.constLabels.Region").and_then(Value::as_str),
            Some("us")
        );
        assert!(value.find_ref("App.Key").is_some());
    }

    #[test]
    fn exact_spelling_wins_and_dictionaries_merge() {
        let root = dict(json!({
            "pitaya": {
                "worker": { "retry": { "mindelay": 1, "minDelay": 2 } },
                "metrics": { "constlabels": { "a": "1" }, "constLabels": { "b": "2" } },
            },
        }));
        let value = Value::from(canonical_root(root));
        assert_eq!(
            value.find_ref("pitaya.worker.retry.minDelay").and_then(Value::to_u128),
            Some(2)
        );
        assert!(value.find_ref("pitaya.worker.retry.mindelay").is_none());
        assert!(value.find_ref("pitaya.metrics.constLabels.a").is_some());
        assert!(value.find_ref("pitaya.metrics.constLabels.b").is_some());
    }
}
