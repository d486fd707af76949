//! Connection management (spec §7): eager and lazy dialing, servers that leave and come
//! back, servers without a usable address, dial failures, and stopping both sides.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pitaya_cluster::{
    GRPC_EXTERNAL_HOST_KEY, GRPC_HOST_KEY, GRPC_PORT_KEY, RpcClient, RpcServer, SdListener, Server,
    ServiceDiscovery,
};
use pitaya_core::Context;
use pitaya_grpc::{GrpcRpcClient, GrpcRpcServer, NO_CONNECTION, STOP_TIMEOUT};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

const QUIET: Duration = Duration::from_millis(300);

/// A TCP proxy to `target` that counts the connections it accepts.
struct CountingProxy {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    changed: Arc<Notify>,
}

impl CountingProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind(any_port()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let changed = Arc::new(Notify::new());
        let (count, notify) = (accepted.clone(), changed.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                notify.notify_waiters();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { addr, accepted, changed }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    async fn until_accepted(&self, n: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.accepted() >= n {
                return;
            }
            changed.await;
        }
    }
}

/// A started server reachable only through a counting proxy, and its record.
async fn proxied_server(cluster: &Cluster) -> (Started, CountingProxy, Server) {
    let started = start_server(&Cluster::default(), "game", false).await;
    let proxy = CountingProxy::start(started.server.local_addr()).await;
    let mut via_proxy = record("game", false, proxy.addr);
    via_proxy.id = started.me.id.clone();
    cluster.register(via_proxy.clone()).await;
    (started, proxy, via_proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_clients_dial_on_discovery() {
    let cluster = Cluster::default();
    let client = cluster.client("connector", &client_config(Duration::from_secs(2), false), None);
    let (backend, proxy, target) = proxied_server(&cluster).await;
    bounded("eager dial", proxy.until_accepted(1)).await;

    let resp = bounded("call", client.call(&target, Context::new(), request("g.s.sleep", b"0")))
        .await
        .unwrap();
    assert_eq!(resp.data, Bytes::from_static(b"slept"));
    // The call used the connection made on discovery.
    assert_eq!(proxy.accepted(), 1);
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_clients_dial_on_first_use() {
    let cluster = Cluster::default();
    let client = cluster.client("connector", &client_config(Duration::from_secs(2), true), None);
    let (backend, proxy, target) = proxied_server(&cluster).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(proxy.accepted(), 0, "a lazy client dials nothing on discovery");

    for _ in 0..2 {
        let resp =
            bounded("call", client.call(&target, Context::new(), request("g.s.sleep", b"0")))
                .await
                .unwrap();
        assert_eq!(resp.data, Bytes::from_static(b"slept"));
    }
    assert_eq!(proxy.accepted(), 1);
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_never_dials_itself() {
    let backend = start_server(&Cluster::default(), "connector", true).await;
    let proxy = CountingProxy::start(backend.server.local_addr()).await;
    let me = Arc::new(record("connector", true, proxy.addr));
    let client = GrpcRpcClient::new(
        &client_config(Duration::from_secs(1), false),
        String::new(),
        me.clone(),
        None,
    );
    client.server_added(&me);
    tokio::time::sleep(QUIET).await;
    assert_eq!(proxy.accepted(), 0);
    let err =
        bounded("call", client.call(&me, Context::new(), request("c.s.m", b""))).await.unwrap_err();
    assert_eq!((err.code(), err.message()), ("PIT-000", NO_CONNECTION));
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_leaves_and_comes_back() {
    let cluster = Cluster::default();
    let client = cluster.client("connector", &client_config(Duration::from_secs(2), false), None);
    let backend = start_server(&cluster, "game", false).await;
    let call = |target: Server| {
        let client = client.clone();
        async move { client.call(&target, Context::new(), request("g.s.sleep", b"0")).await }
    };
    bounded("call", call((*backend.me).clone())).await.unwrap();

    backend.sd.stop().await;
    let err = bounded("call", call((*backend.me).clone())).await.unwrap_err();
    assert_eq!((err.code(), err.message()), ("PIT-000", NO_CONNECTION));
    backend.server.stop().await;

    // Same server id, new process on a new port.
    let server = GrpcRpcServer::bind(any_port()).await.unwrap();
    assert_ne!(server.local_addr(), backend.server.local_addr());
    let (handler, _seen) = TestHandler::new();
    server.start(handler).await.unwrap();
    let mut back = record("game", false, server.local_addr());
    back.id = backend.me.id.clone();
    cluster.register(back.clone()).await;
    let resp = bounded("call", call(back)).await.unwrap();
    assert_eq!(resp.data, Bytes::from_static(b"slept"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_without_a_usable_address_get_no_client() {
    let cluster = Cluster::default();
    let client = cluster.client("connector", &client_config(Duration::from_secs(1), false), None);
    let with = |pairs: &[(&str, &str)]| {
        let metadata: BTreeMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Server::new("game", false, metadata)
    };
    let cases = [
        with(&[]),
        with(&[(GRPC_PORT_KEY, "3434")]),
        with(&[(GRPC_HOST_KEY, "127.0.0.1")]),
        with(&[(GRPC_HOST_KEY, "127.0.0.1"), (GRPC_PORT_KEY, "abc")]),
        with(&[(GRPC_HOST_KEY, "127.0.0.1"), (GRPC_PORT_KEY, "99999")]),
        with(&[(GRPC_HOST_KEY, "not a host"), (GRPC_PORT_KEY, "3434")]),
        // An external host without an external port: the internal one is not used.
        with(&[
            (GRPC_HOST_KEY, "127.0.0.1"),
            (GRPC_PORT_KEY, "3434"),
            (GRPC_EXTERNAL_HOST_KEY, "h"),
        ]),
    ];
    for server in cases {
        cluster.register(server.clone()).await;
        let err = bounded("call", client.call(&server, Context::new(), request("g.s.m", b"")))
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.message()), ("PIT-000", NO_CONNECTION), "{server:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dial_failures_are_unavailable() {
    let closed = {
        let listener = TcpListener::bind(any_port()).await.unwrap();
        listener.local_addr().unwrap()
    };
    for lazy in [false, true] {
        let cluster = Cluster::default();
        let client =
            cluster.client("connector", &client_config(Duration::from_secs(2), lazy), None);
        let target = record("game", false, closed);
        cluster.register(target.clone()).await;
        let started = Instant::now();
        let err = bounded("call", client.call(&target, Context::new(), request("g.s.m", b"")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "PIT-000");
        assert!(
            err.message().starts_with("rpc error: code = Unavailable desc = "),
            "{}",
            err.message()
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stop_lets_calls_in_flight_finish() {
    let cluster = Cluster::default();
    let client = cluster.client("connector", &client_config(Duration::from_secs(5), false), None);
    let backend = Arc::new(start_server(&cluster, "game", false).await);

    let target = backend.me.clone();
    let caller = client.clone();
    let call = tokio::spawn(async move {
        caller.call(&target, Context::new(), request("g.s.block", b"")).await
    });
    bounded("call in flight", backend.handler.until_active(1)).await;
    let stopping = backend.clone();
    let stop = tokio::spawn(async move { stopping.server.stop().await });
    tokio::time::sleep(QUIET).await;
    assert!(!stop.is_finished(), "stop waits for the call in flight");

    backend.handler.release();
    let resp = bounded("call", call).await.unwrap().expect("the call in flight is answered");
    assert_eq!(resp.data, Bytes::from_static(b"released"));
    bounded("stop", stop).await.unwrap();

    // Stopped: nothing is served any more.
    let err = bounded("call", client.call(&backend.me, Context::new(), request("g.s.m", b"")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PIT-000");
    assert!(err.message().starts_with("rpc error: code = Unavailable"), "{}", err.message());
    bounded("stop again", backend.server.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_stop_is_bounded() {
    let cluster = Cluster::default();
    let client = cluster.client("connector", &client_config(Duration::from_secs(20), false), None);
    let backend = Arc::new(start_server(&cluster, "game", false).await);
    let (target, caller) = (backend.me.clone(), client.clone());
    let call = tokio::spawn(async move {
        caller.call(&target, Context::new(), request("g.s.block", b"")).await
    });
    bounded("call in flight", backend.handler.until_active(1)).await;

    let started = Instant::now();
    bounded("stop", backend.server.stop()).await;
    assert!(started.elapsed() < STOP_TIMEOUT + Duration::from_secs(2), "{:?}", started.elapsed());
    let err = bounded("call", call).await.unwrap().unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        ("PIT-000", "rpc error: code = Unavailable desc = rpc server: stopped")
    );
    assert_eq!(backend.handler.finished(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stop_waits_then_refuses() {
    let cluster = Cluster::default();
    let client = cluster.client("connector", &client_config(Duration::from_secs(5), false), None);
    let backend = start_server(&cluster, "game", false).await;

    let (target, caller) = (backend.me.clone(), client.clone());
    let call = tokio::spawn(async move {
        caller.call(&target, Context::new(), request("g.s.block", b"")).await
    });
    bounded("call in flight", backend.handler.until_active(1)).await;
    let stopping = client.clone();
    let stop = tokio::spawn(async move { stopping.stop().await });
    tokio::time::sleep(QUIET).await;
    assert!(!stop.is_finished(), "stop waits for the call in flight");
    backend.handler.release();
    assert_eq!(bounded("call", call).await.unwrap().unwrap().data, Bytes::from_static(b"released"));
    bounded("stop", stop).await.unwrap();

    let err = bounded("call", client.call(&backend.me, Context::new(), request("g.s.m", b"")))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "rpc client: stopped");
    // Servers discovered after stop are ignored; stop is idempotent.
    client.server_added(&Arc::new(record("game", false, backend.server.local_addr())));
    bounded("stop again", client.stop()).await;
    backend.server.stop().await;
}
