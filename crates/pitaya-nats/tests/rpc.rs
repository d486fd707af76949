//! Request/reply between a Rust client and a Rust server, and as raw NATS traffic, against
//! a real nats-server (spec §6.3, Appendix A.2, A.5).

mod support;

use std::time::Duration;

use async_nats::client::RequestErrorKind;
use bytes::Bytes;
use futures_util::StreamExt;
use pitaya_cluster::protos::{Request, Response};
use pitaya_cluster::{RpcClient, RpcServer};
use pitaya_core::Context;
use pitaya_nats::server_subject;
use prost::Message;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_between_two_servers() {
    let url = pitaya_test_services::shared_nats_url();
    let game = unique("game");
    let mut backend = start_server(&server_config(&url, 30, 75), &game, false).await;
    let connector = server("connector", true);
    let client = connect_client(&url, connector.clone()).await;

    let resp =
        bounded("call", client.call(&backend.me, Context::new(), request("g.svc.echo", b"x")))
            .await
            .expect("call succeeds");
    let Seen::Request(seen) = next_seen(&mut backend.seen).await else { panic!("not a request") };
    // The handler's answer is the request it received, so both sides can be checked.
    assert_eq!(Request::decode(resp.data).unwrap(), seen);
    let msg = seen.msg.clone().unwrap();
    assert_eq!((msg.route.as_str(), &msg.data[..]), ("g.svc.echo", &b"x"[..]));
    assert!(msg.reply.starts_with("_INBOX."), "the server fills msg.reply: {:?}", msg.reply);
    assert_eq!(seen.metadata, Bytes::from_static(br#"{"reqTimeout":"5s"}"#));

    let mut ctx = Context::new();
    ctx.insert("reqTimeout", "1m30s");
    ctx.insert("peer.id", connector.id.clone());
    bounded("call", client.call(&backend.me, ctx, request("g.svc.echo", b""))).await.unwrap();
    let Seen::Request(seen) = next_seen(&mut backend.seen).await else { panic!("not a request") };
    let metadata = String::from_utf8(seen.metadata.to_vec()).unwrap();
    assert_eq!(metadata, format!(r#"{{"peer.id":"{}","reqTimeout":"1m30s"}}"#, connector.id));

    client.stop().await;
    backend.server.stop().await;
    assert!(backend.die.reason().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bytes_on_the_wire() {
    let url = pitaya_test_services::shared_nats_url();
    let target = server(&unique("game"), false);
    let raw = raw(&url).await;
    let mut sub = raw.subscribe(server_subject(&target.server_type, &target.id)).await.unwrap();
    raw.flush().await.unwrap();
    let client = connect_client(&url, server("connector", true)).await;

    let call = tokio::spawn(async move {
        let resp = client.call(&target, Context::new(), request("game.svc.m", b"")).await;
        client.stop().await;
        resp
    });
    let wire = bounded("request on the wire", sub.next()).await.unwrap();
    let reply = wire.reply.clone().expect("a request carries a reply subject");
    assert!(reply.starts_with("_INBOX."), "{reply}");
    // type User, msg{route}, no msg.reply (field 4), metadata with the default timeout.
    let mut expected = vec![0x08, 0x01, 0x1a, 0x0c, 0x12, 0x0a];
    expected.extend_from_slice(b"game.svc.m");
    expected.extend_from_slice(&[0x2a, 0x13]);
    expected.extend_from_slice(br#"{"reqTimeout":"5s"}"#);
    assert_eq!(wire.payload.to_vec(), expected);

    // Answer with Go's Notify ack (A.2), `0a 03 61 63 6b`.
    raw.publish(reply, Bytes::from_static(&[0x0a, 0x03, b'a', b'c', b'k'])).await.unwrap();
    let resp = bounded("reply", call).await.unwrap().expect("call succeeds");
    assert_eq!(resp, Response { data: Bytes::from_static(b"ack"), error: None });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_built_requests_and_bad_payloads() {
    let url = pitaya_test_services::shared_nats_url();
    let game = unique("game");
    let mut backend = start_server(&server_config(&url, 30, 75), &game, false).await;
    let subject = server_subject(&backend.me.server_type, &backend.me.id);
    let raw = raw(&url).await;

    // Spec A.5 layout: type User, msg{route, data = TestRequest{msg:"x"}}, frontendID,
    // metadata.
    let fid = "f8208c66-6960-49ce-a377-efebc95fc107";
    let mut bytes = vec![0x08, 0x01, 0x1a, 0x2e, 0x12, 0x27];
    bytes.extend_from_slice(b"game.testremotesvc.rpctestptrreturnsptr");
    bytes.extend_from_slice(&[0x1a, 0x03, 0x0a, 0x01, b'x', 0x22, 0x24]);
    bytes.extend_from_slice(fid.as_bytes());
    bytes.extend_from_slice(&[0x2a, 0x02, b'{', b'}']);
    let reply = bounded("raw request", raw.request(subject.clone(), bytes.into())).await.unwrap();
    let echoed = Request::decode(Response::decode(reply.payload).unwrap().data).unwrap();
    assert_eq!(echoed.r#type, 1);
    assert_eq!(echoed.frontend_id, fid);
    assert_eq!(echoed.msg.unwrap().data, Bytes::from_static(&[0x0a, 0x01, b'x']));
    next_seen(&mut backend.seen).await;

    // Any reply subject works, not only an inbox.
    let custom = format!("{}.custom.reply", unique("r"));
    let mut replies = raw.subscribe(custom.clone()).await.unwrap();
    let req = request("g.svc.echo", b"c").encode_to_vec();
    raw.publish_with_reply(subject.clone(), custom.clone(), req.into()).await.unwrap();
    let reply = bounded("custom reply", replies.next()).await.unwrap();
    let echoed = Request::decode(Response::decode(reply.payload).unwrap().data).unwrap();
    assert_eq!(echoed.msg.unwrap().reply, custom);
    next_seen(&mut backend.seen).await;

    // Not a Request, and a Request without msg: dropped, no reply (spec §6.3).
    for junk in [vec![0xff, 0xff, 0xff], Request::default().encode_to_vec()] {
        let req = async_nats::Request::new()
            .payload(junk.into())
            .timeout(Some(Duration::from_millis(300)));
        let err =
            bounded("junk request", raw.send_request(subject.clone(), req)).await.unwrap_err();
        assert_eq!(err.kind(), RequestErrorKind::TimedOut);
    }
    nothing_more(&mut backend.seen, Duration::from_millis(50)).await;

    // The server keeps working.
    let ok = request("g.svc.echo", b"after").encode_to_vec();
    bounded("request after junk", raw.request(subject, ok.into())).await.unwrap();
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_and_no_responders_errors() {
    let url = pitaya_test_services::shared_nats_url();
    let game = unique("game");
    let backend = start_server(&server_config(&url, 30, 75), &game, false).await;
    let connector = server("connector", true);
    let client = connect_client(&url, connector.clone()).await;

    let mut ctx = Context::new();
    ctx.insert("reqTimeout", "200ms");
    let err = bounded("slow call", client.call(&backend.me, ctx, request("g.svc.sleep", b"600")))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), ("PIT-408", "rpc client: request timeout"));
    // A timeout does not tell a dead server from a slow handler: not marked.
    assert_eq!(pitaya_cluster::unreachable_kind(&err), None);
    let metadata: Vec<(&str, &str)> =
        err.metadata().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        metadata,
        [
            ("peer.id", backend.me.id.as_str()),
            ("route", "g.svc.sleep"),
            ("server", connector.id.as_str()),
            ("timeout", "200ms"),
        ]
    );

    let nobody = server(&unique("game"), false);
    let err =
        bounded("call to nobody", client.call(&nobody, Context::new(), request("a.b.c", b"")))
            .await
            .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        ("PIT-000", "nats: no responders available for request")
    );
    assert_eq!(
        pitaya_cluster::unreachable_kind(&err),
        Some(pitaya_cluster::UnreachableKind::NoResponders)
    );

    let mut ctx = Context::new();
    ctx.insert("reqTimeout", "abc");
    let err = client.call(&backend.me, ctx, request("g.svc.echo", b"")).await.unwrap_err();
    assert_eq!((err.code(), err.message()), ("PIT-500", "time: invalid duration \"abc\""));

    client.stop().await;
    let err =
        client.call(&backend.me, Context::new(), request("g.svc.echo", b"")).await.unwrap_err();
    assert_eq!(err.code(), "PIT-000");
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_bound_concurrency_without_serialising() {
    let url = pitaya_test_services::shared_nats_url();
    let game = unique("game");
    let backend = start_server(&server_config(&url, 3, 75), &game, false).await;
    let client = std::sync::Arc::new(connect_client(&url, server("connector", true)).await);

    // Four blocked requests: three run, the fourth waits for a free service.
    let mut calls = Vec::new();
    for _ in 0..4 {
        let (client, target) = (client.clone(), backend.me.clone());
        calls.push(tokio::spawn(async move {
            client.call(&target, Context::new(), request("g.svc.block", b"")).await
        }));
    }
    bounded("three requests running", backend.handler.until_active(3)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(backend.handler.max_active(), 3);

    backend.handler.release();
    for call in calls {
        let resp = bounded("blocked call", call).await.unwrap().expect("call succeeds");
        assert_eq!(resp.data, Bytes::from_static(b"released"));
    }
    client.stop().await;
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_request_passes_a_slow_one() {
    let url = pitaya_test_services::shared_nats_url();
    let game = unique("game");
    let backend = start_server(&server_config(&url, 2, 75), &game, false).await;
    let client = std::sync::Arc::new(connect_client(&url, server("connector", true)).await);

    let (c, target) = (client.clone(), backend.me.clone());
    let slow =
        tokio::spawn(
            async move { c.call(&target, Context::new(), request("g.svc.block", b"")).await },
        );
    bounded("slow request running", backend.handler.until_active(1)).await;
    // Were requests served one at a time, this would wait for the blocked one for ever.
    bounded("fast call", client.call(&backend.me, Context::new(), request("g.svc.echo", b"")))
        .await
        .expect("fast call succeeds");
    assert!(!slow.is_finished());
    backend.handler.release();
    bounded("slow call", slow).await.unwrap().expect("slow call succeeds");
    client.stop().await;
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overflow_drops_and_counts() {
    let url = pitaya_test_services::shared_nats_url();
    let game = unique("game");
    let backend = start_server(&server_config(&url, 1, 2), &game, false).await;
    let subject = server_subject(&backend.me.server_type, &backend.me.id);
    let raw = raw(&url).await;
    let inbox = raw.new_inbox();
    let mut replies = raw.subscribe(format!("{inbox}.*")).await.unwrap();

    let block = request("g.svc.block", b"").encode_to_vec();
    raw.publish_with_reply(subject.clone(), format!("{inbox}.0"), block.into()).await.unwrap();
    bounded("blocked request running", backend.handler.until_active(1)).await;
    // One runs; two wait; the other eighteen are dropped.
    for i in 1..=20 {
        let req = request("g.svc.echo", b"").encode_to_vec();
        raw.publish_with_reply(subject.clone(), format!("{inbox}.{i}"), req.into()).await.unwrap();
    }
    raw.flush().await.unwrap();
    bounded("drops counted", async {
        while backend.server.dropped_messages() < 18 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The load gauges see one handler of one busy and the two-slot queue full.
    let load = pitaya_cluster::RpcServer::load(&backend.server);
    assert_eq!(load.workers, Some((1, 1)));
    assert_eq!(load.request_queue_free, Some(0));
    backend.handler.release();
    let mut answered = Vec::new();
    for _ in 0..3 {
        answered.push(bounded("reply", replies.next()).await.unwrap().subject.to_string());
    }
    answered.sort();
    let expected: Vec<String> = (0..3).map(|i| format!("{inbox}.{i}")).collect();
    assert_eq!(answered, expected);
    assert_eq!(backend.server.dropped_messages(), 18);
    bounded("queue drained", async {
        while pitaya_cluster::RpcServer::load(&backend.server).request_queue_free != Some(2) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // Still serving.
    let req = request("g.svc.echo", b"").encode_to_vec();
    bounded("request after overflow", raw.request(subject, req.into())).await.unwrap();
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_answers_the_requests_in_flight() {
    let url = pitaya_test_services::shared_nats_url();
    let game = unique("game");
    let backend = start_server(&server_config(&url, 30, 75), &game, false).await;
    let client = std::sync::Arc::new(connect_client(&url, server("connector", true)).await);

    let (c, target) = (client.clone(), backend.me.clone());
    let call = tokio::spawn(async move {
        c.call(&target, Context::new(), request("g.svc.sleep", b"300")).await
    });
    bounded("request running", backend.handler.until_active(1)).await;
    bounded("server stop", backend.server.stop()).await;
    let resp = bounded("call", call).await.unwrap().expect("the reply went out before the close");
    assert_eq!(resp.data, Bytes::from_static(b"slept"));

    // Stopped: unsubscribed, idempotent, and refuses to start again.
    let err =
        client.call(&backend.me, Context::new(), request("g.svc.echo", b"")).await.unwrap_err();
    assert_eq!(err.message(), "nats: no responders available for request");
    backend.server.stop().await;
    let (handler, _seen) = TestHandler::new();
    assert!(backend.server.start(handler).await.is_err());
    client.stop().await;
    client.stop().await;
    assert!(backend.die.reason().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_leaves_no_task_behind() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let url = pitaya_test_services::shared_nats_url();
    let connector = unique("connector");
    {
        let backend = start_server(&server_config(&url, 30, 75), &connector, true).await;
        let client = connect_client(&url, server("game", false)).await;
        let user = backend.server.subscribe_user("u1").await.unwrap();
        client.call(&backend.me, Context::new(), request("g.svc.echo", b"")).await.unwrap();
        client.broadcast_session_bind("u1").await.unwrap();
        assert!(metrics.num_alive_tasks() > baseline);
        client.stop().await;
        // Stopped with a user still subscribed; releasing it afterwards is harmless.
        backend.server.stop().await;
        drop(user);
    }
    bounded("every task gone", async {
        while metrics.num_alive_tasks() > baseline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A client session's forwarded messages start in arrival order, one at a time, across
/// the turns a handler task takes with one session (more than 16 in a row go back
/// through the request loop), while another session's run beside them; each is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_messages_start_in_order_across_turns() {
    use pitaya_cluster::protos::Session;
    let url = pitaya_test_services::shared_nats_url();
    let mut backend = start_server(&server_config(&url, 2, 1000), &unique("game"), false).await;
    let raw = raw(&url).await;
    let inbox = raw.new_inbox();
    let mut replies = raw.subscribe(inbox.clone()).await.unwrap();
    raw.flush().await.unwrap();
    let subject = server_subject(&backend.me.server_type, &backend.me.id);
    const EACH: usize = 100;
    for i in 0..EACH {
        for session in [7, 8] {
            let req = Request {
                r#type: 0,
                session: Some(Session { id: session, ..Session::default() }),
                frontend_id: "f1".to_owned(),
                metadata: Bytes::from_static(b"{}"),
                ..request("g.svc.echo", i.to_string().as_bytes())
            };
            let payload = Bytes::from(req.encode_to_vec());
            raw.publish_with_reply(subject.clone(), inbox.clone(), payload).await.unwrap();
        }
    }
    raw.flush().await.unwrap();
    let mut next = [0usize; 2];
    for _ in 0..2 * EACH {
        let Seen::Request(seen) = next_seen(&mut backend.seen).await else {
            panic!("not a request")
        };
        let slot = usize::from(seen.session.unwrap().id == 8);
        let data = seen.msg.unwrap().data;
        assert_eq!(&data[..], next[slot].to_string().as_bytes(), "session {}", slot + 7);
        next[slot] += 1;
    }
    for _ in 0..2 * EACH {
        bounded("every message answered", replies.next()).await.unwrap();
    }
    assert!(backend.handler.max_active() <= 2, "{}", backend.handler.max_active());
    backend.server.stop().await;
}
