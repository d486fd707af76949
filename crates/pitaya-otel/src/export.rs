//! [`layer`]: the `tracing` layer that exports spans over OTLP/gRPC, and its [`OtlpGuard`].

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{FilterFn, Filtered};
use tracing_subscriber::registry::LookupSpan;

use crate::OtlpConfig;

/// The layer [`layer`] returns: add it to a `tracing_subscriber::Registry`.
pub type OtlpLayer<S> =
    Filtered<tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>, FilterFn, S>;

/// Why the export could not be set up, flushed or shut down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`layer`] was called outside a Tokio runtime; the gRPC channel lives on it.
    #[error("the otlp exporter must be built inside a tokio runtime")]
    NoRuntime,
    /// The exporter rejected its configuration (a malformed endpoint URL, for one).
    #[error("cannot build the otlp exporter: {0}")]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A flush or shutdown failed or timed out; the spans it held are lost.
    #[error("otlp export: {0}")]
    Export(#[from] opentelemetry_sdk::error::OTelSdkError),
}

/// Builds the layer that exports every span it sees, in batches, to the collector of
/// `cfg`, with `service.name` = the server type and `service.instance.id` = the server id.
///
/// Call it inside the Tokio runtime the server runs on, and keep that runtime alive while
/// spans are exported: the gRPC connection is driven by it, while batching happens on a
/// thread of the SDK. Nothing is connected here: an unreachable collector only makes
/// later exports fail, silently, and the queue is bounded (2,048 spans), so spans are
/// dropped rather than piling up or slowing requests.
///
/// Spans of `pitaya-agent` (one per client connection) are not exported: a span that
/// lives as long as a connection would make every request of that connection one trace,
/// where a trace should be one client request. Events and other spans pass; the level
/// filter is the application's (`pitaya.handler` spans are at debug level).
///
/// No global state is touched: neither the global tracer provider nor the propagator.
///
/// # Errors
/// [`Error::NoRuntime`] outside a Tokio runtime; [`Error::Build`] for a bad endpoint.
pub fn layer<S>(cfg: &OtlpConfig) -> Result<(OtlpLayer<S>, OtlpGuard), Error>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    // tonic spawns the channel's worker when the channel is made: outside a runtime that
    // panics, so say it as an error instead.
    tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
    let mut exporter =
        opentelemetry_otlp::SpanExporter::builder().with_tonic().with_timeout(cfg.timeout);
    if let Some(url) = cfg.resolved_endpoint() {
        exporter = exporter.with_endpoint(url);
    }
    let exporter = exporter.build()?;
    let mut resource = Resource::builder().with_service_name(cfg.service_name.clone());
    if let Some(id) = &cfg.server_id {
        resource = resource.with_attribute(KeyValue::new("service.instance.id", id.clone()));
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("pitaya");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(FilterFn::new(exported as fn(&Metadata<'_>) -> bool));
    Ok((layer, OtlpGuard { provider: Some(provider) }))
}

/// Whether the layer sees a span or event: all but the connection spans of the agent.
fn exported(meta: &Metadata<'_>) -> bool {
    !(meta.is_span() && meta.target().starts_with("pitaya_agent"))
}

/// Owns the export pipeline of a [`layer`]: flushes the queued spans and stops the
/// exporter when shut down or dropped.
///
/// The layer keeps the pipeline usable while it exists, so drop or shut the guard down
/// only when no more spans matter, typically after the server stopped.
///
/// [`OtlpGuard::force_flush`], [`OtlpGuard::shutdown`] and drop block the calling thread
/// until the queued spans are sent or the export timeout passes. The send needs the Tokio
/// runtime to make progress, so from async code call them through
/// `tokio::task::spawn_blocking` (on a current-thread runtime a direct call can only time
/// out).
#[derive(Debug)]
pub struct OtlpGuard {
    /// `None` once shut down, so that drop does not shut down twice.
    provider: Option<SdkTracerProvider>,
}

impl OtlpGuard {
    /// The tracer provider, for spans made with the OpenTelemetry API directly.
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// Sends every span that ended so far, waiting for the collector's answer.
    ///
    /// # Errors
    /// When an export failed or timed out.
    pub fn force_flush(&self) -> Result<(), Error> {
        match &self.provider {
            Some(p) => Ok(p.force_flush()?),
            None => Ok(()),
        }
    }

    /// Flushes, then stops the exporter; later spans are not exported.
    ///
    /// # Errors
    /// When the final export failed or timed out.
    pub fn shutdown(mut self) -> Result<(), Error> {
        match self.provider.take() {
            Some(p) => Ok(p.shutdown()?),
            None => Ok(()),
        }
    }
}

impl Drop for OtlpGuard {
    fn drop(&mut self) {
        // The layer holds a clone of the provider, so without this the queue would only
        // be flushed when the global subscriber goes away, which is never.
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}
