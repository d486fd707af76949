//! Metrics of Pitaya for Rust under Go Pitaya's names (spec §11), so dashboards built for
//! Go servers keep working.
//!
//! **Layer:** services (the table in `xtask/src/layers.rs`): may depend on crates of the
//! foundation, serialization and core layers.
//!
//! # Layout
//! * [`Reporter`] / [`Reporters`]: Go's `metrics.Reporter` and a fan-out to several;
//!   [`Recorder`]: one series resolved once, for hot paths.
//! * [`names`]: metric names and label values of spec §11.1 and §11.2.
//! * [`PrometheusReporter`] + [`MetricsServer`]: registry with Go's names, help texts,
//!   types and labels, served as text on `GET /metrics`.
//! * [`StatsdReporter`]: DogStatsD datagrams over UDP.
//! * [`spawn_runtime_reporter`]: the `pitaya_sys_*` gauges every `pitaya.metrics.period`.
//!
//! # Wiring a server
//! ```no_run
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//! use pitaya_metrics::{
//!     labels, names, PrometheusReporter, Reporter, Reporters, StatsdReporter, spawn_runtime_reporter,
//! };
//!
//! # async fn run() -> Result<(), pitaya_metrics::MetricsError> {
//! let config = pitaya_config::PitayaConfig::default().metrics;
//! let mut reporters = Reporters::new();
//! let mut _server = None;
//! if config.prometheus.enabled {
//!     let prometheus = PrometheusReporter::new("connector", &config)?;
//!     let addr = SocketAddr::from(([0, 0, 0, 0], config.prometheus.port));
//!     _server = Some(prometheus.serve(addr).await?); // keep it: dropping it stops serving
//!     reporters.push(Arc::new(prometheus));
//! }
//! if config.statsd.enabled {
//!     reporters.push(Arc::new(StatsdReporter::new("connector", &config)?));
//! }
//! let reporters: Arc<dyn Reporter> = Arc::new(reporters);
//! let _sys = spawn_runtime_reporter(reporters.clone(), config.period);
//!
//! // In the handler pipeline, after a response was written:
//! reporters.report_summary(
//!     names::RESPONSE_TIME,
//!     &labels([("route", "room.room.join"), ("status", "ok"), ("type", "handler"), ("code", "")]),
//!     1500.0,
//! )?;
//! # Ok(()) }
//! ```
//!
//! # Differences from Go, on purpose
//! * `pitaya_channel_channel_capacity` is a gauge with label `channel` (Go v2's type). Go v3
//!   declares it a histogram as well but never exports it, so only the gauge can be on a
//!   dashboard. Go's agent and handler channels are shared; ours are per connection, so the
//!   server reports the free room of the fullest connection (`agent_chsend`: outgoing
//!   queue, `handler_chlocalprocess`: messages waiting for their handler), and the NATS
//!   RPC server its request queue (`rpc_server_subchan`).
//! * The worker-pool gauges describe the limits that play the pools' part: `handler_dispatch`
//!   is `pitaya.concurrency.handler.dispatch` (handlers running at once over all
//!   connections), `rpc_server_remote` the NATS server's `services`.
//! * `exceeded_rate_limiting` is reported every period with the packets refused since the
//!   last one (Go reports each refusal as it happens).
//! * `pitaya_rpc_client_push_no_binding` (counter, label `route`) is ours: pushes by uid
//!   that the gRPC client did not send because the uid has no binding (Go only logs
//!   them). Reported every period, like `exceeded_rate_limiting`.
//! * Custom histograms from `pitaya.metrics.custom.histograms` are registered (Go reads
//!   and drops them).
//! * Summary quantiles are exact over the last 10 minutes (at most 4096 observations per
//!   series) instead of Go's CKMS estimate; `_sum` and `_count` are cumulative as in Go.
//! * `goroutines` reports live tokio tasks, `heapsize` the resident memory; `heapobjects`
//!   is registered but not published.
//! * Bad definitions and bad reports are errors, where Go panics (`MustRegister`, `With`).
//!
//! # Cost
//! [`Reporter::report`] takes labels as borrowed pairs; with the Prometheus reporter a
//! report to a series that exists allocates nothing (one map lookup under a short
//! per-metric lock). A caller that reports to the same series again and again resolves it
//! once with [`recorder`] and then calls [`Recorder::record`], which takes only the
//! series' own lock: the server does so for each of its handler routes. Summary
//! observations are timed with a coarse clock (a thread that ticks every 250 ms) instead
//! of a clock read each.
//!
//! # Why not the `metrics` crates
//! `metrics-exporter-prometheus` 0.18 (on `metrics` 0.24) sets summary quantiles for all
//! metrics at once, has no per-metric help without the global recorder, and accepts any
//! label set; `metrics-exporter-statsd` 0.9 (on `metrics` 0.24, `cadence` 1.5) has no
//! per-call sample rate and sends summaries as `|ms` only through a marker label. Go's
//! exact series are easier to guarantee with the small registry and UDP writer here.
//!
//! # Features
//! None.

mod error;
pub mod names;
mod prometheus;
mod reporter;
mod runtime;
mod spec;
mod statsd;

pub use error::MetricsError;
pub use prometheus::{MetricsServer, PrometheusReporter};
pub use reporter::{Labels, Recorder, Reporter, Reporters, labels, nanos, recorder};
pub use runtime::{RuntimeReporter, spawn_runtime_reporter};
pub use spec::{DEFAULT_OBJECTIVES, MetricKind};
pub use statsd::StatsdReporter;
