//! Why a configuration could not be loaded, naming the key, the value and where it came from.

use std::path::PathBuf;

use figment::Figment;
use figment::value::{Dict, Value};

/// A configuration that cannot be loaded. Every variant is fatal at startup, as Go Pitaya
/// panics on a bad configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key holds a value its type cannot take (`pitaya.heartbeat.interval = "abc"`).
    #[error("invalid value {value} for {key}{}: {reason}", from_origin(.origin))]
    InvalidValue {
        /// The full dotted key, e.g. `pitaya.heartbeat.interval`.
        key: String,
        /// The rejected value as written (strings quoted), or `<unset>`.
        value: String,
        /// The source that supplied it, e.g. `environment variable PITAYA_HEARTBEAT_INTERVAL`.
        origin: Option<String>,
        /// What was wrong, e.g. `time: invalid duration "abc"`.
        reason: String,
    },
    /// The configuration file could not be read.
    #[error("cannot read config file {}", .path.display())]
    ReadFile {
        /// The file named by the caller.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file's extension names no supported format.
    #[error("unsupported config file {}: expected a .toml or .json extension", .path.display())]
    UnsupportedFormat {
        /// The file named by the caller.
        path: PathBuf,
    },
    /// A source failed as a whole, e.g. a file that is not valid TOML.
    #[error("invalid configuration source{}: {reason}", from_origin(.origin))]
    Source {
        /// The failing source, when known.
        origin: Option<String>,
        /// The source's own message.
        reason: String,
    },
}

impl ConfigError {
    /// Converts a figment error. `values` is the tree that was being deserialized (to quote the
    /// bad value) and `sources` the figment it came from (to say which provider supplied it).
    pub(crate) fn from_figment(error: figment::Error, values: &Dict, sources: &Figment) -> Self {
        // Figment chains errors from several providers; the first is the most recent and enough
        // to act on.
        let error =
            error.into_iter().next().unwrap_or_else(|| figment::Error::from("unknown error"));
        let reason = error.kind.to_string();
        if error.path.is_empty() {
            return Self::Source { origin: error.metadata.as_ref().map(describe), reason };
        }
        let key = error.path.join(".");
        let value =
            Value::from(values.clone()).find_ref(&key).map_or_else(|| "<unset>".to_owned(), render);
        let origin = sources.find_metadata(&key).map(|md| origin_of(md, &error.path));
        Self::InvalidValue { key, value, origin, reason }
    }
}

/// `" (from X)"` or nothing.
fn from_origin(origin: &Option<String>) -> String {
    origin.as_ref().map(|o| format!(" (from {o})")).unwrap_or_default()
}

/// A provider's name and, for files, the path.
fn describe(metadata: &figment::Metadata) -> String {
    match &metadata.source {
        Some(source) => format!("{} {source}", metadata.name),
        None => metadata.name.to_string(),
    }
}

/// Like [`describe`], plus the variable's name for the environment provider.
fn origin_of(metadata: &figment::Metadata, path: &[String]) -> String {
    if metadata.name == crate::env::NAME {
        format!("{} {}", metadata.name, metadata.interpolate(&figment::Profile::Default, path))
    } else {
        describe(metadata)
    }
}

/// Strings quoted, everything else as compact JSON-like text.
fn render(value: &Value) -> String {
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{c:?}"),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => num_text(*n),
        Value::Empty(..) => "null".to_owned(),
        Value::Dict(..) | Value::Array(..) => {
            serde_json::to_string(value).unwrap_or_else(|_| "<unprintable>".to_owned())
        }
    }
}

fn num_text(n: figment::value::Num) -> String {
    if let Some(u) = n.to_u128() {
        return u.to_string();
    }
    if let Some(i) = n.to_i128() {
        return i.to_string();
    }
    n.to_f64().map_or_else(|| format!("{n:?}"), |f| f.to_string())
}
