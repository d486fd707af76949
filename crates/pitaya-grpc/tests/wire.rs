//! The bytes of `protos.Pitaya` calls, both ways, against the spec's traces (spec §7,
//! Appendix A.5, A.6): literal requests to our server, and what our client sends.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pitaya_cluster::protos::{BindMsg, KickMsg, Push, Request, Response};
use pitaya_cluster::{BindingStorage, RpcClient, RpcServer};
use pitaya_core::Context;
use prost::Message;
use support::raw::{self, RawServer};
use support::*;
use tonic::Code;

const ACK: &[u8] = &[0x0a, 0x03, b'a', b'c', b'k'];
const FID: &str = "e8026820-8b69-41f9-a549-56644dc5ca68";

/// A.6 `PushToUser`: `0a 11 "route.sendtousers" 12 02 "fu" 1a 07 "hi-grpc"`.
fn push_bytes() -> Vec<u8> {
    let mut b = vec![0x0a, 0x11];
    b.extend_from_slice(b"route.sendtousers");
    b.extend_from_slice(&[0x12, 0x02, b'f', b'u', 0x1a, 0x07]);
    b.extend_from_slice(b"hi-grpc");
    b
}

/// A.6 `SessionBindRemote`: `0a 02 "zz" 12 24 <fid>`.
fn bind_bytes(fid: &str) -> Vec<u8> {
    let mut b = vec![0x0a, 0x02, b'z', b'z', 0x12, 0x24];
    b.extend_from_slice(fid.as_bytes());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literal_requests_to_our_server() {
    let cluster = Cluster::default();
    let mut backend = start_server(&cluster, "connector", true).await;
    let addr = backend.server.local_addr();

    // A.6 KickUser: `0a 03 "g1u"` → `08 01`.
    let reply = bounded("kick", raw::call(addr, "/protos.Pitaya/KickUser", b"\x0a\x03g1u")).await;
    assert_eq!(reply.unwrap(), [0x08, 0x01]);
    assert_eq!(next_seen(&mut backend.seen).await, Seen::Kick(KickMsg { user_id: "g1u".into() }));

    let reply = bounded("push", raw::call(addr, "/protos.Pitaya/PushToUser", &push_bytes())).await;
    assert_eq!(reply.unwrap(), ACK);
    let expected = Push {
        route: "route.sendtousers".into(),
        uid: "fu".into(),
        data: Bytes::from_static(b"hi-grpc"),
    };
    assert_eq!(next_seen(&mut backend.seen).await, Seen::Push(expected));

    let reply =
        bounded("bind", raw::call(addr, "/protos.Pitaya/SessionBindRemote", &bind_bytes(FID)))
            .await;
    assert_eq!(reply.unwrap(), ACK);
    let expected = BindMsg { uid: "zz".into(), fid: FID.into() };
    assert_eq!(next_seen(&mut backend.seen).await, Seen::Bind(expected));

    // A.5 layout over Call: type User, msg{route, data}, frontendID, metadata `{}`. The
    // test handler answers with the Request re-encoded, which must give the same bytes.
    let fid = "f8208c66-6960-49ce-a377-efebc95fc107";
    let mut call = vec![0x08, 0x01, 0x1a, 0x2e, 0x12, 0x27];
    call.extend_from_slice(b"game.testremotesvc.rpctestptrreturnsptr");
    call.extend_from_slice(&[0x1a, 0x03, 0x0a, 0x01, b'x', 0x22, 0x24]);
    call.extend_from_slice(fid.as_bytes());
    call.extend_from_slice(&[0x2a, 0x02, b'{', b'}']);
    let reply = bounded("call", raw::call(addr, "/protos.Pitaya/Call", &call)).await.unwrap();
    let mut expected = vec![0x0a, u8::try_from(call.len()).unwrap()];
    expected.extend_from_slice(&call);
    assert_eq!(reply, expected);
    let Seen::Request(seen) = next_seen(&mut backend.seen).await else { panic!("not a request") };
    assert_eq!((seen.r#type, seen.frontend_id.as_str()), (1, fid));

    // Not protobuf: tonic's status, the handler never sees it.
    let status = bounded("junk", raw::call(addr, "/protos.Pitaya/Call", &[0xff, 0xff, 0xff]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    // Unknown method.
    let status = bounded("unknown", raw::call(addr, "/protos.Pitaya/Nope", b"")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    nothing_more(&mut backend.seen, Duration::from_millis(100)).await;
    backend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_our_client_sends() {
    let replies = HashMap::from([
        ("/protos.Pitaya/Call", ACK.to_vec()),
        ("/protos.Pitaya/PushToUser", ACK.to_vec()),
        ("/protos.Pitaya/SessionBindRemote", ACK.to_vec()),
        ("/protos.Pitaya/KickUser", vec![0x08, 0x01]),
    ]);
    let mut peer = RawServer::start(replies).await;
    let cluster = Cluster::default();
    let target = record("connector", true, peer.addr);
    let target_id = target.id.clone();
    cluster.register(target.clone()).await;
    let bindings = Arc::new(TestBindings::default());
    bindings.bind("connector", "zz", &target_id);
    bindings.bind("connector", "g1u", &target_id);
    let storage: Arc<dyn BindingStorage> = bindings.clone();
    let config = client_config(Duration::from_secs(5), false);
    let client = cluster.client("connector", &config, Some(storage));

    // Call: type User, msg{route}, no msg.reply, metadata with the request timeout.
    let resp = bounded("call", client.call(&target, Context::new(), request("game.svc.m", b"")))
        .await
        .unwrap();
    assert_eq!(resp, Response { data: Bytes::from_static(b"ack"), error: None });
    let received = peer.next().await;
    assert_eq!(received.path, "/protos.Pitaya/Call");
    let mut expected = vec![0x08, 0x01, 0x1a, 0x0c, 0x12, 0x0a];
    expected.extend_from_slice(b"game.svc.m");
    expected.extend_from_slice(&[0x2a, 0x13]);
    expected.extend_from_slice(br#"{"reqTimeout":"5s"}"#);
    assert_eq!(received.body, expected);
    assert_eq!(Request::decode(&received.body[..]).unwrap().metadata.len(), 0x13);
    // Only standard gRPC headers (spec §7: no custom metadata), with the deadline.
    let names: BTreeSet<&str> = received.headers.keys().map(|k| k.as_str()).collect();
    let standard = ["content-type", "te", "user-agent", "grpc-timeout", "grpc-accept-encoding"];
    assert!(names.iter().all(|n| standard.contains(n)), "headers: {names:?}");
    assert!(names.contains("grpc-timeout"), "headers: {names:?}");
    assert_eq!(received.headers["content-type"], "application/grpc");

    // PushToUser with the frontend id known (A.6 bytes).
    let push = Push {
        route: "route.sendtousers".into(),
        uid: "fu".into(),
        data: Bytes::from_static(b"hi-grpc"),
    };
    bounded("push", client.send_push("connector", Some(&target_id), push)).await.unwrap();
    let received = peer.next().await;
    assert_eq!(
        (received.path.as_str(), received.body),
        ("/protos.Pitaya/PushToUser", push_bytes())
    );

    // KickUser through the binding: `0a 03 "g1u"`, answered `08 01`.
    bounded("kick", client.send_kick("connector", KickMsg { user_id: "g1u".into() }))
        .await
        .unwrap();
    let received = peer.next().await;
    assert_eq!(
        (received.path.as_str(), &received.body[..]),
        ("/protos.Pitaya/KickUser", &b"\x0a\x03g1u"[..])
    );

    // SessionBindRemote to the frontend holding "zz": `0a 02 "zz" 12 24 <my id>`.
    bounded("bind", client.broadcast_session_bind("zz")).await.unwrap();
    let received = peer.next().await;
    assert_eq!(received.path, "/protos.Pitaya/SessionBindRemote");
    let bind = BindMsg::decode(&received.body[..]).unwrap();
    assert_eq!(received.body, bind_bytes(&bind.fid));
    assert_ne!(bind.fid, target_id);
    client.stop().await;
}
