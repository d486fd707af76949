//! Calls between a Rust client and a Rust server over gRPC on loopback (spec §7): round
//! trip, context, errors in the Response, statuses, deadlines.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use pitaya_cluster::protos::{self, Request};
use pitaya_cluster::{RpcClient, RpcServer};
use pitaya_core::Context;
use pitaya_grpc::NO_CONTEXT;
use pitaya_grpc::proto::pitaya_client::PitayaClient;
use prost::Message;
use support::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_between_two_servers() {
    let cluster = Cluster::default();
    let mut backend = start_server(&cluster, "game", false).await;
    let client = cluster.client("connector", &client_config(Duration::from_secs(2), false), None);

    // The caller's own reqTimeout is replaced by the configured request timeout.
    let mut ctx = Context::new();
    ctx.insert("reqTimeout", "1m30s");
    ctx.insert("peer.id", "connector-1");
    let mut sent = request("game.svc.echo", b"x");
    sent.frontend_id = "connector-1".into();
    sent.session =
        Some(protos::Session { id: 7, uid: "u1".into(), data: Bytes::from_static(b"{}") });
    let resp = bounded("call", client.call(&backend.me, ctx, sent.clone())).await.expect("call");

    let Seen::Request(seen) = next_seen(&mut backend.seen).await else { panic!("not a request") };
    // The handler answers with the request it received: both sides agree, field by field.
    assert_eq!(Request::decode(resp.data).unwrap(), seen);
    let metadata = String::from_utf8(seen.metadata.to_vec()).unwrap();
    assert_eq!(metadata, r#"{"peer.id":"connector-1","reqTimeout":"2s"}"#);
    sent.metadata = seen.metadata.clone();
    assert_eq!(seen, sent);

    // Without any context the gRPC client still writes its timeout.
    bounded("call", client.call(&backend.me, Context::new(), request("game.svc.echo", b"")))
        .await
        .unwrap();
    let Seen::Request(seen) = next_seen(&mut backend.seen).await else { panic!("not a request") };
    assert_eq!(seen.metadata, Bytes::from_static(br#"{"reqTimeout":"2s"}"#));

    client.stop().await;
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_come_back_with_status_ok() {
    let cluster = Cluster::default();
    let backend = start_server(&cluster, "game", false).await;
    let client = cluster.client("connector", &client_config(Duration::from_secs(2), false), None);

    let resp =
        bounded("call", client.call(&backend.me, Context::new(), request("game.svc.fail", b"")))
            .await
            .expect("an error Response is not an Err");
    let error = resp.error.expect("Response.error passes through");
    assert_eq!((error.code.as_str(), error.msg.as_str()), ("PIT-404", "route not found"));
    assert_eq!(error.metadata.get("route").map(String::as_str), Some("game.svc.fail"));

    // A handler that panics fails its call only.
    let err =
        bounded("call", client.call(&backend.me, Context::new(), request("g.svc.panic", b"")))
            .await
            .unwrap_err();
    assert_eq!(err.code(), "PIT-000");
    assert!(err.message().starts_with("rpc error: code = Internal desc = "), "{}", err.message());
    bounded("call", client.call(&backend.me, Context::new(), request("g.svc.echo", b"")))
        .await
        .expect("the server goes on");
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_context_gets_status_unknown() {
    let cluster = Cluster::default();
    let mut backend = start_server(&cluster, "game", false).await;
    let uri = format!("http://{}", backend.server.local_addr());
    let mut raw = bounded("connect", PitayaClient::connect(uri)).await.unwrap();

    for metadata in [&b""[..], b"not json"] {
        let mut req = request("game.svc.echo", b"");
        req.metadata = Bytes::copy_from_slice(metadata);
        let status = bounded("call", raw.call(req)).await.unwrap_err();
        assert_eq!((status.code(), status.message()), (Code::Unknown, NO_CONTEXT));
    }
    nothing_more(&mut backend.seen, Duration::from_millis(100)).await;

    // `{}` is enough (spec §6.5).
    let mut req = request("game.svc.echo", b"");
    req.metadata = Bytes::from_static(b"{}");
    let resp = bounded("call", raw.call(req.clone())).await.unwrap().into_inner();
    assert_eq!(Request::decode(resp.data).unwrap(), req);
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_a_timeout() {
    let cluster = Cluster::default();
    let backend = start_server(&cluster, "game", false).await;
    let client =
        cluster.client("connector", &client_config(Duration::from_millis(300), false), None);

    let started = Instant::now();
    let err = bounded(
        "call",
        client.call(&backend.me, Context::new(), request("game.svc.sleep", b"1000")),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    // Go's gRPC client passes grpc-go's deadline error through: the client of a forwarded
    // request gets {"code":"PIT-000","msg":"rpc error: code = DeadlineExceeded desc =
    // context deadline exceeded"}, no metadata (not the NATS client's PIT-408).
    assert_eq!(
        (err.code(), err.message()),
        ("PIT-000", "rpc error: code = DeadlineExceeded desc = context deadline exceeded")
    );
    assert!(err.metadata().is_empty(), "{:?}", err.metadata());
    let body = pitaya_serialize::gojson::to_vec(&err.to_payload()).unwrap();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"code":"PIT-000","msg":"rpc error: code = DeadlineExceeded desc = context deadline exceeded"}"#
    );

    // A call that fits the deadline still works.
    let resp =
        bounded("call", client.call(&backend.me, Context::new(), request("g.svc.sleep", b"10")))
            .await
            .unwrap();
    assert_eq!(resp.data, Bytes::from_static(b"slept"));
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_concurrently() {
    let cluster = Cluster::default();
    let backend = start_server(&cluster, "game", false).await;
    let client = cluster.client("connector", &client_config(Duration::from_secs(5), false), None);

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (client, target) = (client.clone(), backend.me.clone());
            tokio::spawn(async move {
                client.call(&target, Context::new(), request("g.s.block", b"")).await
            })
        })
        .collect();
    bounded("8 handlers at once", backend.handler.until_active(8)).await;
    backend.handler.release();
    for call in calls {
        let resp = bounded("call", call).await.unwrap().unwrap();
        assert_eq!(resp.data, Bytes::from_static(b"released"));
    }
    backend.server.stop().await;
}
