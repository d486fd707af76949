//! `PITAYA_*` environment variables as a figment provider.
//!
//! Viper's `AutomaticEnv` with a `.` → `_` replacer maps `pitaya.heartbeat.interval` to
//! `PITAYA_HEARTBEAT_INTERVAL`. Pitaya's keys contain no underscore, so the reverse split on `_`
//! is unambiguous. Values stay strings, as viper sees them; typed fields read them at extraction
//! (figment's lossy mode for numbers and booleans, `lenient` and `serde_go_duration` for the
//! rest). Figment's own `Env` would instead parse `007` as the number 7, which corrupts
//! passwords and other string keys.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

/// Name of this provider in error messages, followed by the variable's name.
pub(crate) const NAME: &str = "environment variable";

/// Reads every `PITAYA_<KEY>` variable as the dotted key `pitaya.<key>`.
///
/// The `PITAYA_` prefix is case-sensitive, as in Go; the rest of the name is lower-cased and
/// split on `_` (`PITAYA_METRICS_CONSTLABELS_REGION` sets the label `region`). Names with empty
/// segments and names that are not UTF-8 are ignored. When one variable names a key and another
/// a key below it (`..._CONSTLABELS` and `..._CONSTLABELS_REGION`), the deeper one wins.
/// Values are read when the provider is merged, not when it is built.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct PitayaEnv;

impl PitayaEnv {
    /// The provider; it reads the process environment each time figment asks for its data.
    pub fn new() -> Self {
        Self
    }
}

impl Provider for PitayaEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named(NAME).interpolater(|_: &Profile, keys: &[&str]| {
            keys.iter().map(|k| k.to_ascii_uppercase()).collect::<Vec<_>>().join("_")
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(name, value)| {
                let name = name.into_string().ok()?;
                name.starts_with(PREFIX).then(|| (name, value.to_string_lossy().into_owned()))
            })
            .collect();
        // Sorted, a key comes before the keys below it, so the deeper ones overwrite it.
        vars.sort();

        let mut root = Dict::new();
        for (name, value) in vars {
            let lower = name.to_ascii_lowercase();
            let segments: Vec<&str> = lower.split('_').collect();
            if segments.iter().any(|s| s.is_empty()) {
                continue;
            }
            insert(&mut root, &segments, value);
        }
        Ok(Profile::Default.collect(root))
    }
}

const PREFIX: &str = "PITAYA_";

fn insert(dict: &mut Dict, path: &[&str], value: String) {
    match path {
        [] => {}
        [leaf] => {
            dict.insert((*leaf).to_owned(), Value::from(value));
        }
        [head, rest @ ..] => {
            let entry = dict.entry((*head).to_owned()).or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, child) = entry {
                insert(child, rest, value);
            }
        }
    }
}
