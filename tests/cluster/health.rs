//! Routing around dead servers, in one process: a "ghost" backend is registered in the
//! memory cluster but serves nothing (as a SIGKILLed server before its lease expires),
//! so calls to it fail with no responders. The frontend must stop choosing it after the
//! first failure while a live server of its type exists, probe it, and take it back once
//! it answers. The process-level versions (SIGKILL, a cut NATS connection) are in
//! `faults`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pitaya::cluster::memory::{MemoryCluster, MemoryRpcServer};
use pitaya::cluster::protos::{self, BindMsg, KickAnswer, KickMsg, Push, Response, RpcType};
use pitaya::cluster::{RpcHandler, RpcServer, Server, ServiceDiscovery};
use pitaya::config::ConfigLoader;
use pitaya::{AppHandle, BoxFuture, Component, Error, Pitaya, RunningApp};

use crate::inproc::addr;
use crate::support::{connect, within};

const WHO: &str = "game.who.ami";
/// Go's text for a call nobody serves, which the memory transport also gives.
const NO_RESPONDERS: &str = "nats: no responders available for request";

fn who() -> Component {
    async fn ami(app: AppHandle) -> Result<Bytes, Error> {
        Ok(Bytes::from(app.server().map(|s| s.id.clone()).unwrap_or_default()))
    }
    Component::new("who").handler("ami", ami)
}

async fn start(
    cluster: &MemoryCluster,
    ty: &str,
    frontend: bool,
    f: impl FnOnce(pitaya::Builder) -> pitaya::Builder,
) -> RunningApp {
    let config = ConfigLoader::new().load().expect("config");
    let mut b = f(Pitaya::builder().server_type(ty).frontend(frontend).component(who()))
        .config(config)
        .memory_cluster(cluster);
    if frontend {
        b = b.tcp("127.0.0.1:0");
    }
    crate::inproc::start(b).await
}

/// A registered `game` server with nothing serving its RPCs yet.
struct Ghost {
    id: String,
    server: MemoryRpcServer,
    _discovery: pitaya::cluster::memory::MemoryDiscovery,
}

async fn ghost(cluster: &MemoryCluster) -> Ghost {
    let (discovery, _client, server) = cluster.join(Server::new("game", false, BTreeMap::new()));
    discovery.start().await.expect("register the ghost");
    Ghost { id: discovery.this_server().id.clone(), server, _discovery: discovery }
}

/// What a revived ghost serves: every request answered with its id, routes recorded.
#[derive(Default)]
struct Revived {
    id: String,
    routes: Mutex<Vec<(RpcType, String)>>,
}

impl Revived {
    fn saw(&self, kind: RpcType, route: &str) -> bool {
        self.routes.lock().unwrap().iter().any(|(k, r)| *k == kind && r == route)
    }
}

impl RpcHandler for Revived {
    fn handle_request(&self, req: protos::Request) -> BoxFuture<'static, Response> {
        let kind = RpcType::try_from(req.r#type).unwrap_or(RpcType::Sys);
        let route = req.msg.map(|m| m.route).unwrap_or_default();
        self.routes.lock().unwrap().push((kind, route));
        let data = Bytes::from(self.id.clone());
        Box::pin(async move { Response { data, error: None } })
    }
    fn handle_push(&self, _: Push) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async { Err(Error::unknown("not a frontend")) })
    }
    fn handle_kick(&self, _: KickMsg) -> BoxFuture<'static, Result<KickAnswer, Error>> {
        Box::pin(async { Err(Error::unknown("not a frontend")) })
    }
    fn handle_bind(&self, _: BindMsg) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// One request from a fresh session (fresh, so that a session's remembered server does
/// not hide the choice): the id of the server that answered, or the error message.
async fn ask_fresh(front: &str) -> Result<String, String> {
    let (c, _p) = connect(front).await;
    ask(&c).await
}

