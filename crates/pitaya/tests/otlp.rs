//! Feature `otlp` end to end: two servers in one process over `MemoryCluster` export their
//! spans to an in-process OTLP/gRPC collector, and the spans of each hop join one trace
//! with the caller's span as parent. Each RPC runs in a task of its own, so only the
//! `traceparent` in `Request.metadata` can link the hops, as over NATS or gRPC.
//!
//! One test in this binary: it installs the global `tracing` subscriber.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use pitaya::client::{Client, ClientError, ClientOptions};
use pitaya::cluster::memory::{MemoryCluster, MemoryRpcClient};
use pitaya::cluster::protos::{KickMsg, Push, Request, Response};
use pitaya::cluster::{ClusterParts, RpcClient, Server};
use pitaya::{AppHandle, BoxFuture, Component, Context, Error, RemoteComponent, RunningApp};
use tracing_subscriber::layer::SubscriberExt as _;

/// Bound on the whole test.
const LIMIT: Duration = Duration::from_secs(60);

/// A span as the collector got it, with the `service.name` of its resource.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    span: Span,
}

impl Got {
    fn attr(&self, key: &str) -> Option<String> {
        self.span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
            match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                Value::IntValue(i) => Some(i.to_string()),
                other => Some(format!("{other:?}")),
            }
        })
    }
}

/// The OTLP trace service, keeping every span it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Got>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for ss in rs.scope_spans {
                got.extend(ss.spans.into_iter().map(|span| Got { service: service.clone(), span }));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Collector {
    /// Serves on an ephemeral loopback port until the test process ends.
    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let svc = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        addr
    }

    fn spans(&self) -> Vec<Got> {
        self.0.lock().unwrap().clone()
    }
}

/// The one span named `name` whose attribute `route` is `route` (and `kind`, if given).
fn find<'a>(spans: &'a [Got], name: &str, route: &str, kind: Option<&str>) -> Option<&'a Got> {
    spans.iter().find(|g| {
        g.span.name == name
            && g.attr("route").as_deref() == Some(route)
            && kind.is_none_or(|k| g.attr("kind").as_deref() == Some(k))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that `child` is in `parent`'s trace with `parent` as its parent span.
fn assert_child(child: &Got, parent: &Got) {
    assert_eq!(hex(&child.span.trace_id), hex(&parent.span.trace_id), "one trace across the hop");
    assert_eq!(
        hex(&child.span.parent_span_id),
        hex(&parent.span.span_id),
        "{} is a child of exactly {}",
        child.span.name,
        parent.span.name
    );
    // What the logs of both hops show is the exported trace id.
    assert_eq!(child.attr("trace_id"), Some(hex(&parent.span.trace_id)));
    assert_eq!(parent.attr("trace_id"), Some(hex(&parent.span.trace_id)));
}

/// Checks that `ancestor` is on the parent chain of `span` (through the spans collected).
fn assert_descends(span: &Got, ancestor: &Got, spans: &[Got]) {
    let mut parent = span.span.parent_span_id.clone();
    for _ in 0..spans.len() {
        if parent == ancestor.span.span_id {
            return;
        }
        match spans.iter().find(|g| g.span.span_id == parent) {
            Some(p) => parent = p.span.parent_span_id.clone(),
            None => break,
        }
    }
    panic!("{} does not descend from {}", span.span.name, ancestor.span.name);
}

/// Backend `game`: a handler, a failing handler, a handler that calls back the
/// frontend, and a remote.
fn game() -> (Component, RemoteComponent) {
    async fn echo(v: Bytes) -> Result<Bytes, Error> {
        Ok(v)
    }
    async fn fail() -> Result<Bytes, Error> {
        Err(Error::new("PIT-555", "failed on purpose"))
    }
    async fn nested(app: AppHandle, ctx: Context) -> Result<Bytes, Error> {
        let s: String = app.rpc_no_args(&ctx, "connector.remote.hello").await?;
        Ok(Bytes::from(s))
    }
    let handlers =
        Component::new("svc").handler("echo", echo).handler("fail", fail).handler("nested", nested);
    (handlers, hello_remote())
}

fn hello_remote() -> RemoteComponent {
    RemoteComponent::new("remote")
        .remote_no_args("hello", |_r: pitaya::RemoteRequest| async { Ok(String::from("hello")) })
}

/// Frontend `connector`: a handler that makes a user RPC to `game`.
fn connector() -> Component {
    async fn callgame(app: AppHandle, ctx: Context) -> Result<Bytes, Error> {
        let s: String = app.rpc_no_args(&ctx, "game.remote.hello").await?;
        Ok(Bytes::from(s))
    }
    Component::new("svc").handler("callgame", callgame)
}

/// The memory RPC client with each call run in a task of its own, as a network hop is:
/// the server side then sees nothing of the caller's span but the request's metadata.
struct Detached(Arc<MemoryRpcClient>);

impl RpcClient for Detached {
    fn call(
        &self,
        target: &Server,
        ctx: Context,
        req: Request,
    ) -> BoxFuture<'_, Result<Response, Error>> {
        let (inner, target) = (self.0.clone(), target.clone());
        let task = tokio::spawn(async move { inner.call(&target, ctx, req).await });
        Box::pin(async move { task.await.map_err(|e| Error::unknown(e.to_string()))? })
    }

    fn send_push<'a>(
        &'a self,
        frontend_type: &'a str,
        frontend_id: Option<&'a str>,
        push: Push,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.0.send_push(frontend_type, frontend_id, push)
    }

    fn send_kick<'a>(
        &'a self,
        frontend_type: &'a str,
        kick: KickMsg,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.0.send_kick(frontend_type, kick)
    }

    fn broadcast_session_bind<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.0.broadcast_session_bind(uid)
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        self.0.stop()
    }
}

