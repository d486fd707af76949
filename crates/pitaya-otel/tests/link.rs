//! `link_incoming` / `link_outgoing` against an in-memory OpenTelemetry pipeline: which
//! span becomes the parent, and what the next hop is told.

use std::sync::{Arc, Mutex};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use pitaya_core::Context;
use pitaya_core::context::{OTEL_SPAN, TraceParent};
use pitaya_otel::{link_incoming, link_outgoing};
use tracing_subscriber::layer::SubscriberExt as _;

/// Keeps the spans it is given.
#[derive(Debug, Clone, Default)]
struct Memory(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Memory {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

impl Memory {
    fn span(&self, name: &str) -> SpanData {
        let spans = self.0.lock().unwrap();
        spans.iter().find(|s| s.name == name).cloned().unwrap_or_else(|| panic!("no span {name}"))
    }
}

/// Runs `f` with an OpenTelemetry layer exporting synchronously into the returned memory.
fn with_otel(f: impl FnOnce()) -> Memory {
    let memory = Memory::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(memory.clone()).build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    provider.shutdown().unwrap();
    memory
}

fn ids(s: &SpanData) -> (u128, u64) {
    (
        u128::from_be_bytes(s.span_context.trace_id().to_bytes()),
        u64::from_be_bytes(s.span_context.span_id().to_bytes()),
    )
}

fn parent_id(s: &SpanData) -> u64 {
    u64::from_be_bytes(s.parent_span_id.to_bytes())
}

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn carrying(tp: &str) -> Context {
    let mut ctx = Context::new();
    ctx.insert(OTEL_SPAN, serde_json::json!({"traceparent": tp, "tracestate": "vendor=v1"}));
    ctx
}

#[test]
fn without_a_layer_hops_get_random_children() {
    let mut ctx = carrying(CALLER);
    let caller = TraceParent::parse(CALLER).unwrap();
    let span = tracing::info_span!("no.layer");
    link_incoming(&span, &ctx);
    let hop = link_outgoing(&span, &mut ctx);
    assert_eq!(hop.trace_id, caller.trace_id);
    assert_ne!(hop.span_id, caller.span_id);
    assert_eq!(ctx.trace_parent(), Some(hop));
    // A context with no trace starts one.
    let mut fresh = Context::new();
    let root = link_outgoing(&span, &mut fresh);
    assert_ne!(root.trace_id, caller.trace_id);
    assert_eq!(fresh.trace_parent(), Some(root));
}

#[test]
fn incoming_span_is_a_child_of_the_caller() {
    let ctx = carrying(CALLER);
    let memory = with_otel(|| {
        let span = tracing::info_span!("server");
        link_incoming(&span, &ctx);
        span.in_scope(|| {});
    });
    let server = memory.span("server");
    let caller = TraceParent::parse(CALLER).unwrap();
    assert_eq!(ids(&server).0, caller.trace_id);
    assert_eq!(parent_id(&server), caller.span_id);
    assert!(server.parent_span_is_remote);
    assert_eq!(server.span_context.trace_state().get("vendor"), Some("v1"));
}

#[test]
fn outgoing_hop_names_the_span_itself() {
    let mut ctx = Context::new();
    let mut told = None;
    let memory = with_otel(|| {
        let span = tracing::info_span!("client");
        told = Some(link_outgoing(&span, &mut ctx));
    });
    let client = memory.span("client");
    let told = told.unwrap();
    assert_eq!((told.trace_id, told.span_id), ids(&client));
    assert_eq!(told.flags, 1, "sampled");
    assert_eq!(ctx.trace_parent(), Some(told));
}

#[test]
fn nested_call_stays_under_the_server_span() {
    let incoming = carrying(CALLER);
    let memory = with_otel(|| {
        let server = tracing::info_span!("server");
        link_incoming(&server, &incoming);
        server.in_scope(|| {
            let mut ctx = incoming.clone();
            let span = tracing::info_span!("nested");
            let told = link_outgoing(&span, &mut ctx);
            assert_eq!(ctx.trace_parent(), Some(told));
        });
    });
    let (server, nested) = (memory.span("server"), memory.span("nested"));
    assert_eq!(ids(&nested).0, ids(&server).0);
    assert_eq!(parent_id(&nested), ids(&server).1, "the local server span, not the caller");
}

#[test]
fn context_wins_over_a_span_of_another_trace() {
    let mut ctx = carrying(CALLER);
    let memory = with_otel(|| {
        let unrelated = tracing::info_span!("unrelated");
        unrelated.in_scope(|| {
            let span = tracing::info_span!("rpc");
            link_outgoing(&span, &mut ctx);
        });
    });
    let rpc = memory.span("rpc");
    let caller = TraceParent::parse(CALLER).unwrap();
    assert_eq!(ids(&rpc).0, caller.trace_id);
    assert_eq!(parent_id(&rpc), caller.span_id);
    assert_ne!(ids(&memory.span("unrelated")).0, caller.trace_id);
}