async fn ask(c: &pitaya::client::Client) -> Result<String, String> {
    match tokio::time::timeout(Duration::from_secs(5), c.request(WHO, "")).await {
        Ok(Ok(body)) => Ok(String::from_utf8_lossy(&body).into_owned()),
        Ok(Err(pitaya::client::ClientError::Server(p))) => Err(p.msg),
        Ok(Err(e)) => panic!("not an error response: {e}"),
        Err(_) => panic!("a request hung"),
    }
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_routed_around_probed_and_taken_back() {
    within(async {
        let cluster = MemoryCluster::new();
        let game = start(&cluster, "game", false, |b| b).await;
        let live = game.handle().server().expect("cluster mode").id.clone();
        let ghost = ghost(&cluster).await;
        let front = start(&cluster, "connector", true, |b| b).await;
        let front = addr(&front);

        // Fresh sessions choose at random: one soon hits the ghost and fails fast.
        let mut failed = None;
        for _ in 0..32 {
            if let Err(msg) = ask_fresh(&front).await {
                failed = Some(msg);
                break;
            }
        }
        assert_eq!(failed.as_deref(), Some(NO_RESPONDERS), "the ghost was never chosen");
        // From then on it is out: every request reaches the live server.
        for _ in 0..40 {
            assert_eq!(ask_fresh(&front).await, Ok(live.clone()));
        }

        // Revived: a probe (a user RPC nobody registers) reaches it within the backoff,
        // then client messages are routed to it again.
        let revived = Arc::new(Revived { id: ghost.id.clone(), ..Revived::default() });
        ghost.server.start(revived.clone()).await.expect("serve");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut back = false;
        while Instant::now() < deadline && !back {
            back = ask_fresh(&front).await.expect("no failure once the ghost answers") == ghost.id;
        }
        assert!(revived.saw(RpcType::User, "game.sys.probe"), "never probed");
        assert!(back, "the revived server was never chosen again");
        assert!(revived.saw(RpcType::Sys, WHO));
    })
    .await;
}

#[tokio::test]
async fn the_only_server_of_a_type_is_still_tried_and_each_call_fails_fast() {
    within(async {
        let cluster = MemoryCluster::new();
        let ghost = ghost(&cluster).await;
        let front = start(&cluster, "connector", true, |b| b).await;
        let (c, _p) = connect(&addr(&front)).await;
        for _ in 0..5 {
            let started = Instant::now();
            // Not "no servers available": the type is not refused, its server is tried.
            assert_eq!(ask(&c).await, Err(NO_RESPONDERS.to_owned()));
            assert!(started.elapsed() < Duration::from_secs(1), "a failure was not fast");
        }
        // The next call that it answers brings it back; no probe needed.
        let revived = Arc::new(Revived { id: ghost.id.clone(), ..Revived::default() });
        ghost.server.start(revived).await.expect("serve");
        assert_eq!(ask(&c).await, Ok(ghost.id.clone()));
    })
    .await;
}

#[tokio::test]
async fn a_custom_route_sees_only_the_servers_in_rotation() {
    within(async {
        let cluster = MemoryCluster::new();
        let game = start(&cluster, "game", false, |b| b).await;
        let live = game.handle().server().expect("cluster mode").id.clone();
        let ghost = ghost(&cluster).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (seen_in_route, ghost_id) = (seen.clone(), ghost.id.clone());
        // Prefers the ghost whenever it is offered.
        let front = start(&cluster, "connector", true, move |b| {
            b.route("game", move |r| {
                seen_in_route.lock().unwrap().push(r.servers.len());
                let pick = r.servers.iter().find(|s| s.id == ghost_id).unwrap_or(&r.servers[0]);
                Ok(pick.clone())
            })
        })
        .await;
        let (c, _p) = connect(&addr(&front)).await;
        assert_eq!(ask(&c).await, Err(NO_RESPONDERS.to_owned()));
        for _ in 0..5 {
            assert_eq!(ask(&c).await, Ok(live.clone()));
        }
        assert_eq!(*seen.lock().unwrap(), [2, 1, 1, 1, 1, 1]);
    })
    .await;
}
