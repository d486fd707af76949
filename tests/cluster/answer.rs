//! A backend handler that answers a forwarded request by hand (`Session::respond`, Go's
//! `ResponseMID`), on in-process servers over real etcd and NATS or gRPC (spec §6.6).
//!
//! Over NATS the answer is what a Go backend publishes: a whole client packet in
//! `Response.data`, sent at once on the request's reply subject, which the frontend relays
//! to the client as the response body. The handler's own return value is never sent as a
//! second reply (a Go backend publishes it too; nobody reads it). Over gRPC, which Go
//! does not implement for this, `respond` fails with Go's `method not implemented`.
//!
//! Also a backend's own bind callbacks around the frontend's `sys.bindsession`.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use pitaya::cluster::protos::{self, Msg};
use pitaya::handler::RouteInfo;
use pitaya::{Component, Error, Session};
use prost::Message;

use crate::inproc;
use crate::support::{sd_prefix, wait, within};

/// Answers "by hand" by hand, waits, then returns "returned" (never to be seen).
async fn by_hand(s: Session, info: RouteInfo, _body: Bytes) -> Result<Bytes, Error> {
    s.respond(info.id, Bytes::from_static(b"by hand"), false).await?;
    let again = s.respond(info.id, Bytes::from_static(b"twice"), false).await;
    assert!(again.is_err(), "a second answer by hand must be refused");
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Bytes::from_static(b"returned"))
}

