//! The hooks that join a hop's span to the trace carried in the propagated context
//! (spec §6.5): OpenTelemetry parents with feature `otlp`, plain W3C ids without it.

use pitaya_core::Context;
use pitaya_core::context::TraceParent;

/// Makes `span` (new, not entered) the child of the span that sent the request `ctx`
/// came with. Without feature `otlp` there is no OpenTelemetry span to link: nothing to do.
#[cfg(not(feature = "otlp"))]
pub(crate) fn link_incoming(_span: &tracing::Span, _ctx: &Context) {}

/// Sets the `traceparent` the next hop gets and returns it: `span`'s own ids once
/// exported, else a random child span of the carried trace (or a new trace).
#[cfg(not(feature = "otlp"))]
pub(crate) fn link_outgoing(_span: &tracing::Span, ctx: &mut Context) -> TraceParent {
    ctx.next_hop()
}

/// Makes `span` (new, not entered) the child of the span that sent the request `ctx`
/// came with, when an OpenTelemetry layer sees it.
#[cfg(feature = "otlp")]
pub(crate) fn link_incoming(span: &tracing::Span, ctx: &Context) {
    pitaya_otel::link_incoming(span, ctx);
}

/// Sets the `traceparent` the next hop gets and returns it: `span`'s own OpenTelemetry
/// ids when a layer sees it, else a random child span of the carried trace.
#[cfg(feature = "otlp")]
pub(crate) fn link_outgoing(span: &tracing::Span, ctx: &mut Context) -> TraceParent {
    pitaya_otel::link_outgoing(span, ctx)
}
