//! Pitaya's configuration: the `pitaya.*` keys of Go Pitaya with its code defaults, loaded from
//! a file and `PITAYA_*` environment variables, plus Go duration strings in both directions.
//!
//! **Layer:** foundation (the table in `xtask/src/layers.rs`): may depend on no other
//! workspace crate.
//!
//! ```no_run
//! # fn main() -> Result<(), pitaya_config::ConfigError> {
//! use std::path::Path;
//!
//! let config = pitaya_config::PitayaConfig::load(Some(Path::new("config.toml")))?;
//! println!("{config}"); // pitaya.heartbeat.interval = 30s, ...
//! # Ok(()) }
//! ```
//!
//! Keys, defaults and precedence follow what Go Pitaya's code does (spec §13), not its docs:
//! the loader reads `pitaya.buffer.agent.conntimeout` (docs: `writetimeout`),
//! `pitaya.cluster.sd.etcd.servertypesblacklist`, `pitaya.worker.redis.serverurl` and
//! `pitaya.metrics.constLabels`/`additionalLabels`.
//!
//! # Layout
//!
//! - [`godur`]: `time.ParseDuration` and `Duration.String()`, also used for the wire's
//!   `reqTimeout` (spec §6.3).
//! - [`serde_go_duration`]: `#[serde(with = ...)]` for `Duration` fields.
//! - [`model`]: the typed key tree, [`PitayaConfig`] at its root.
//! - `load`: [`ConfigLoader`], layering defaults < file < environment < the app's overrides.
//! - `env`: [`PitayaEnv`], the `PITAYA_*` provider.
//! - `canon`: case folding of keys, since viper's keys are case-insensitive.
//! - `lenient`: viper's weak typing (numbers as strings, comma-separated lists).
//! - `dotted`: [`PitayaConfig::to_dotted`] and `Display`, for operators.
//! - `error`: [`ConfigError`].
//!
//! # Features
//!
//! This crate has no optional features. Files may be TOML or JSON; YAML would need a
//! dependency the workspace does not carry.

pub mod godur;
pub mod model;
pub mod serde_go_duration;

mod canon;
mod dotted;
mod env;
mod error;
mod lenient;
mod load;

pub use env::PitayaEnv;
pub use error::ConfigError;
pub use load::ConfigLoader;
pub use model::{PitayaConfig, SerializerType};

/// The figment version this crate builds on, so apps can add providers without a second copy.
pub use figment;