/// Answers an error by hand and returns at once.
async fn error_by_hand(s: Session, info: RouteInfo, _body: Bytes) -> Result<Bytes, Error> {
    s.respond(info.id, Bytes::from_static(br#"{"code":"PIT-499"}"#), true).await?;
    Ok(Bytes::from_static(b"returned"))
}

/// What answering a notify by hand gives, reported in a push (to a uid it binds: a
/// backend session pushes by uid).
async fn notify_by_hand(s: Session, info: RouteInfo, _body: Bytes) {
    let e = s.respond(info.id, Bytes::from_static(b"x"), false).await.unwrap_err();
    s.bind(&uuid::Uuid::new_v4().to_string()).await.unwrap();
    s.push("onRespond", e.message().to_owned()).await.unwrap();
}

fn backend_component() -> Component {
    Component::new("room")
        .handler("byhand", by_hand)
        .handler("errorbyhand", error_by_hand)
        .handler("notifybyhand", notify_by_hand)
}

/// Starts a frontend and a `game` backend and connects a client once the frontend sees
/// the backend.
async fn cluster(
    grpc: bool,
) -> (pitaya::RunningApp, pitaya::RunningApp, pitaya::client::Client, pitaya::client::Pushes) {
    let prefix = sd_prefix();
    let back =
        inproc::start(inproc::builder(grpc, "game", false, &prefix).component(backend_component()))
            .await;
    let front = inproc::start(inproc::builder(grpc, "connector", true, &prefix)).await;
    let (client, pushes) = crate::support::connect(&inproc::addr(&front)).await;
    inproc::sees(&front, "game").await;
    (front, back, client, pushes)
}

/// The body a Go backend's `ResponseMID(id, "by hand")` makes the client receive: a Data
/// packet holding a Response message (flag 0x04, or 0x24 with the error bit), by hand.
fn packet(id: u8, error: bool, data: &[u8]) -> Vec<u8> {
    let mut msg = vec![if error { 0x24 } else { 0x04 }, id];
    msg.extend_from_slice(data);
    let mut p = vec![0x04, 0x00, 0x00, msg.len() as u8];
    p.extend_from_slice(&msg);
    p
}

#[tokio::test]
async fn over_nats_the_answer_by_hand_is_gos_packet_and_the_return_value_is_dropped() {
    within(async {
        let (front, back, client, mut pushes) = cluster(false).await;
        // The client's first request has id 1.
        let body = client.request("game.room.byhand", Bytes::new()).await.unwrap();
        assert_eq!(body.to_vec(), packet(1, false, b"by hand"));
        // An error answered by hand is an error *inside* the packet: the outer response
        // is a success, as with a Go backend.
        let body = client.request("game.room.errorbyhand", Bytes::new()).await.unwrap();
        assert_eq!(body.to_vec(), packet(2, true, br#"{"code":"PIT-499"}"#));
        client.notify("game.room.notifybyhand", Bytes::new()).await.unwrap();
        let push = wait("push", pushes.recv()).await.unwrap();
        assert_eq!(&push.data[..], b"current session working on notify mode");

        // On the wire: exactly one reply on the request's reply subject, the packet;
        // the handler's "returned" 200 ms later is not published.
        let nc = async_nats::connect(pitaya_test_services::shared_nats_url()).await.unwrap();
        let game = back.handle().server().unwrap().id.clone();
        let inbox = nc.new_inbox();
        let mut replies = nc.subscribe(inbox.clone()).await.unwrap();
        let req = protos::Request {
            r#type: protos::RpcType::Sys as i32,
            session: Some(protos::Session { id: 1, ..protos::Session::default() }),
            msg: Some(Msg { id: 9, route: "game.room.byhand".into(), ..Msg::default() }),
            frontend_id: front.handle().server().unwrap().id.clone(),
            metadata: Bytes::from_static(br#"{"peer.id":"raw","reqTimeout":"5s"}"#),
        };
        let subject = format!("pitaya/servers/game/{game}");
        nc.publish_with_reply(subject, inbox, req.encode_to_vec().into()).await.unwrap();
        let first = wait("reply", replies.next()).await.unwrap();
        let r = protos::Response::decode(first.payload).unwrap();
        assert_eq!((r.data.to_vec(), r.error), (packet(9, false, b"by hand"), None));
        let second = tokio::time::timeout(Duration::from_millis(800), replies.next()).await;
        assert!(second.is_err(), "a second reply was published: {second:?}");
        front.shutdown().await;
        back.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn over_grpc_answering_by_hand_fails_as_in_go() {
    within(async {
        let (front, back, client, mut pushes) = cluster(true).await;
        let e = client.request("game.room.byhand", Bytes::new()).await.unwrap_err();
        crate::support::expect_error_body(
            &e,
            br#"{"code":"PIT-000","msg":"method not implemented"}"#,
        );
        client.notify("game.room.notifybyhand", Bytes::new()).await.unwrap();
        let push = wait("push", pushes.recv()).await.unwrap();
        assert_eq!(&push.data[..], b"current session working on notify mode");
        front.shutdown().await;
        back.shutdown().await;
    })
    .await;
}

/// Spec §8.3, as Go's backend `Bind`: a backend's own bind callbacks run before the
/// frontend is asked (`sys.bindsession`: the frontend does not hold the uid yet), its
/// after-bind callbacks after (the frontend holds it), over NATS and gRPC.
async fn backend_bind_callbacks_around_the_frontend(grpc: bool) {
    use std::sync::{Arc, Mutex};
    within(async {
        let prefix = sd_prefix();
        async fn bind(s: Session, uid: Bytes) -> Result<Bytes, Error> {
            s.bind(&String::from_utf8_lossy(&uid)).await?;
            Ok(Bytes::from_static(b"bound"))
        }
        let front = inproc::start(inproc::builder(grpc, "connector", true, &prefix)).await;
        let back = inproc::builder(grpc, "game", false, &prefix)
            .component(Component::new("room").handler("bind", bind));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (on, after) = (log.clone(), log.clone());
        let (fa, fb) = (front.handle().clone(), front.handle().clone());
        back.sessions().on_session_bind(move |s| {
            let uid = s.uid().unwrap_or_default();
            on.lock().unwrap().push(format!("on {}", fa.sessions().by_uid(&uid).is_some()));
            async { Ok(()) }
        });
        back.sessions().after_session_bind(move |s| {
            let uid = s.uid().unwrap_or_default();
            after.lock().unwrap().push(format!("after {}", fb.sessions().by_uid(&uid).is_some()));
            async { Ok(()) }
        });
        let back = inproc::start(back).await;
        inproc::sees(&front, "game").await;
        let (c, _p) = crate::support::connect(&inproc::addr(&front)).await;
        let uid = uuid::Uuid::new_v4().to_string();
        assert_eq!(&c.request("game.room.bind", uid.clone()).await.unwrap()[..], b"bound");
        // "held by the frontend?" as each callback saw it.
        assert_eq!(*log.lock().unwrap(), ["on false", "after true"]);
        assert!(front.handle().sessions().by_uid(&uid).is_some());
        front.shutdown().await;
        back.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn backend_bind_callbacks_around_the_frontend_over_nats() {
    backend_bind_callbacks_around_the_frontend(false).await;
}

#[tokio::test]
async fn backend_bind_callbacks_around_the_frontend_over_grpc() {
    backend_bind_callbacks_around_the_frontend(true).await;
}
