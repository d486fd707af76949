//! Pushes, kicks and bind announcements: the bytes on the wire (spec Appendix A.3, A.4)
//! and per-user delivery, against a real nats-server.

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use pitaya_cluster::protos::{BindMsg, KickMsg, Push};
use pitaya_cluster::{RpcClient, RpcServer, Server};
use prost::Message;
use support::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn push(uid: &str, data: &str) -> Push {
    Push { route: "route.sendtousers".into(), uid: uid.into(), data: data.to_owned().into() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_kick_and_bind_bytes_match_go() {
    let url = pitaya_test_services::shared_nats_url();
    let raw = raw(&url).await;
    let mut pushes = raw.subscribe("pitaya/connector/user/u1/push").await.unwrap();
    let mut kicks = raw.subscribe("pitaya/connector/user/d2/kick").await.unwrap();
    let mut binds = raw.subscribe("pitaya/connector/bindings").await.unwrap();
    raw.flush().await.unwrap();
    // The frontend of the trace, so that `fid` matches A.3.
    let mut frontend = Server::new("connector", true, Default::default());
    frontend.id = "f8208c66-6960-49ce-a377-efebc95fc107".into();
    let client = connect_client(&url, frontend.into()).await;

    client.send_push("connector", None, push("u1", "hello-users")).await.unwrap();
    let m = bounded("push", pushes.next()).await.unwrap();
    assert_eq!(
        hex(&m.payload),
        "0a11726f7574652e73656e64746f7573657273120275311a0b68656c6c6f2d7573657273"
    );

    client.send_kick("connector", KickMsg { user_id: "d2".into() }).await.unwrap();
    let m = bounded("kick", kicks.next()).await.unwrap();
    assert_eq!(hex(&m.payload), "0a026432");

    client.broadcast_session_bind("u1").await.unwrap();
    let m = bounded("bind", binds.next()).await.unwrap();
    let mut expected = vec![0x0a, 0x02, b'u', b'1', 0x12, 0x24];
    expected.extend_from_slice(b"f8208c66-6960-49ce-a377-efebc95fc107");
    assert_eq!(m.payload, Bytes::from(expected));

    // Published even when nobody listens (spec §8.4).
    client.send_push("connector", None, push(&unique("nobody"), "x")).await.unwrap();
    // A uid that would break the NATS protocol line is refused, not sent.
    let err = client.send_push("connector", None, push("a b", "x")).await.unwrap_err();
    assert_eq!(err.code(), "PIT-000");

    // A publish right before stop is not lost.
    client.send_push("connector", None, push("u1", "last")).await.unwrap();
    client.stop().await;
    let m = bounded("push before stop", pushes.next()).await.unwrap();
    assert_eq!(Push::decode(m.payload).unwrap(), push("u1", "last"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_subscriptions_deliver_once_and_stop_when_dropped() {
    let url = pitaya_test_services::shared_nats_url();
    let connector = unique("connector");
    let mut frontend = start_server(&server_config(&url, 30, 75), &connector, true).await;
    let client = connect_client(&url, server("game", false)).await;
    let quiet = Duration::from_millis(200);

    let first = bounded("subscribe", frontend.server.subscribe_user("u1")).await.unwrap();
    client.send_push(&connector, None, push("u1", "one")).await.unwrap();
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("u1", "one")));
    client.send_kick(&connector, KickMsg { user_id: "u1".into() }).await.unwrap();
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Kick(KickMsg { user_id: "u1".into() }));

    // A second bind of the uid before the first session's close: one delivery each.
    let second = bounded("subscribe again", frontend.server.subscribe_user("u1")).await.unwrap();
    client.send_push(&connector, None, push("u1", "two")).await.unwrap();
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("u1", "two")));
    nothing_more(&mut frontend.seen, quiet).await;
    drop(first);
    client.send_push(&connector, None, push("u1", "three")).await.unwrap();
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("u1", "three")));

    // Another frontend type's user and another uid are not delivered here.
    client.send_push("other-type", None, push("u1", "x")).await.unwrap();
    client.send_push(&connector, None, push("u2", "x")).await.unwrap();
    nothing_more(&mut frontend.seen, quiet).await;

    drop(second);
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.send_push(&connector, None, push("u1", "after")).await.unwrap();
    client.send_kick(&connector, KickMsg { user_id: "u1".into() }).await.unwrap();
    nothing_more(&mut frontend.seen, quiet).await;

    // Subscribing again works, and a user's pushes keep their order.
    let _again =
        bounded("subscribe after release", frontend.server.subscribe_user("u1")).await.unwrap();
    for i in 0..100 {
        client.send_push(&connector, None, push("u1", &i.to_string())).await.unwrap();
    }
    for i in 0..100 {
        assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("u1", &i.to_string())));
    }

    // Bind announcements of the type reach the handler, this server's own included.
    let bind = BindMsg { uid: "u1".into(), fid: "other-frontend".into() };
    let raw = raw(&url).await;
    raw.publish(pitaya_nats::bindings_subject(&connector), bind.encode_to_vec().into())
        .await
        .unwrap();
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Bind(bind));
    // An undecodable one is dropped; the next still arrives.
    raw.publish(pitaya_nats::bindings_subject(&connector), Bytes::from_static(&[0xff]))
        .await
        .unwrap();
    let frontend_client = connect_client(&url, frontend.me.clone()).await;
    frontend_client.broadcast_session_bind("u9").await.unwrap();
    let own = BindMsg { uid: "u9".into(), fid: frontend.me.id.clone() };
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Bind(own));

    frontend_client.stop().await;
    client.stop().await;
    frontend.server.stop().await;
    // After stop, binding a uid is refused.
    assert!(frontend.server.subscribe_user("u3").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_independent_and_slow_ones_overflow_alone() {
    let url = pitaya_test_services::shared_nats_url();
    let connector = unique("connector");
    let mut config = server_config(&url, 30, 75);
    config.buffer.push = std::num::NonZeroUsize::new(4).unwrap();
    let mut frontend = start_server(&config, &connector, true).await;
    let raw = raw(&url).await;
    let _a = frontend.server.subscribe_user("a").await.unwrap();
    let _b = frontend.server.subscribe_user("b").await.unwrap();

    // Before start, subscriptions are refused.
    let idle =
        pitaya_nats::NatsRpcServer::connect(&config, server(&connector, true), Default::default())
            .await
            .unwrap();
    assert!(idle.subscribe_user("a").await.is_err());
    idle.stop().await;

    // Garbage on a user's subjects is dropped with a log; the user keeps working.
    raw.publish(pitaya_nats::user_push_subject(&connector, "a"), Bytes::from_static(&[0xff]))
        .await
        .unwrap();
    raw.publish(pitaya_nats::user_kick_subject(&connector, "a"), Bytes::from_static(&[0x0a]))
        .await
        .unwrap();
    raw.publish(
        pitaya_nats::user_push_subject(&connector, "a"),
        push("a", "ok").encode_to_vec().into(),
    )
    .await
    .unwrap();
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("a", "ok")));
    raw.publish(
        pitaya_nats::user_push_subject(&connector, "b"),
        push("b", "ok").encode_to_vec().into(),
    )
    .await
    .unwrap();
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("b", "ok")));
    assert_eq!(frontend.server.dropped_user_messages(), 0);

    // `a`'s handler hangs on a push: four more wait for it, six overflow, and `b` is
    // served all along.
    let blocked = Push { route: "r.block".into(), uid: "a".into(), data: Bytes::new() };
    let subject_a = pitaya_nats::user_push_subject(&connector, "a");
    raw.publish(subject_a.clone(), blocked.encode_to_vec().into()).await.unwrap();
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(blocked));
    for i in 0..10 {
        raw.publish(subject_a.clone(), push("a", &i.to_string()).encode_to_vec().into())
            .await
            .unwrap();
    }
    raw.flush().await.unwrap();
    bounded("user overflow counted", async {
        while frontend.server.dropped_user_messages() < 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    for i in 0..3 {
        let p = push("b", &format!("b{i}"));
        raw.publish(pitaya_nats::user_push_subject(&connector, "b"), p.encode_to_vec().into())
            .await
            .unwrap();
        assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(p));
    }
    frontend.handler.release();
    for i in 0..4 {
        assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("a", &i.to_string())));
    }
    nothing_more(&mut frontend.seen, Duration::from_millis(200)).await;
    assert_eq!(frontend.server.dropped_user_messages(), 6);
    frontend.server.stop().await;
}
