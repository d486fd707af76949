//! Session resume on the server (`docs/resume.md`), driven by raw TCP peers so that every
//! byte of the contract is checked: Go's handshake bytes for clients that do not ask,
//! replay after a drop, the client's count, expiry, stale tokens, the buffer limit, and
//! what ends a session at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use pitaya::codec::{Message, MessageType, Packet, PacketType};
use pitaya::{Component, Error, Session};

use crate::support::{
    ACK, HANDSHAKE, Raw, Server, config, echo_builder, json, packet, wait, within,
};

/// A handshake asking for a token.
const ASK: &[u8] = br#"{"sys":{"platform":"test","libVersion":"0.1.0","resume":true}}"#;

fn resume_config(extra: &[(&str, &str)]) -> pitaya::config::PitayaConfig {
    let mut keys = vec![("pitaya.session.resume.enabled", "true")];
    keys.extend_from_slice(extra);
    config(&keys)
}

/// `test.bind` binds the body's uid; `test.uid` answers the session's uid and id;
/// `test.later` answers its body after 300 ms, so that a client can leave meanwhile.
fn component() -> Component {
    Component::new("test").handler("bind", bind).handler("uid", uid).handler("later", later)
}

async fn bind(s: Session, body: Bytes) -> Result<Bytes, Error> {
    s.bind(&String::from_utf8_lossy(&body)).await?;
    Ok(Bytes::from_static(b"bound"))
}

async fn uid(s: Session, _body: Bytes) -> Result<Bytes, Error> {
    let uid = s.uid().map(|u| u.to_string()).unwrap_or_default();
    Ok(Bytes::from(format!("{uid}/{}", s.id())))
}

async fn later(_s: Session, body: Bytes) -> Result<Bytes, Error> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(body)
}

