//! [`link_incoming`] / [`link_outgoing`]: the OpenTelemetry parent of a hop's span, read
//! from and written to the W3C `traceparent` of the propagated context (spec §6.5).

use std::str::FromStr as _;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use pitaya_core::Context;
use pitaya_core::context::{OTEL_SPAN, TraceParent};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Makes `span`, the server-side span of an incoming request, a child of the span that
/// sent it: the `traceparent` (and `tracestate`) carried in `ctx`, so the backend's span
/// joins the caller's trace in the tracing backend.
///
/// Call it right after creating `span`, before entering it or calling
/// [`link_outgoing`] on a child. Does nothing when `ctx` carries no valid `traceparent`,
/// when no OpenTelemetry layer sees `span`, or when the span was already started.
pub fn link_incoming(span: &tracing::Span, ctx: &Context) {
    if let Some(parent) = ctx.trace_parent() {
        // Errors mean "no layer" or "too late": the span then keeps its local parent.
        let _ = span.set_parent(remote_parent(parent, ctx));
    }
}

/// Writes `span`'s own OpenTelemetry trace and span ids into `ctx` as the `traceparent`
/// of the next hop, so the next server's span is a child of exactly `span`, and returns
/// that trace parent (its trace id is what logs of the hop show).
///
/// `span` must be a new span whose parent is the current span (the `info_span!` default),
/// not yet entered. Its OpenTelemetry parent is the current span's when that belongs to
/// the trace `ctx` carries (or `ctx` carries none); otherwise the span carried in `ctx`
/// becomes the parent, since the context, not the task's current span, says which request
/// an RPC serves (a handler may call from a task that lost its span).
///
/// When no OpenTelemetry layer sees `span`, this is [`Context::next_hop`]: a random child
/// span id in the carried trace, or a new trace.
pub fn link_outgoing(span: &tracing::Span, ctx: &mut Context) -> TraceParent {
    if let Some(carried) = ctx.trace_parent() {
        let current = opentelemetry::Context::current();
        let local = current.span().span_context().clone();
        if !local.is_valid() || local.trace_id() != trace_id(carried.trace_id) {
            let _ = span.set_parent(remote_parent(carried, ctx));
        }
    }
    // This starts the OpenTelemetry span (its start time is the tracing span's creation).
    let own = span.context().span().span_context().clone();
    if !own.is_valid() {
        return ctx.next_hop();
    }
    let tp = TraceParent {
        trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(own.span_id().to_bytes()),
        flags: own.trace_flags().to_u8(),
    };
    ctx.set_trace_parent(tp);
    tp
}

fn trace_id(id: u128) -> TraceId {
    TraceId::from_bytes(id.to_be_bytes())
}

/// The OpenTelemetry context of the remote span `parent`, with the `tracestate` that
/// travels beside it in [`OTEL_SPAN`] (an invalid one is dropped, as W3C asks).
fn remote_parent(parent: TraceParent, ctx: &Context) -> opentelemetry::Context {
    let state = ctx
        .get(OTEL_SPAN)
        .and_then(|o| o.get("tracestate"))
        .and_then(|v| v.as_str())
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    let remote = SpanContext::new(
        trace_id(parent.trace_id),
        SpanId::from_bytes(parent.span_id.to_be_bytes()),
        TraceFlags::new(parent.flags),
        true,
        state,
    );
    opentelemetry::Context::new().with_remote_span_context(remote)
}
