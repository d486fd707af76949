//! Shared pieces of the integration tests: a recording [`RpcHandler`], a gRPC server on
//! loopback registered in an in-process discovery, a binding storage, raw gRPC clients
//! and servers that see the bytes, and bounded waits.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a different part")]

pub mod raw;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use pitaya_cluster::memory::{MemoryCluster, MemoryDiscovery};
use pitaya_cluster::protos::{self, BindMsg, KickAnswer, KickMsg, Msg, Push, Request, Response};
use pitaya_cluster::{
    BINDING_NOT_FOUND, BindingStorage, GRPC_HOST_KEY, GRPC_PORT_KEY, RpcHandler, RpcServer, Server,
    ServiceDiscovery,
};
use pitaya_config::model::GrpcClientConfig;
use pitaya_core::{BoxFuture, Error};
use pitaya_grpc::{GrpcRpcClient, GrpcRpcServer};
use prost::Message;
use tokio::sync::{Notify, mpsc};

/// Every test step is bounded by this.
pub const STEP: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test if it takes longer than [`STEP`].
pub async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// A server record of `server_type` reachable over gRPC at `addr`.
pub fn record(server_type: &str, frontend: bool, addr: SocketAddr) -> Server {
    let metadata = BTreeMap::from([
        (GRPC_HOST_KEY.to_owned(), addr.ip().to_string()),
        (GRPC_PORT_KEY.to_owned(), addr.port().to_string()),
    ]);
    Server::new(server_type, frontend, metadata)
}

/// A server record without any gRPC address.
pub fn bare(server_type: &str) -> Arc<Server> {
    Arc::new(Server::new(server_type, false, BTreeMap::new()))
}

/// The loopback address with an OS-chosen port.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A client configuration with `request_timeout`, lazy or not.
pub fn client_config(request_timeout: Duration, lazy: bool) -> GrpcClientConfig {
    let mut c = GrpcClientConfig::default();
    c.request_timeout = request_timeout;
    c.dial_timeout = Duration::from_secs(2);
    c.lazy_connection = lazy;
    c
}

/// An in-process cluster whose discovery tells the gRPC clients about the servers.
#[derive(Default)]
pub struct Cluster {
    memory: MemoryCluster,
    /// Kept alive: the discoveries hold their listeners.
    discoveries: Mutex<Vec<Arc<MemoryDiscovery>>>,
}

impl Cluster {
    /// A gRPC client for a new server of `server_type`, listening to this cluster.
    pub fn client(
        &self,
        server_type: &str,
        config: &GrpcClientConfig,
        bindings: Option<Arc<dyn BindingStorage>>,
    ) -> Arc<GrpcRpcClient> {
        let me = bare(server_type);
        let client = Arc::new(GrpcRpcClient::new(config, String::new(), me.clone(), bindings));
        let (sd, _, _) = self.memory.join((*me).clone());
        sd.add_listener(client.clone());
        self.discoveries.lock().unwrap().push(Arc::new(sd));
        client
    }

    /// Registers `server` in discovery: every client is told.
    pub async fn register(&self, server: Server) -> Arc<MemoryDiscovery> {
        let (sd, _, _) = self.memory.join(server);
        let sd = Arc::new(sd);
        sd.start().await.unwrap();
        self.discoveries.lock().unwrap().push(sd.clone());
        sd
    }
}

/// A started gRPC server with a fresh [`TestHandler`], registered in a [`Cluster`].
pub struct Started {
    pub me: Arc<Server>,
    pub server: GrpcRpcServer,
    pub handler: Arc<TestHandler>,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    pub sd: Arc<MemoryDiscovery>,
}

pub async fn start_server(cluster: &Cluster, server_type: &str, frontend: bool) -> Started {
    let server = bounded("bind", GrpcRpcServer::bind(any_port())).await.expect("binds");
    let me = record(server_type, frontend, server.local_addr());
    let (handler, seen) = TestHandler::new();
    bounded("server start", server.start(handler.clone())).await.expect("server starts");
    let sd = cluster.register(me.clone()).await;
    Started { me: Arc::new(me), server, handler, seen, sd }
}

/// A User RPC request for `route` with `data`.
pub fn request(route: &str, data: &[u8]) -> Request {
    Request {
        r#type: 1,
        msg: Some(Msg { route: route.to_owned(), data: data.to_vec().into(), ..Msg::default() }),
        ..Request::default()
    }
}

/// The next thing the handler saw, bounded.
pub async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    bounded("handler to see something", seen.recv()).await.expect("handler alive")
}

/// Asserts the handler sees nothing more within `quiet`.
pub async fn nothing_more(seen: &mut mpsc::UnboundedReceiver<Seen>, quiet: Duration) {
    if let Ok(Some(s)) = tokio::time::timeout(quiet, seen.recv()).await {
        panic!("unexpected delivery: {s:?}");
    }
}

/// What the handler saw, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Request(Request),
    Push(Push),
    Kick(KickMsg),
    Bind(BindMsg),
}

/// The uid no session of the test handler holds.
pub const GONE: &str = "gone";