async fn start(extra: &[(&str, &str)]) -> (Server, Arc<AtomicUsize>) {
    let server = Server::start(echo_builder(resume_config(extra)).component(component())).await;
    let closes = Arc::new(AtomicUsize::new(0));
    let counter = closes.clone();
    server.handle().sessions().on_session_close(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    (server, closes)
}

/// Handshakes with `body`; returns the response's `sys.resume` (null when absent). Sends
/// the ack.
async fn handshake(raw: &mut Raw, body: &[u8]) -> serde_json::Value {
    raw.send(&packet(0x01, body)).await;
    let response = raw.frame().await.expect("a handshake response");
    assert_eq!(response.kind, PacketType::Handshake);
    let value = json(&response.body);
    assert_eq!(value["code"], 200, "{value}");
    raw.send(ACK).await;
    value["sys"]["resume"].clone()
}

fn resume_body(token: &str, received: u64) -> Vec<u8> {
    format!(
        r#"{{"sys":{{"platform":"test","resume":{{"token":"{token}","received":{received}}}}}}}"#
    )
    .into_bytes()
}

/// The next Data packet (its whole body, as sent) and the message in it.
async fn data(raw: &mut Raw) -> (Packet, Message) {
    let packet = raw.frame().await.expect("a data packet, not a close");
    assert_eq!(packet.kind, PacketType::Data, "{packet:?}");
    let msg = pitaya::codec::MessageCodec::new().decode(packet.body.clone()).expect("decodes");
    (packet, msg)
}

async fn until<F: Fn() -> bool>(what: &str, f: F) {
    wait(what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_client_that_does_not_ask_sees_gos_handshake_bytes() {
    within(async {
        let plain = Server::start(echo_builder(config(&[]))).await;
        let (enabled, _) = start(&[]).await;
        let mut bytes = Vec::new();
        for server in [&plain, &enabled] {
            let mut raw = Raw::connect(server.addr(false)).await;
            raw.send(&packet(0x01, HANDSHAKE)).await;
            let response = raw.frame().await.expect("a response");
            assert!(!String::from_utf8_lossy(&response.body).contains("resume"));
            bytes.push(response.body);
        }
        assert_eq!(
            bytes[0], bytes[1],
            "resume enabled changes nothing for a client that does not ask"
        );
        // Asking a server without resume: no key either.
        let mut raw = Raw::connect(plain.addr(false)).await;
        assert!(handshake(&mut raw, ASK).await.is_null());
        plain.shutdown().await;
        enabled.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_dropped_session_resumes_with_what_it_missed_replayed_byte_for_byte() {
    within(async {
        let (server, closes) = start(&[("pitaya.session.resume.ttl", "1500ms")]).await;
        let mut raw = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut raw, ASK).await;
        let token = grant["token"].as_str().expect("a token").to_owned();
        assert_eq!(grant["ttl"], 2, "whole seconds, rounded up: {grant}");
        assert!(grant.get("resumed").is_none() && grant.get("received").is_none(), "{grant}");

        raw.request(1, "test.bind", b"ana").await;
        let (_, bound) = data(&mut raw).await;
        assert_eq!(&bound.data[..], b"bound");
        raw.request(2, "test.uid", b"").await;
        let (_, me) = data(&mut raw).await;
        // Three of our packets read: the third is answered while we are away.
        raw.request(3, "test.later", b"late answer").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(raw);

        let session = server.handle().sessions().by_uid("ana").expect("the session waits");
        wait("a push to the away session", session.push("onAway", Bytes::from_static(b"p1")))
            .await
            .expect("queued for the client's return");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(closes.load(Ordering::SeqCst), 0, "close callbacks wait for the ttl");

        // We read 2 of the server's packets; it holds 3 and 4.
        let mut raw = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut raw, &resume_body(&token, 2)).await;
        assert_eq!(grant["resumed"], true, "{grant}");
        assert_eq!(grant["received"], 3, "{grant}");
        let new_token = grant["token"].as_str().expect("a new token").to_owned();
        assert_ne!(new_token, token);
        // In the order they were queued: the push at once, the answer after its handler's
        // 300 ms.
        let (_, push) = data(&mut raw).await;
        assert_eq!(
            (push.kind, &push.route[..], &push.data[..]),
            (MessageType::Push, "onAway", &b"p1"[..])
        );
        let (_, later) = data(&mut raw).await;
        assert_eq!(
            (later.kind, later.id, &later.data[..]),
            (MessageType::Response, 3, &b"late answer"[..])
        );
        // The same session: same uid and id.
        raw.request(4, "test.uid", b"").await;
        let (_, again) = data(&mut raw).await;
        assert_eq!(again.data, me.data);

        // Cut again having read everything but the last answer: it comes back byte for
        // byte.
        raw.request(5, "test.uid", b"").await;
        let (first, _) = data(&mut raw).await;
        drop(raw);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut raw = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut raw, &resume_body(&new_token, 5)).await;
        assert_eq!(grant["resumed"], true, "{grant}");
        assert_eq!(grant["received"], 5, "{grant}");
        let (replayed, _) = data(&mut raw).await;
        assert_eq!(replayed.body, first.body, "replayed as first sent");
        // The first token is spent.
        let mut other = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut other, &resume_body(&token, 0)).await;
        assert_eq!(grant["resumed"], false, "{grant}");
        drop(other);
        assert_eq!(closes.load(Ordering::SeqCst), 0, "the resumed session never closed");
        drop(raw);
        // Expiry closes it once, with its callbacks, and unbinds the uid.
        until("the ttl to close the session", || {
            server.handle().sessions().by_uid("ana").is_none()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The stale-token connection's own session closed too: one each.
        assert_eq!(closes.load(Ordering::SeqCst), 2);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn the_server_counts_every_client_packet_it_read_and_resent_ones_run() {
    within(async {
        let (server, _) = start(&[]).await;
        let mut raw = Raw::connect(server.addr(false)).await;
        let token = handshake(&mut raw, ASK).await["token"].as_str().unwrap().to_owned();
        raw.request(1, "test.bind", b"bo").await;
        data(&mut raw).await;
        // A notify nobody answers and a request to an unknown route count too.
        raw.notify("room.nothing", b"").await;
        raw.request(2, "nope.nope.nope", b"").await;
        data(&mut raw).await;
        drop(raw);
        let mut raw = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut raw, &resume_body(&token, 2)).await;
        assert_eq!(grant["resumed"], true);
        assert_eq!(grant["received"], 3);
        // A re-sent request after the ack runs on the resumed session.
        raw.request(3, "test.uid", b"").await;
        let (_, me) = data(&mut raw).await;
        assert!(String::from_utf8_lossy(&me.data).starts_with("bo/"), "{me:?}");
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_tokens_and_lost_packets_get_a_fresh_session() {
    within(async {
        let (server, _) = start(&[("pitaya.session.resume.buffer", "2")]).await;
        let mut raw = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut raw, &resume_body("no-such-token", 0)).await;
        assert_eq!(grant["resumed"], false, "{grant}");
        assert!(grant.get("received").is_none(), "{grant}");
        let token = grant["token"].as_str().unwrap().to_owned();
        for id in 1..=4 {
            raw.request(id, "test.uid", b"").await;
            data(&mut raw).await;
        }
        drop(raw);
        // Only packets 3 and 4 are kept: a client that read 1 cannot be made whole.
        let mut raw = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut raw, &resume_body(&token, 1)).await;
        assert_eq!(grant["resumed"], false, "{grant}");
        // It can from 2.
        let mut raw = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut raw, &resume_body(&token, 2)).await;
        assert_eq!(grant["resumed"], true, "{grant}");
        assert_eq!(data(&mut raw).await.1.id, 3);
        assert_eq!(data(&mut raw).await.1.id, 4);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_full_buffer_while_away_closes_the_session() {
    within(async {
        let (server, closes) = start(&[("pitaya.session.resume.buffer", "3")]).await;
        let mut raw = Raw::connect(server.addr(false)).await;
        handshake(&mut raw, ASK).await;
        raw.request(1, "test.bind", b"cy").await;
        data(&mut raw).await;
        drop(raw);
        let session = server.handle().sessions().by_uid("cy").expect("kept");
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..3 {
            session.push("onPush", Bytes::from(format!("{i}"))).await.expect("kept");
        }
        assert_eq!(closes.load(Ordering::SeqCst), 0);
        assert!(session.push("onPush", Bytes::from_static(b"one too many")).await.is_err());
        until("the session to close", || closes.load(Ordering::SeqCst) == 1).await;
        assert!(server.handle().sessions().by_uid("cy").is_none());
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn kick_a_new_bind_and_shutdown_close_an_away_session_at_once() {
    within(async {
        let (server, closes) = start(&[]).await;
        let mut away = Vec::new();
        for uid in ["k1", "k2", "k3"] {
            let mut raw = Raw::connect(server.addr(false)).await;
            handshake(&mut raw, ASK).await;
            raw.request(1, "test.bind", uid.as_bytes()).await;
            data(&mut raw).await;
            away.push(raw);
        }
        drop(away);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let k1 = server.handle().sessions().by_uid("k1").expect("kept");
        k1.kick().await.expect("kicked while away");
        until("the kick to close k1", || closes.load(Ordering::SeqCst) == 1).await;
        // A new login of k2 closes the away one.
        let mut raw = Raw::connect(server.addr(false)).await;
        raw.handshake().await;
        raw.request(1, "test.bind", b"k2").await;
        data(&mut raw).await;
        until("the new bind to close the old k2", || closes.load(Ordering::SeqCst) == 2).await;
        // Shutdown closes k3 without waiting for its ttl (30 s).
        let started = std::time::Instant::now();
        server.shutdown().await;
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(closes.load(Ordering::SeqCst), 4, "k3 and the new k2 closed");
    })
    .await;
}

#[tokio::test]
async fn a_resume_while_the_old_connection_looks_open_closes_it_first() {
    within(async {
        let (server, closes) = start(&[]).await;
        let mut old = Raw::connect(server.addr(false)).await;
        let token = handshake(&mut old, ASK).await["token"].as_str().unwrap().to_owned();
        old.request(1, "test.bind", b"dee").await;
        data(&mut old).await;
        // Sent but not answered yet when the new connection arrives: the server has read
        // it, so it counts, and its answer is replayed on the new connection.
        old.request(2, "test.later", b"pending").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut new = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut new, &resume_body(&token, 1)).await;
        assert_eq!(grant["resumed"], true, "{grant}");
        assert_eq!(grant["received"], 2, "{grant}");
        let (_, answer) = data(&mut new).await;
        assert_eq!((answer.id, &answer.data[..]), (2, &b"pending"[..]));
        // The old connection was closed by the server.
        assert!(old.frame().await.is_none(), "the old connection is closed");
        assert_eq!(closes.load(Ordering::SeqCst), 0);
        server.shutdown().await;
        assert_eq!(closes.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test]
async fn expiry_runs_the_close_callbacks_exactly_once() {
    within(async {
        let (server, closes) = start(&[("pitaya.session.resume.ttl", "500ms")]).await;
        let mut raw = Raw::connect(server.addr(false)).await;
        let token = handshake(&mut raw, ASK).await["token"].as_str().unwrap().to_owned();
        raw.request(1, "test.bind", b"eve").await;
        data(&mut raw).await;
        let session = server.handle().sessions().by_uid("eve").expect("bound");
        let own = Arc::new(AtomicUsize::new(0));
        let counter = own.clone();
        session.on_close(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        drop(raw);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!session.is_closed(), "kept within the ttl");
        until("the ttl to pass", || session.is_closed()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(own.load(Ordering::SeqCst), 1, "the session's own callback, once");
        assert_eq!(closes.load(Ordering::SeqCst), 1, "the pool's callback, once");
        assert!(server.handle().sessions().by_uid("eve").is_none(), "unbound");
        let mut raw = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut raw, &resume_body(&token, 1)).await;
        assert_eq!(grant["resumed"], false, "an expired token: {grant}");
        server.shutdown().await;
        assert_eq!(own.load(Ordering::SeqCst), 1);
    })
    .await;
}

/// A session bound to `uid` whose client drops, then resumes on a connection that gets the
/// response (a resume, one packet read) but drops before its ack: the session's token and
/// the token that connection was offered.
async fn lose_a_resume_response(server: &Server, uid: &str) -> (String, String) {
    let mut raw = Raw::connect(server.addr(false)).await;
    let token = handshake(&mut raw, ASK).await["token"].as_str().unwrap().to_owned();
    raw.request(1, "test.bind", uid.as_bytes()).await;
    data(&mut raw).await;
    drop(raw);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut lost = Raw::connect(server.addr(false)).await;
    lost.send(&packet(0x01, &resume_body(&token, 1))).await;
    let response = json(&lost.frame().await.expect("a response").body);
    assert_eq!(response["sys"]["resume"]["resumed"], true, "{response}");
    let offered = response["sys"]["resume"]["token"].as_str().unwrap().to_owned();
    drop(lost);
    tokio::time::sleep(Duration::from_millis(100)).await;
    (token, offered)
}

#[tokio::test]
async fn a_lost_resume_response_can_be_retried_with_the_old_token() {
    within(async {
        let (server, _) = start(&[]).await;
        let (token, unused) = lose_a_resume_response(&server, "fay").await;
        let mut raw = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut raw, &resume_body(&token, 1)).await;
        assert_eq!(grant["resumed"], true, "the old token still works: {grant}");
        let fresh = grant["token"].as_str().unwrap().to_owned();
        raw.request(2, "test.uid", b"").await;
        assert!(String::from_utf8_lossy(&data(&mut raw).await.1.data).starts_with("fay/"));
        // Once acked, only the newest token is valid.
        for stale in [&token, &unused] {
            let mut other = Raw::connect(server.addr(false)).await;
            let grant = handshake(&mut other, &resume_body(stale, 2)).await;
            assert_eq!(grant["resumed"], false, "{grant}");
        }
        drop(raw);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut raw = Raw::connect(server.addr(false)).await;
        assert_eq!(handshake(&mut raw, &resume_body(&fresh, 2)).await["resumed"], true);
        server.shutdown().await;
    })
    .await;
}

/// Over WebSocket: a socket closed without a close frame is a drop, and the session
/// resumes on a new WebSocket as on TCP.
#[tokio::test]
async fn a_websocket_client_resumes_too() {
    within(async {
        let (server, closes) = start(&[]).await;
        let mut ws = server.raw_ws().await;
        ws.send_binary(&packet(0x01, ASK)).await;
        let response = json(&ws.frame().await.expect("a handshake response")[4..]);
        let token = response["sys"]["resume"]["token"].as_str().expect("a token").to_owned();
        ws.send_binary(ACK).await;
        ws.send_binary(&crate::support::encode(&Message::request(
            1,
            "test.bind",
            Bytes::from_static(b"gus"),
        )))
        .await;
        assert!(ws.frame().await.is_some(), "bound");
        // Gone without a close frame: the TCP connection just ends.
        drop(ws);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(server.handle().sessions().by_uid("gus").is_some(), "kept");
        let mut ws = server.raw_ws().await;
        ws.send_binary(&packet(0x01, &resume_body(&token, 1))).await;
        let response = json(&ws.frame().await.expect("a handshake response")[4..]);
        assert_eq!(response["sys"]["resume"]["resumed"], true, "{response}");
        ws.send_binary(ACK).await;
        ws.send_binary(&crate::support::encode(&Message::request(2, "test.uid", Bytes::new())))
            .await;
        let frame = ws.frame().await.expect("an answer");
        let answer = pitaya::codec::MessageCodec::new().decode(frame.slice(4..)).expect("decodes");
        assert!(String::from_utf8_lossy(&answer.data).starts_with("gus/"), "{answer:?}");
        assert_eq!(closes.load(Ordering::SeqCst), 0);
        server.shutdown().await;
    })
    .await;
}

/// A client that got its resume response but lost the connection before its ack may have
/// sent the ack or not: the new token works as well as the old one.
#[tokio::test]
async fn the_offered_token_works_when_the_ack_may_have_been_lost() {
    within(async {
        let (server, _) = start(&[]).await;
        let (_, offered) = lose_a_resume_response(&server, "hal").await;
        let mut raw = Raw::connect(server.addr(false)).await;
        let grant = handshake(&mut raw, &resume_body(&offered, 1)).await;
        assert_eq!(grant["resumed"], true, "the offered token: {grant}");
        raw.request(2, "test.uid", b"").await;
        assert!(String::from_utf8_lossy(&data(&mut raw).await.1.data).starts_with("hal/"));
        server.shutdown().await;
    })
    .await;
}