/// Joins `cluster` with a [`Detached`] client.
fn detached(b: pitaya::Builder, cluster: &MemoryCluster) -> pitaya::Builder {
    let cluster = cluster.clone();
    b.cluster(move |setup| async move {
        let (discovery, client, server) = cluster.join((*setup.server).clone());
        let client = Arc::new(Detached(Arc::new(client)));
        Ok(ClusterParts::new(Arc::new(discovery), client, Arc::new(server)))
    })
}

async fn start(cluster: &MemoryCluster) -> (RunningApp, RunningApp) {
    let (handlers, remote) = game();
    let game = detached(pitaya::Pitaya::builder(), cluster)
        .server_type("game")
        .frontend(false)
        .component(handlers)
        .remote(remote)
        .build()
        .expect("build game")
        .start()
        .await
        .expect("start game");
    let front = detached(pitaya::Pitaya::builder(), cluster)
        .server_type("connector")
        .frontend(true)
        .tcp("127.0.0.1:0")
        .component(connector())
        .remote(hello_remote())
        .build()
        .expect("build connector")
        .start()
        .await
        .expect("start connector");
    (game, front)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_every_hop_join_one_trace() {
    tokio::time::timeout(LIMIT, run()).await.expect("the test exceeded its time limit");
}

async fn run() {
    let collector = Collector::default();
    let addr = collector.start().await;
    let cfg = pitaya::otel::OtlpConfig::new("pitaya-otlp-test")
        .server_id("test-1")
        .endpoint(format!("http://{addr}"))
        .timeout(Duration::from_secs(5));
    let (otel, guard) = pitaya::otel::layer(&cfg).expect("layer");
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel))
        .expect("the only subscriber of this binary");
    let guard = Arc::new(guard);

    let cluster = MemoryCluster::new();
    let (_game, front) = start(&cluster).await;
    let opts =
        ClientOptions { request_timeout: Duration::from_secs(10), ..ClientOptions::default() };
    let (c, _pushes) =
        Client::connect(&front.local_addrs()[0].1.to_string(), opts).await.expect("connect");

    assert_eq!(&c.request("game.svc.echo", "hi").await.unwrap()[..], b"hi");
    let e = c.request("game.svc.fail", "").await.unwrap_err();
    assert!(matches!(e, ClientError::Server(_)), "{e:?}");
    assert_eq!(&c.request("connector.svc.callgame", "").await.unwrap()[..], b"hello");
    assert_eq!(&c.request("game.svc.nested", "").await.unwrap()[..], b"hello");

    // Spans are exported when they close, which can be just after the reply was written:
    // flush until the last expected one is there (bounded).
    let mut spans = Vec::new();
    for _ in 0..50 {
        let g = guard.clone();
        tokio::task::spawn_blocking(move || g.force_flush()).await.unwrap().expect("flush");
        spans = collector.spans();
        let complete = [
            ("pitaya.rpc.server", "game.svc.echo"),
            ("pitaya.forward", "game.svc.fail"),
            ("pitaya.rpc.server", "game.remote.hello"),
            ("pitaya.rpc.server", "connector.remote.hello"),
            ("pitaya.forward", "game.svc.nested"),
        ]
        .iter()
        .all(|(name, route)| find(&spans, name, route, None).is_some());
        if complete {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<_> = spans.iter().map(|g| (&g.span.name, g.attr("route"))).collect();
    let get = |name: &str, route: &str, kind: Option<&str>| {
        find(&spans, name, route, kind)
            .unwrap_or_else(|| panic!("no {name} span for {route}; got {names:?}"))
    };

    // Forward frontend -> backend: the server span is the forward span's child.
    let fwd = get("pitaya.forward", "game.svc.echo", None);
    let srv = get("pitaya.rpc.server", "game.svc.echo", Some("sys"));
    assert_child(srv, fwd);
    assert_eq!(fwd.service, "pitaya-otlp-test");
    assert_eq!(fwd.attr("code"), None, "no code on success");

    // A failing handler: its PIT code is on both sides.
    let fwd_fail = get("pitaya.forward", "game.svc.fail", None);
    let srv_fail = get("pitaya.rpc.server", "game.svc.fail", Some("sys"));
    assert_child(srv_fail, fwd_fail);
    assert_eq!(fwd_fail.attr("code").as_deref(), Some("PIT-555"));
    assert_eq!(srv_fail.attr("code").as_deref(), Some("PIT-555"));
    assert_ne!(fwd_fail.span.trace_id, fwd.span.trace_id, "a trace per client request");

    // User RPC from a frontend handler.
    let rpc = get("pitaya.rpc", "game.remote.hello", None);
    let rpc_srv = get("pitaya.rpc.server", "game.remote.hello", Some("user"));
    assert_child(rpc_srv, rpc);

    // Frontend -> backend -> frontend: the nested RPC stays in the client request's trace,
    // under the backend's server span.
    let fwd_nested = get("pitaya.forward", "game.svc.nested", None);
    let srv_nested = get("pitaya.rpc.server", "game.svc.nested", Some("sys"));
    let rpc_nested = get("pitaya.rpc", "connector.remote.hello", None);
    let back = get("pitaya.rpc.server", "connector.remote.hello", Some("user"));
    assert_child(srv_nested, fwd_nested);
    assert_child(back, rpc_nested);
    assert_eq!(hex(&rpc_nested.span.trace_id), hex(&fwd_nested.span.trace_id));
    assert_descends(rpc_nested, srv_nested, &spans);

    c.close().await;
}
