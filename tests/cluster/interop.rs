//! Interoperability with Go Pitaya at the byte level: a raw NATS client and etcdctl play
//! the Go peer, with the payloads of spec Appendix A, against the `testing` server.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use pitaya::cluster::protos::{self, BindMsg, KickMsg, Msg, Push, Response};
use prost::Message;

use crate::support::{Launch, connect, eventually, launch, sd_prefix, wait, within};

/// The id of the one server of `server_type` registered under `prefix`.
fn server_id(prefix: &str, server_type: &str) -> String {
    let etcd = pitaya_test_services::shared_etcd_endpoint();
    let out = std::process::Command::new("etcdctl")
        .args([
            "--endpoints",
            &etcd,
            "get",
            "--prefix",
            "--keys-only",
            &format!("{prefix}servers/{server_type}/"),
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("run etcdctl");
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|k| k.rsplit('/').next().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(keys.len(), 1, "one {server_type} registered: {keys:?}");
    keys[0].clone()
}

/// Registers a Go-style record by hand, as a Go server would (spec §5.2).
fn put_record(prefix: &str, server_type: &str, id: &str) {
    let etcd = pitaya_test_services::shared_etcd_endpoint();
    let value = format!(
        r#"{{"id":"{id}","type":"{server_type}","metadata":{{"grpcHost":"127.0.0.1","grpcPort":"3434"}},"frontend":false,"hostname":"vm"}}"#
    );
    let status = std::process::Command::new("etcdctl")
        .args(["--endpoints", &etcd, "put", &format!("{prefix}servers/{server_type}/{id}"), &value])
        .env("ETCDCTL_API", "3")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("run etcdctl");
    assert!(status.success());
}

async fn nats() -> async_nats::Client {
    async_nats::connect(pitaya_test_services::shared_nats_url()).await.expect("connect to NATS")
}

fn metadata() -> Bytes {
    Bytes::from_static(br#"{"opentracing-span":{},"peer.id":"go-peer","peer.service":"connector","req-route":"game.testsvc.x","reqTimeout":"5s","request.id":"F6HCRAyZv04IvOV39Rhwhn"}"#)
}

async fn call(nc: &async_nats::Client, subject: String, req: &protos::Request) -> Vec<u8> {
    let reply = tokio::time::timeout(
        Duration::from_secs(5),
        nc.request(subject, req.encode_to_vec().into()),
    )
    .await
    .expect("answer in time")
    .expect("request");
    reply.payload.to_vec()
}

fn user_req(route: &str, data: Vec<u8>) -> protos::Request {
    protos::Request {
        r#type: protos::RpcType::User as i32,
        msg: Some(Msg { route: route.to_owned(), data: data.into(), ..Msg::default() }),
        metadata: metadata(),
        ..protos::Request::default()
    }
}

/// A Go backend registered by hand: the Rust frontend forwards to it with the Sys RPC
/// layout of spec Appendix A.2 and relays its answers.
#[tokio::test]
async fn rust_frontend_forwards_to_a_go_backend() {
    within(async {
        let prefix = sd_prefix();
        let front = launch(&Launch::new("connector", true, &prefix));
        let front_id = server_id(&prefix, "connector");
        let nc = nats().await;
        let go_id = uuid::Uuid::new_v4().to_string();
        let mut sub = nc.subscribe(format!("pitaya/servers/gob/{go_id}")).await.unwrap();
        nc.flush().await.unwrap();
        put_record(&prefix, "gob", &go_id);
        let (c, _p) = connect(&front.addr).await;
        let route = "gob.testsvc.testrequestonlysessionreturnsptr";
        // The frontend learns of the record through its etcd watch.
        let answered = tokio::spawn({
            let nc = nc.clone();
            async move {
                let mut seen = Vec::new();
                while let Some(m) = sub.next().await {
                    let req = protos::Request::decode(m.payload.clone()).expect("a protos.Request");
                    let reply = if req.msg.as_ref().is_some_and(|m| m.r#type == 1) {
                        Response { data: Bytes::from_static(b"ack"), error: None }
                    } else if req.msg.as_ref().is_some_and(|m| m.route.ends_with("fails")) {
                        Response {
                            data: Bytes::new(),
                            error: Some(protos::Error {
                                msg: "no code".into(),
                                ..Default::default()
                            }),
                        }
                    } else {
                        Response {
                            data: Bytes::from_static(br#"{"code":200,"msg":"hello"}"#),
                            error: None,
                        }
                    };
                    nc.publish(
                        m.reply.clone().expect("a reply inbox"),
                        reply.encode_to_vec().into(),
                    )
                    .await
                    .unwrap();
                    seen.push((m.payload.to_vec(), req));
                    if seen.len() == 3 {
                        return seen;
                    }
                }
                seen
            }
        });
        let mut body = None;
        for _ in 0..100 {
            match c.request(route, "").await {
                Ok(b) => {
                    body = Some(b);
                    break;
                }
                Err(e) => {
                    assert_eq!(e.server_code(), Some("PIT-500"), "before the record is seen: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        assert_eq!(&body.expect("forwarded within 5 s")[..], br#"{"code":200,"msg":"hello"}"#);
        let e = c.request("gob.testsvc.fails", "x").await.unwrap_err();
        assert_eq!((e.server_code(), e.to_string().contains("no code")), (Some("PIT-000"), true));
        c.notify("gob.testsvc.note", "\"g-before\"").await.unwrap();
        let seen = wait("three forwarded messages", answered).await.unwrap();

        let (raw, req) = &seen[0];
        assert_eq!(req.r#type, 0, "Sys");
        assert_eq!(req.frontend_id, front_id);
        let session = req.session.as_ref().expect("session");
        assert_eq!(session.uid, "");
        assert_eq!(&session.data[..], br#"{"ipversion":"ipv4"}"#);
        let msg = req.msg.as_ref().expect("msg");
        assert_eq!((msg.route.as_str(), msg.r#type, msg.reply.as_str()), (route, 0, ""));
        assert!(msg.id > 0 && msg.data.is_empty());
        // Field order as Go writes it: session (2), msg (3), frontendID (4), metadata (5);
        // the type field (1) is absent for Sys.
        assert_eq!(raw[0], 0x12, "first field is the session");
        let ctx: serde_json::Value = serde_json::from_slice(&req.metadata).unwrap();
        let keys: Vec<&str> = ctx.as_object().unwrap().keys().map(String::as_str).collect();
        // Go v2's keys, plus v3's W3C trace context (v2 peers forward unknown keys).
        assert_eq!(
            keys,
            [
                "opentracing-span",
                "otel-span",
                "peer.id",
                "peer.service",
                "req-route",
                "req-start-time",
                "reqTimeout",
                "request.id"
            ]
        );
        assert_eq!(ctx["peer.id"], front_id.as_str());
        assert_eq!(ctx["peer.service"], "connector");
        assert_eq!(ctx["req-route"], route);
        assert_eq!(ctx["reqTimeout"], "5s");
        assert_eq!(ctx["opentracing-span"], serde_json::json!({}));
        assert_eq!(ctx["request.id"].as_str().map(str::len), Some(22));
        let tp = ctx["otel-span"]["traceparent"].as_str().unwrap();
        assert!(pitaya::context::TraceParent::parse(tp).is_some(), "{tp}");
        assert!(ctx["req-start-time"].as_i64().is_some_and(|t| t > 0));

        let (_, notify) = &seen[2];
        let m = notify.msg.as_ref().unwrap();
        assert_eq!((m.r#type, m.id, &m.data[..]), (1, 0, &b"\"g-before\""[..]));
    })
    .await;
}

/// A Go frontend's requests, byte for byte from spec Appendix A.2 and A.5, answered by
/// the Rust backend with Go's reply bytes.
#[tokio::test]
async fn rust_backend_answers_go_requests() {
    within(async {
        let prefix = sd_prefix();
        let _back = launch(&Launch::new("game", false, &prefix));
        let subject = format!("pitaya/servers/game/{}", server_id(&prefix, "game"));
        let nc = nats().await;

        let sys = protos::Request {
            session: Some(protos::Session {
                id: 1,
                uid: String::new(),
                data: Bytes::from_static(br#"{"ipversion":"ipv4"}"#),
            }),
            msg: Some(Msg {
                id: 2,
                route: "game.testsvc.testrequestonlysessionreturnsptr".into(),
                ..Msg::default()
            }),
            frontend_id: "f8208c66-6960-49ce-a377-efebc95fc107".into(),
            metadata: metadata(),
            ..protos::Request::default()
        };
        let mut want = vec![0x0a, 0x1a];
        want.extend_from_slice(br#"{"code":200,"msg":"hello"}"#);
        assert_eq!(call(&nc, subject.clone(), &sys).await, want);

        let notify = protos::Request {
            msg: Some(Msg {
                route: "game.testsvc.testsendgroupmsg".into(),
                data: Bytes::from_static(b"\"g-before\""),
                r#type: 1,
                ..Msg::default()
            }),
            ..sys.clone()
        };
        assert_eq!(call(&nc, subject.clone(), &notify).await, b"\x0a\x03ack");

        let no_ctx = protos::Request { metadata: Bytes::new(), ..sys.clone() };
        assert_eq!(
            call(&nc, subject.clone(), &no_ctx).await,
            b"\x12\x1b\x0a\x07PIT-500\x12\x10no context found"
        );

        let bad_timeout = protos::Request {
            metadata: Bytes::from_static(br#"{"reqTimeout":"abc"}"#),
            ..sys.clone()
        };
        let r = Response::decode(&call(&nc, subject.clone(), &bad_timeout).await[..]).unwrap();
        let e = r.error.unwrap();
        assert_eq!(
            (e.code.as_str(), e.msg.as_str()),
            ("PIT-500", "time: invalid duration \"abc\"")
        );

        let arg = protos_test_request("x");
        let ok = call(
            &nc,
            subject.clone(),
            &user_req("game.testremotesvc.rpctestptrreturnsptr", arg.clone()),
        )
        .await;
        assert_eq!(ok, b"\x0a\x0a\x08\xc8\x01\x12\x05got x");
        // The server-type part of a user route is ignored; two parts work too.
        let two = call(
            &nc,
            subject.clone(),
            &user_req("testremotesvc.rpctestptrreturnsptr", arg.clone()),
        )
        .await;
        assert_eq!(two, ok);
        let err = call(
            &nc,
            subject.clone(),
            &user_req("game.testremotesvc.rpctestreturnserror", arg.clone()),
        )
        .await;
        assert_eq!(
            err,
            b"\x12\x23\x0a\x07PIT-433\x12\x0atest error\x1a\x0c\x0a\x04some\x12\x04meta"
        );
        let nf = call(
            &nc,
            subject.clone(),
            &user_req("game.testremotesvc.rpctestnotfound", arg.clone()),
        )
        .await;
        let mut want =
            b"\x12\x42\x0a\x07PIT-404\x12\x0froute not found\x1a\x26\x0a\x05route\x12\x1d".to_vec();
        want.extend_from_slice(b"testremotesvc.rpctestnotfound");
        assert_eq!(nf, want);
        let one =
            Response::decode(&call(&nc, subject.clone(), &user_req("rpctest", arg)).await[..])
                .unwrap();
        let e = one.error.unwrap();
        assert_eq!(
            (e.code.as_str(), e.msg.as_str(), e.metadata["route"].as_str()),
            ("PIT-400", "cannot decode route", "rpctest")
        );
        // Garbage gets no answer (the caller times out) and the server keeps serving.
        let garbage = tokio::time::timeout(
            Duration::from_secs(1),
            nc.request(subject.clone(), Bytes::from_static(b"\xff\xff\xff")),
        )
        .await;
        assert!(!matches!(garbage, Ok(Ok(_))), "garbage was answered");
        let none =
            call(&nc, subject, &user_req("game.testremotesvc.rpctestnoargs", Vec::new())).await;
        assert_eq!(none, b"\x0a\x10\x08\xc8\x01\x12\x0bgot nothing");
    })
    .await;
}

fn protos_test_request(msg: &str) -> Vec<u8> {
    pitaya_protos::test::TestRequest { msg: msg.to_owned() }.encode_to_vec()
}

/// What a Go backend and Go frontends send to a frontend: sys remotes (A.3), pushes and
/// kicks on the user subjects (A.4), bind announcements (§8.5).
#[tokio::test]
async fn rust_frontend_serves_go_peers() {
    within(async {
        let prefix = sd_prefix();
        let front = launch(&Launch::new("connector", true, &prefix));
        let front_id = server_id(&prefix, "connector");
        let subject = format!("pitaya/servers/connector/{front_id}");
        let nc = nats().await;
        let (c1, mut p1) = connect(&front.addr).await;
        assert_eq!(&c1.request("connector.testsvc.testbindid", "u1").await.unwrap()[..], b"ack");

        // A.4: a push published by a Go backend reaches the client unchanged.
        let push = hex("0a11726f7574652e73656e64746f7573657273120275311a0b68656c6c6f2d7573657273");
        nc.publish("pitaya/connector/user/u1/push", push.into()).await.unwrap();
        let got = wait("push", p1.recv()).await.unwrap();
        assert_eq!((got.route.as_str(), &got.data[..]), ("route.sendtousers", &b"hello-users"[..]));

        // sys.pushsession replaces the session data; sys.bindsession on an unknown session.
        let s = protos::Session {
            id: 1,
            uid: "u1".into(),
            data: Bytes::from_static(br#"{"level":3}"#),
        };
        assert_eq!(
            call(&nc, subject.clone(), &user_req("sys.pushsession", s.encode_to_vec())).await,
            b"\x0a\x05\x0a\x03ack"
        );
        let unknown = protos::Session { id: 999, uid: "zz".into(), data: Bytes::new() };
        let r = Response::decode(
            &call(&nc, subject.clone(), &user_req("sys.bindsession", unknown.encode_to_vec()))
                .await[..],
        )
        .unwrap();
        assert_eq!(
            r.error.map(|e| (e.code, e.msg)),
            Some(("PIT-000".into(), "session not found".into()))
        );
        let r = Response::decode(
            &call(
                &nc,
                subject.clone(),
                &user_req("sys.kick", KickMsg { user_id: "nobody".into() }.encode_to_vec()),
            )
            .await[..],
        )
        .unwrap();
        assert_eq!(r.error.map(|e| e.msg), Some("session not found".into()));

        // A bind announcement with this frontend's own id changes nothing.
        nc.publish(
            "pitaya/connector/bindings",
            BindMsg { uid: "u1".into(), fid: front_id.clone() }.encode_to_vec().into(),
        )
        .await
        .unwrap();
        nc.flush().await.unwrap();
        assert!(!eventually(Duration::from_millis(300), || c1.is_closed()).await);

        // sys.kick from a Go backend: KickAnswer{kicked:true}, and the client is kicked.
        let kicked = call(
            &nc,
            subject.clone(),
            &user_req("sys.kick", KickMsg { user_id: "u1".into() }.encode_to_vec()),
        )
        .await;
        assert_eq!(kicked, b"\x0a\x02\x08\x01");
        assert!(eventually(Duration::from_secs(2), || c1.is_closed()).await);
        assert!(c1.kicked());

        // A foreign bind announcement kicks the local holder; a hand-built KickMsg too.
        let (c2, _p2) = connect(&front.addr).await;
        c2.request("connector.testsvc.testbindid", "u2").await.unwrap();
        nc.publish(
            "pitaya/connector/bindings",
            BindMsg { uid: "u2".into(), fid: "another-frontend".into() }.encode_to_vec().into(),
        )
        .await
        .unwrap();
        assert!(eventually(Duration::from_secs(2), || c2.is_closed()).await);
        assert!(c2.kicked());
        let (c3, _p3) = connect(&front.addr).await;
        c3.request("connector.testsvc.testbindid", "d2").await.unwrap();
        nc.publish("pitaya/connector/user/d2/kick", hex("0a026432").into()).await.unwrap();
        assert!(eventually(Duration::from_secs(2), || c3.is_closed()).await);
        assert!(c3.kicked());
        let _ = Push::default();
    })
    .await;
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}
