//! Losing nats-server: reconnection after a restart, the die signal when reconnection
//! gives up, and failing first connections (spec §6.1). Each test runs its own server.

mod support;

use std::time::Duration;

use pitaya_cluster::protos::Push;
use pitaya_cluster::{DieSignal, RpcClient, RpcServer};
use pitaya_core::Context;
use pitaya_nats::{NatsRpcClient, NatsRpcServer};
use pitaya_test_services::Nats;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_and_user_subscriptions_survive_a_restart() {
    let mut nats = Nats::start();
    let url = nats.url();
    let mut frontend = start_server(&server_config(&url, 30, 75), "connector", true).await;
    let backend = start_server(&server_config(&url, 30, 75), "game", false).await;
    let client = connect_client(&url, server("connector", true)).await;
    let _user = frontend.server.subscribe_user("u1").await.unwrap();
    bounded("call", client.call(&backend.me, Context::new(), request("g.s.echo", b"")))
        .await
        .unwrap();

    tokio::task::block_in_place(|| nats.stop());
    let mut ctx = Context::new();
    ctx.insert("reqTimeout", "300ms");
    let err = bounded("call while down", client.call(&backend.me, ctx, request("g.s.echo", b"")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PIT-408");

    tokio::task::block_in_place(|| nats.restart());
    bounded("calls work again", async {
        loop {
            let mut ctx = Context::new();
            ctx.insert("reqTimeout", "300ms");
            match client.call(&backend.me, ctx, request("g.s.echo", b"")).await {
                Ok(_) => break,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await;
    // async-nats re-subscribes the per-user subjects too.
    bounded("pushes arrive again", async {
        for i in 0.. {
            let push = Push { route: "r".into(), uid: "u1".into(), data: format!("{i}").into() };
            client.send_push("connector", None, push).await.unwrap();
            let got = tokio::time::timeout(Duration::from_millis(300), async {
                loop {
                    if let Some(Seen::Push(_)) = frontend.seen.recv().await {
                        return;
                    }
                }
            });
            if got.await.is_ok() {
                break;
            }
        }
    })
    .await;

    client.stop().await;
    frontend.server.stop().await;
    backend.server.stop().await;
    assert!(frontend.die.reason().is_none());
    assert!(backend.die.reason().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_reconnecting_raises_the_die_signal() {
    let mut nats = Nats::start();
    let url = nats.url();
    let mut server_config = server_config(&url, 30, 75);
    server_config.max_reconnection_retries = 2;
    server_config.reconnect_wait = Duration::from_millis(50);
    let mut client_config = client_config(&url);
    client_config.max_reconnection_retries = 2;
    client_config.reconnect_wait = Duration::from_millis(50);
    let (server_die, client_die) = (DieSignal::new(), DieSignal::new());
    let server =
        NatsRpcServer::connect(&server_config, self::server("game", false), server_die.clone())
            .await
            .unwrap();
    let (handler, _seen) = TestHandler::new();
    server.start(handler).await.unwrap();
    let client =
        NatsRpcClient::connect(&client_config, self::server("connector", true), client_die.clone())
            .await
            .unwrap();

    tokio::task::block_in_place(|| nats.stop());
    let reason = bounded("server die signal", server_die.wait()).await;
    assert!(reason.contains("max reconnects"), "{reason}");
    bounded("client die signal", client_die.wait()).await;

    // Stopping a dead connection neither hangs nor fails.
    bounded("server stop", server.stop()).await;
    bounded("client stop", client.stop()).await;
    let push = Push { route: "r".into(), uid: "u".into(), data: Default::default() };
    assert!(client.send_push("connector", None, push).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_connection_that_fails_is_an_error() {
    let url = format!("nats://127.0.0.1:{}", pitaya_test_services::free_port());
    let mut config = client_config(&url);
    for retries in [0, 2] {
        config.max_reconnection_retries = retries;
        config.reconnect_wait = Duration::from_millis(50);
        let die = DieSignal::new();
        let result =
            bounded("connect", NatsRpcClient::connect(&config, server("c", true), die.clone()))
                .await;
        let err = result.err().expect("nothing listens there");
        assert_eq!(err.code(), "PIT-000");
        assert!(die.reason().is_none(), "a failed first connection is reported, not fatal");
    }
    let mut config = server_config(&url, 30, 75);
    config.max_reconnection_retries = 1;
    assert!(NatsRpcServer::connect(&config, server("g", false), DieSignal::new()).await.is_err());

    config.connect = "nats://127.0.0.1:notaport".into();
    assert!(NatsRpcServer::connect(&config, server("g", false), DieSignal::new()).await.is_err());
}

/// Readiness (Go's `IsConnected`): up while nats-server answers, down while it is gone
/// and the connection reconnects, up again once it is back, down after `stop`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_connected_follows_the_connection() {
    let mut nats = Nats::start();
    let url = nats.url();
    let started = start_server(&server_config(&url, 4, 16), "game", false).await;
    let client = connect_client(&url, server("connector", true)).await;
    assert!(client.is_connected() && started.server.is_connected());

    tokio::task::block_in_place(|| nats.stop());
    bounded("both see the loss", async {
        while client.is_connected() || started.server.is_connected() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    tokio::task::block_in_place(|| nats.restart());
    bounded("both reconnect", async {
        while !(client.is_connected() && started.server.is_connected()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    client.stop().await;
    started.server.stop().await;
    assert!(!client.is_connected() && !started.server.is_connected());
}
