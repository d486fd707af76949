//! Layering of configuration sources: Go's defaults, a file, `PITAYA_*`, then the app's own
//! overrides, each later layer winning key by key.

use std::path::Path;

use figment::providers::{Format, Json, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Error, Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

use crate::canon::{self, Canonical};
use crate::{ConfigError, PitayaConfig, PitayaEnv};

/// Builds the figment a [`PitayaConfig`] is read from, one layer at a time.
///
/// Later layers win over earlier ones key by key; maps such as `constLabels` merge. Every layer
/// has its keys folded onto Pitaya's spelling first (viper is case-insensitive), so
/// `constlabels` from one source and `constLabels` from another are the same key.
///
/// ```
/// # fn main() -> Result<(), pitaya_config::ConfigError> {
/// use pitaya_config::ConfigLoader;
///
/// // What `PitayaConfig::load(None)` does, plus a command-line flag that beats the environment.
/// let config = ConfigLoader::standard(None)?
///     .set("pitaya.heartbeat.interval", "10s")
///     .load()?;
/// assert_eq!(config.heartbeat.interval, std::time::Duration::from_secs(10));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a loader reads nothing until `load` is called"]
pub struct ConfigLoader {
    figment: Figment,
}

impl Default for ConfigLoader {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigLoader {
    /// A loader holding only Go Pitaya's code defaults (`PitayaConfig::default()`).
    pub fn new() -> Self {
        let defaults = Serialized::defaults(Root { pitaya: PitayaConfig::default() });
        Self { figment: Figment::from(Canonical::named(defaults, DEFAULTS_NAME.to_owned())) }
    }

    /// Go Pitaya's layering: defaults, then `file` if given, then `PITAYA_*` variables.
    ///
    /// # Errors
    /// As [`ConfigLoader::file`].
    pub fn standard(file: Option<&Path>) -> Result<Self, ConfigError> {
        let loader = Self::new();
        let loader = match file {
            Some(path) => loader.file(path)?,
            None => loader,
        };
        Ok(loader.env())
    }

    /// Adds a configuration file, chosen by extension: `.toml` or `.json`. Keys are rooted as in
    /// Go's files (`[pitaya.heartbeat]` / `{"pitaya": {...}}`); other top-level keys are kept
    /// for the app. The file is parsed when the configuration is loaded.
    ///
    /// # Errors
    /// [`ConfigError::ReadFile`] when `path` is not a readable regular file, and
    /// [`ConfigError::UnsupportedFormat`] for other extensions (YAML needs a dependency this
    /// crate does not take).
    pub fn file(self, path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let read_error = |source| ConfigError::ReadFile { path: path.to_owned(), source };
        let metadata = std::fs::metadata(path).map_err(read_error)?;
        if !metadata.is_file() {
            return Err(read_error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        Ok(match extension.as_deref() {
            Some("toml") => self.merge(Toml::file_exact(path)),
            Some("json") => self.merge(Json::file_exact(path)),
            _ => return Err(ConfigError::UnsupportedFormat { path: path.to_owned() }),
        })
    }

    /// Adds the `PITAYA_*` environment variables (see [`PitayaEnv`]).
    pub fn env(self) -> Self {
        self.merge(PitayaEnv::new())
    }

    /// Sets one dotted key, e.g. from a command-line flag: `set("pitaya.heartbeat.interval",
    /// "10s")`. Durations are Go strings (see [`godur::format`](crate::godur::format)); a
    /// `std::time::Duration` value would serialize as a struct and fail to load.
    ///
    /// A bad value is reported by [`ConfigLoader::load`], naming this key.
    #[track_caller]
    pub fn set<V: Serialize>(self, key: &str, value: V) -> Self {
        let provider = Serialized::default(key, value);
        self.merge_named(provider, format!("override of {key}"))
    }

    /// Adds any figment provider, e.g. one of the app's own files.
    pub fn merge<P: Provider>(self, provider: P) -> Self {
        Self { figment: self.figment.merge(Canonical::new(provider)) }
    }

    /// The layers so far, for apps that read their own keys from the same sources.
    pub fn figment(&self) -> &Figment {
        &self.figment
    }

    /// The layers so far, by value.
    pub fn into_figment(self) -> Figment {
        self.figment
    }

    /// Resolves the layers into a [`PitayaConfig`].
    ///
    /// # Errors
    /// As [`PitayaConfig::from_figment`].
    pub fn load(&self) -> Result<PitayaConfig, ConfigError> {
        PitayaConfig::from_figment(&self.figment)
    }

    fn merge_named<P: Provider>(self, provider: P, name: String) -> Self {
        Self { figment: self.figment.merge(Canonical::named(provider, name)) }
    }
}

impl PitayaConfig {
    /// Loads the configuration as Go Pitaya does: defaults, then `file` if given, then
    /// `PITAYA_*` environment variables.
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable or unparsable file and for any value its key cannot
    /// take; the error names the key, the value and its source.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        ConfigLoader::standard(file)?.load()
    }

    /// Reads the `pitaya` key of any figment. Missing keys take Go's defaults; unknown keys are
    /// ignored; key spellings are folded as [`ConfigLoader`] does (when a figment holds two
    /// spellings of one key, the exact spelling wins). Numbers and booleans may be strings.
    ///
    /// # Errors
    /// [`ConfigError::Source`] when a provider fails as a whole (e.g. a malformed file), and
    /// [`ConfigError::InvalidValue`] for the first value that its key cannot take.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let merged = figment
            .find_value("")
            .map_err(|e| ConfigError::from_figment(e, &Dict::new(), figment))?;
        let mut root = canon::canonical_root(merged.into_dict().unwrap_or_default());
        let pitaya: Dict = root.remove_entry(canon::ROOT).into_iter().collect();
        // A fresh figment over the folded tree: stray spellings from the caller's figment
        // cannot reach the deserializer, and the values keep their tags for error reporting.
        Figment::from(Resolved(pitaya.clone()))
            .extract_lossy::<Root>()
            .map(|root| root.pitaya)
            .map_err(|e| ConfigError::from_figment(e, &pitaya, figment))
    }
}

/// The whole document: Pitaya's keys live under `pitaya`.
#[derive(Serialize, Deserialize)]
pub(crate) struct Root {
    #[serde(default)]
    pub(crate) pitaya: PitayaConfig,
}

const DEFAULTS_NAME: &str = "Go Pitaya defaults";

/// An already merged and folded tree, handed back to figment for extraction.
struct Resolved(Dict);

impl Provider for Resolved {
    fn metadata(&self) -> Metadata {
        Metadata::named("resolved configuration")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn defaults_survive_the_figment_round_trip() {
        let loaded = ConfigLoader::new().load().unwrap();
        assert_eq!(loaded, PitayaConfig::default());
    }

    #[test]
    fn an_empty_figment_gives_go_defaults() {
        assert_eq!(PitayaConfig::from_figment(&Figment::new()).unwrap(), PitayaConfig::default());
    }

    #[test]
    fn set_wins_over_earlier_layers_and_names_the_key_on_error() {
        let config = ConfigLoader::new().set("pitaya.heartbeat.interval", "10s").load().unwrap();
        assert_eq!(config.heartbeat.interval, Duration::from_secs(10));

        let err = ConfigLoader::new().set("pitaya.heartbeat.interval", "soon").load().unwrap_err();
        match &err {
            ConfigError::InvalidValue { key, value, origin, .. } => {
                assert_eq!(key, "pitaya.heartbeat.interval");
                assert_eq!(value, "\"soon\"");
                assert!(
                    origin
                        .as_deref()
                        .unwrap_or("")
                        .contains("override of pitaya.heartbeat.interval")
                );
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn raw_figments_with_other_spellings_are_folded() {
        let figment = Figment::new()
            .merge(("PITAYA.Metrics.CONSTLABELS.Region", "us"))
            .merge(("pitaya.worker.retry.mindelay", 3));
        let config = PitayaConfig::from_figment(&figment).unwrap();
        assert_eq!(config.metrics.const_labels.get("Region").map(String::as_str), Some("us"));
        assert_eq!(config.worker.retry.min_delay, 3);
    }

    #[test]
    fn unknown_extensions_and_missing_files_are_rejected() {
        let err = ConfigLoader::new().file("/definitely/missing.toml").unwrap_err();
        assert!(matches!(err, ConfigError::ReadFile { .. }), "{err:?}");
        let err = ConfigLoader::new().file(std::env::temp_dir()).unwrap_err();
        assert!(matches!(err, ConfigError::ReadFile { .. }), "{err:?}");
    }
}
