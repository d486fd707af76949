//! OpenTelemetry export of Pitaya for Rust's `tracing` spans over OTLP/gRPC (which Jaeger,
//! Tempo and the OpenTelemetry Collector accept), with the trace joined across servers
//! through the propagated context (spec §6.5, Pitaya v3's `otel-span` key).
//!
//! **Layer:** services (the table in `xtask/src/layers.rs`): may depend on crates of the
//! foundation, serialization and core layers.
//!
//! The facade's spans (`pitaya.forward`, `pitaya.rpc`, `pitaya.rpc.server`, …) are plain
//! `tracing` spans. This crate gives the [`tracing_subscriber::Layer`] that turns them into
//! OpenTelemetry spans and ships them, and the two hooks the facade calls at each hop so
//! that a backend's span is the child of exactly the frontend span that sent the request.
//!
//! # Layout
//! * [`layer`] + [`OtlpConfig`] + [`OtlpGuard`]: the exporting layer and its shutdown.
//! * [`link_incoming`] / [`link_outgoing`]: W3C `traceparent` in and out of a [`Context`].
//!
//! # Wiring a server
//! The application owns its subscriber: it builds the layer inside its Tokio runtime, adds
//! it beside its log layer and keeps the guard until the end, so that the last spans are
//! flushed. With the facade, enable feature `otlp` and use `pitaya::otel`.
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! use tracing_subscriber::util::SubscriberInitExt;
//!
//! # async fn run() -> Result<(), pitaya_otel::Error> {
//! let cfg = pitaya_otel::OtlpConfig::new("connector")
//!     .server_id("connector-1")
//!     .endpoint("http://127.0.0.1:4317"); // Jaeger's OTLP/gRPC port
//! let (otel, guard) = pitaya_otel::layer(&cfg)?;
//! tracing_subscriber::registry().with(otel).with(tracing_subscriber::fmt::layer()).init();
//! // ... build and run the server ...
//! tokio::task::spawn_blocking(move || guard.shutdown()).await.ok(); // flush the last spans
//! # Ok(())
//! # }
//! ```
//!
//! Without the layer (or for spans it does not see) the hooks keep the plain behaviour:
//! each hop gets a random child span id in the carried trace, so logs of all hops still
//! share one `trace_id`.
//!
//! [`Context`]: pitaya_core::Context

mod config;
mod export;
mod link;

pub use config::{DEFAULT_ENDPOINT, OtlpConfig};
pub use export::{Error, OtlpGuard, OtlpLayer, layer};
pub use link::{link_incoming, link_outgoing};

/// The OpenTelemetry crates this one is built on, for applications that add their own
/// spans, samplers or processors with the same versions.
pub mod deps {
    pub use opentelemetry;
    pub use opentelemetry_otlp;
    pub use opentelemetry_sdk;
    pub use tracing_opentelemetry;
}