/// Routes the test handler understands:
/// - `*.sleep`: sleeps `msg.data` milliseconds (ASCII), then answers `slept`;
/// - `*.block`: waits for [`TestHandler::release`], then answers `released`;
/// - `*.fail`: answers `Response.error{PIT-404, "route not found", {route}}`;
/// - `*.panic`: panics;
/// - anything else: answers `Response{data: <the Request as received, encoded>}`.
///
/// Pushes and kicks for [`GONE`] fail with `session not found`.
pub struct TestHandler {
    seen: mpsc::UnboundedSender<Seen>,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    active: AtomicUsize,
    started: Notify,
    gate: Notify,
    released: AtomicBool,
    finished: AtomicUsize,
}

impl TestHandler {
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<Seen>) {
        let (seen, rx) = mpsc::unbounded_channel();
        (Arc::new(Self { seen, state: Arc::default() }), rx)
    }

    /// Lets every `*.block` request, now and later, finish.
    pub fn release(&self) {
        self.state.released.store(true, Ordering::SeqCst);
        self.state.gate.notify_waiters();
    }

    /// Requests whose handling ran to the end.
    pub fn finished(&self) -> usize {
        self.state.finished.load(Ordering::SeqCst)
    }

    /// Resolves once `n` requests run at once.
    pub async fn until_active(&self, n: usize) {
        loop {
            let started = self.state.started.notified();
            tokio::pin!(started);
            started.as_mut().enable();
            if self.state.active.load(Ordering::SeqCst) >= n {
                return;
            }
            started.await;
        }
    }
}

impl State {
    async fn wait_release(&self) {
        loop {
            let gate = self.gate.notified();
            tokio::pin!(gate);
            gate.as_mut().enable();
            if self.released.load(Ordering::SeqCst) {
                return;
            }
            gate.await;
        }
    }
}

struct Active(Arc<State>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn session_not_found() -> Error {
    Error::unknown("session not found")
}

impl RpcHandler for TestHandler {
    fn handle_request(&self, req: Request) -> BoxFuture<'static, Response> {
        let _ = self.seen.send(Seen::Request(req.clone()));
        let state = self.state.clone();
        Box::pin(async move {
            state.active.fetch_add(1, Ordering::SeqCst);
            let _active = Active(state.clone());
            state.started.notify_waiters();
            let msg = req.msg.clone().unwrap_or_default();
            let response = if msg.route.ends_with(".sleep") {
                let ms = std::str::from_utf8(&msg.data).ok().and_then(|s| s.parse().ok());
                tokio::time::sleep(Duration::from_millis(ms.unwrap_or(0))).await;
                Response { data: Bytes::from_static(b"slept"), error: None }
            } else if msg.route.ends_with(".block") {
                state.wait_release().await;
                Response { data: Bytes::from_static(b"released"), error: None }
            } else if msg.route.ends_with(".fail") {
                let error = protos::Error {
                    code: "PIT-404".into(),
                    msg: "route not found".into(),
                    metadata: [("route".to_owned(), msg.route.clone())].into(),
                };
                Response { data: Bytes::new(), error: Some(error) }
            } else if msg.route.ends_with(".panic") {
                panic!("test handler asked to panic");
            } else {
                Response { data: req.encode_to_vec().into(), error: None }
            };
            state.finished.fetch_add(1, Ordering::SeqCst);
            response
        })
    }

    fn handle_push(&self, push: Push) -> BoxFuture<'static, Result<(), Error>> {
        let gone = push.uid == GONE;
        let _ = self.seen.send(Seen::Push(push));
        Box::pin(async move { if gone { Err(session_not_found()) } else { Ok(()) } })
    }

    fn handle_kick(&self, kick: KickMsg) -> BoxFuture<'static, Result<KickAnswer, Error>> {
        let gone = kick.user_id == GONE;
        let _ = self.seen.send(Seen::Kick(kick));
        Box::pin(async move {
            if gone { Err(session_not_found()) } else { Ok(KickAnswer { kicked: true }) }
        })
    }

    fn handle_bind(&self, bind: BindMsg) -> BoxFuture<'static, Result<(), Error>> {
        let _ = self.seen.send(Seen::Bind(bind));
        Box::pin(async { Ok(()) })
    }
}

/// A [`BindingStorage`] in a map: (frontend type, uid) → frontend id.
#[derive(Default)]
pub struct TestBindings {
    map: Mutex<HashMap<(String, String), String>>,
    pub lookups: AtomicUsize,
}

impl TestBindings {
    pub fn bind(&self, frontend_type: &str, uid: &str, fid: &str) {
        let key = (frontend_type.to_owned(), uid.to_owned());
        self.map.lock().unwrap().insert(key, fid.to_owned());
    }
}

impl BindingStorage for TestBindings {
    fn frontend_of<'a>(
        &'a self,
        uid: &'a str,
        frontend_type: &'a str,
    ) -> BoxFuture<'a, Result<String, Error>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let key = (frontend_type.to_owned(), uid.to_owned());
        let found = self.map.lock().unwrap().get(&key).cloned();
        Box::pin(async move { found.ok_or_else(|| Error::unknown(BINDING_NOT_FOUND)) })
    }

    fn put<'a>(&'a self, _uid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, _uid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}
