//! The resolved configuration as sorted `pitaya.x.y = value` lines, for operators to check
//! what is in force.

use std::fmt;

use serde_json::Value;

use crate::PitayaConfig;
use crate::canon::ROOT;

/// Shown instead of a non-empty password.
const REDACTED: &str = "<redacted>";

/// Keys whose values are secrets.
const SECRET_KEYS: [&str; 2] = ["pass", "password"];

impl PitayaConfig {
    /// Every key with its value, sorted by key: `("pitaya.heartbeat.interval", "30s")`.
    ///
    /// Values are written as they can be given back through the environment: durations as Go
    /// strings, numbers and booleans bare, strings unquoted (`""` when empty). Lists and custom
    /// metrics are compact JSON; each `constLabels`/`additionalLabels` entry gets its own line,
    /// or the map is `{}` when empty. Non-empty `pass`/`password` values are `<redacted>`.
    pub fn to_dotted(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        match serde_json::to_value(self) {
            Ok(value) => flatten(ROOT.to_owned(), &value, &mut out),
            // Unreachable for these types (string keys, finite defaults); kept total anyway.
            Err(e) => out.push((ROOT.to_owned(), format!("<unprintable: {e}>"))),
        }
        out.sort();
        out
    }
}

/// One `key = value` line per key, as [`PitayaConfig::to_dotted`] lists them.
impl fmt::Display for PitayaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (key, value) in self.to_dotted() {
            writeln!(f, "{key} = {value}")?;
        }
        Ok(())
    }
}

fn flatten(key: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (child, v) in map {
                flatten(format!("{key}.{child}"), v, out);
            }
        }
        Value::Object(_) => out.push((key, "{}".to_owned())),
        Value::Array(_) => out.push((key, value.to_string())),
        Value::String(s) if s.is_empty() => out.push((key, "\"\"".to_owned())),
        Value::String(s) => {
            let leaf = key.rsplit('.').next().unwrap_or_default();
            let shown = if SECRET_KEYS.contains(&leaf) { REDACTED.to_owned() } else { s.clone() };
            out.push((key, shown));
        }
        Value::Number(_) | Value::Bool(_) | Value::Null => out.push((key, value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_defaults_in_go_format() {
        let lines = PitayaConfig::default().to_dotted();
        let get = |k: &str| lines.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("pitaya.heartbeat.interval"), Some("30s"));
        assert_eq!(get("pitaya.cluster.sd.etcd.shutdown.delay"), Some("300ms"));
        assert_eq!(get("pitaya.modules.bindingstorage.etcd.leasettl"), Some("5h0m0s"));
        assert_eq!(get("pitaya.cluster.sd.etcd.endpoints"), Some("[\"localhost:2379\"]"));
        assert_eq!(get("pitaya.metrics.constLabels"), Some("{}"));
        assert_eq!(get("pitaya.metrics.game"), Some("\"\""));
        assert_eq!(get("pitaya.serializertype"), Some("1"));
        assert_eq!(get("pitaya.worker.retry.minDelay"), Some("10"));
        assert!(lines.windows(2).all(|w| w[0].0 < w[1].0), "sorted and unique");

        let text = PitayaConfig::default().to_string();
        assert!(text.contains("pitaya.heartbeat.interval = 30s\n"), "{text}");
    }

    #[test]
    fn redacts_secrets_and_splits_labels() {
        let mut config = PitayaConfig::default();
        config.worker.redis.password = "hunter2".to_owned();
        config.cluster.sd.etcd.pass = "s3cret".to_owned();
        config.metrics.const_labels.insert("region".to_owned(), "us".to_owned());
        let text = config.to_string();
        assert!(!text.contains("hunter2") && !text.contains("s3cret"), "{text}");
        assert!(text.contains("pitaya.worker.redis.password = <redacted>\n"));
        assert!(text.contains("pitaya.metrics.constLabels.region = us\n"));
    }
}
