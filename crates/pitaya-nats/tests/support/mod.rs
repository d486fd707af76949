//! Shared pieces of the integration tests: a recording [`RpcHandler`], configurations
//! pointed at a test nats-server, and bounded waits.

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a different part")]

use std::collections::BTreeMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pitaya_cluster::protos::{BindMsg, KickAnswer, KickMsg, Msg, Push, Request, Response};
use pitaya_cluster::{DieSignal, RpcHandler, RpcServer, Server};
use pitaya_config::model::{NatsClientConfig, NatsServerConfig};
use pitaya_core::{BoxFuture, Error};
use pitaya_nats::{NatsRpcClient, NatsRpcServer};
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

/// A name no other test uses (tests share one nats-server).
pub fn unique(prefix: &str) -> String {
    let id = Server::new(prefix, false, BTreeMap::new()).id;
    format!("{prefix}-{}", &id[..8])
}

/// A server record of `server_type`.
pub fn server(server_type: &str, frontend: bool) -> Arc<Server> {
    Arc::new(Server::new(server_type, frontend, BTreeMap::new()))
}

/// Client options for `url`, reconnecting quickly.
pub fn client_config(url: &str) -> NatsClientConfig {
    let mut c = NatsClientConfig::default();
    c.connect = url.to_owned();
    c.reconnect_wait = Duration::from_millis(200);
    c
}

/// Server options for `url`, reconnecting quickly, with `services` handlers and a
/// request buffer of `messages`.
pub fn server_config(url: &str, services: usize, messages: usize) -> NatsServerConfig {
    let mut c = NatsServerConfig::default();
    c.connect = url.to_owned();
    c.reconnect_wait = Duration::from_millis(200);
    c.services = services;
    c.buffer.messages = NonZeroUsize::new(messages).unwrap();
    c
}

/// A started RPC server of `server_type` with a fresh [`TestHandler`].
pub struct Started {
    pub me: Arc<Server>,
    pub server: NatsRpcServer,
    pub handler: Arc<TestHandler>,
    pub seen: mpsc::UnboundedReceiver<Seen>,
    pub die: DieSignal,
}

pub async fn start_server(config: &NatsServerConfig, server_type: &str, frontend: bool) -> Started {
    let me = server(server_type, frontend);
    let die = DieSignal::new();
    let server = bounded("server connect", NatsRpcServer::connect(config, me.clone(), die.clone()))
        .await
        .expect("server connects");
    let (handler, seen) = TestHandler::new();
    bounded("server start", server.start(handler.clone())).await.expect("server starts");
    Started { me, server, handler, seen, die }
}

pub async fn connect_client(url: &str, me: Arc<Server>) -> NatsRpcClient {
    bounded("client connect", NatsRpcClient::connect(&client_config(url), me, DieSignal::new()))
        .await
        .expect("client connects")
}

/// A raw NATS connection, to see and send the bytes on the wire.
pub async fn raw(url: &str) -> async_nats::Client {
    bounded("raw connect", async_nats::connect(url)).await.expect("raw client connects")
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

/// Routes the test handler understands:
/// - `*.sleep`: sleeps `msg.data` milliseconds (ASCII), then answers `slept`;
/// - `*.block`: waits for [`TestHandler::release`], then answers `released` (pushes on
///   such a route wait too);
/// - anything else: answers `Response{data: <the Request as received, encoded>}`.
pub struct TestHandler {
    seen: mpsc::UnboundedSender<Seen>,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    active: AtomicUsize,
    max_active: AtomicUsize,
    started: Notify,
    gate: Notify,
    released: std::sync::atomic::AtomicBool,
}

impl TestHandler {
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<Seen>) {
        let (seen, rx) = mpsc::unbounded_channel();
        (Arc::new(Self { seen, state: Arc::default() }), rx)
    }

    /// The most requests that ran at once.
    pub fn max_active(&self) -> usize {
        self.state.max_active.load(Ordering::SeqCst)
    }

    /// Lets every `*.block` request, now and later, finish.
    pub fn release(&self) {
        self.state.released.store(true, Ordering::SeqCst);
        self.state.gate.notify_waiters();
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

impl RpcHandler for TestHandler {
    fn handle_request(&self, req: Request) -> BoxFuture<'static, Response> {
        let _ = self.seen.send(Seen::Request(req.clone()));
        let state = self.state.clone();
        Box::pin(async move {
            let now = state.active.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_active.fetch_max(now, Ordering::SeqCst);
            let _active = Active(state.clone());
            state.started.notify_waiters();
            let msg = req.msg.clone().unwrap_or_default();
            let data: Vec<u8> = if msg.route.ends_with(".sleep") {
                let ms = std::str::from_utf8(&msg.data).ok().and_then(|s| s.parse().ok());
                tokio::time::sleep(Duration::from_millis(ms.unwrap_or(0))).await;
                b"slept".to_vec()
            } else if msg.route.ends_with(".block") {
                state.wait_release().await;
                b"released".to_vec()
            } else {
                req.encode_to_vec()
            };
            Response { data: data.into(), error: None }
        })
    }

    /// A push on a route ending in `.block` is delivered only after [`Self::release`].
    fn handle_push(&self, push: Push) -> BoxFuture<'static, Result<(), Error>> {
        let block = push.route.ends_with(".block");
        let _ = self.seen.send(Seen::Push(push));
        let state = self.state.clone();
        Box::pin(async move {
            if block {
                state.wait_release().await;
            }
            Ok(())
        })
    }

    fn handle_kick(&self, kick: KickMsg) -> BoxFuture<'static, Result<KickAnswer, Error>> {
        let _ = self.seen.send(Seen::Kick(kick));
        Box::pin(async { Ok(KickAnswer { kicked: true }) })
    }

    fn handle_bind(&self, bind: BindMsg) -> BoxFuture<'static, Result<(), Error>> {
        let _ = self.seen.send(Seen::Bind(bind));
        Box::pin(async { Ok(()) })
    }
}
