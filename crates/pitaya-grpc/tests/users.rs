//! Push, kick and bind announcements by uid through the binding storage (spec §7, §8.4,
//! §8.5), between a Rust client and a Rust server over gRPC on loopback.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use pitaya_cluster::protos::{BindMsg, KickAnswer, KickMsg, Push};
use pitaya_cluster::{BINDING_NOT_FOUND, BindingStorage, RpcClient, RpcServer, ServiceDiscovery};
use pitaya_grpc::NO_BINDING_STORAGE;
use pitaya_grpc::proto::pitaya_client::PitayaClient;
use support::*;
use tonic::Code;

const QUIET: Duration = Duration::from_millis(100);

fn push(uid: &str) -> Push {
    Push {
        route: "route.sendtousers".into(),
        uid: uid.into(),
        data: Bytes::from_static(b"hi-grpc"),
    }
}

fn with_storage(
    cluster: &Cluster,
    server_type: &str,
) -> (Arc<TestBindings>, Arc<pitaya_grpc::GrpcRpcClient>) {
    let bindings = Arc::new(TestBindings::default());
    let storage: Arc<dyn BindingStorage> = bindings.clone();
    let client =
        cluster.client(server_type, &client_config(Duration::from_secs(2), false), Some(storage));
    (bindings, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_by_frontend_id_or_binding() {
    let cluster = Cluster::default();
    let mut frontend = start_server(&cluster, "connector", true).await;
    let (bindings, client) = with_storage(&cluster, "game");

    // A backend session knows its frontend: no lookup.
    bounded("push", client.send_push("connector", Some(&frontend.me.id), push("fu")))
        .await
        .expect("push");
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("fu")));
    assert_eq!(bindings.lookups.load(Ordering::SeqCst), 0);

    // By uid: the binding names the frontend.
    bindings.bind("connector", "fu", &frontend.me.id);
    bounded("push", client.send_push("connector", None, push("fu"))).await.expect("push");
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("fu")));
    // An empty frontend id counts as none.
    bounded("push", client.send_push("connector", Some(""), push("fu"))).await.expect("push");
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("fu")));

    // No binding: nothing sent, the uid fails.
    let err =
        bounded("push", client.send_push("connector", None, push("nobody"))).await.unwrap_err();
    assert_eq!(err.message(), BINDING_NOT_FOUND);
    // The frontend holds no such session.
    bindings.bind("connector", GONE, &frontend.me.id);
    let err = bounded("push", client.send_push("connector", None, push(GONE))).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        ("PIT-000", "rpc error: code = Unknown desc = session not found")
    );
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push(GONE)));
    // The binding names a server that is not (or no longer) in discovery.
    bindings.bind("connector", "stale", "crashed-frontend");
    let err =
        bounded("push", client.send_push("connector", None, push("stale"))).await.unwrap_err();
    assert_eq!(err.message(), pitaya_grpc::NO_CONNECTION);
    nothing_more(&mut frontend.seen, QUIET).await;
    frontend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_without_binding_are_counted_per_route() {
    // The count is process-wide: routes of their own keep other tests out of it.
    fn count(route: &str) -> u64 {
        let counts = pitaya_grpc::pushes_without_binding();
        counts.iter().find(|(r, _)| r == route).map_or(0, |(_, n)| *n)
    }
    const OFFLINE: &str = "count.offline";
    const OTHER: &str = "count.other";
    let cluster = Cluster::default();
    let mut frontend = start_server(&cluster, "connector", true).await;
    let (bindings, client) = with_storage(&cluster, "game");
    bindings.bind("connector", "online", &frontend.me.id);
    bindings.bind("connector", "stale", "crashed-frontend");
    let to = |route: &str, uid: &str| Push { route: route.into(), ..push(uid) };

    for (route, uid) in [(OFFLINE, "nobody"), (OTHER, "nobody"), (OFFLINE, "nobody-else")] {
        // As Go: nothing is sent and the uid is reported as failed.
        let err =
            bounded("push", client.send_push("connector", None, to(route, uid))).await.unwrap_err();
        assert_eq!(err.message(), BINDING_NOT_FOUND);
    }
    // Pushes that found a binding are not counted, whether they succeed or not.
    bounded("push", client.send_push("connector", None, to(OFFLINE, "online")))
        .await
        .expect("push");
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(to(OFFLINE, "online")));
    let err = bounded("push", client.send_push("connector", None, to(OFFLINE, "stale")))
        .await
        .unwrap_err();
    assert_eq!(err.message(), pitaya_grpc::NO_CONNECTION);

    assert_eq!((count(OFFLINE), count(OTHER)), (2, 1));
    nothing_more(&mut frontend.seen, QUIET).await;
    frontend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_uid_needs_a_binding_storage() {
    let cluster = Cluster::default();
    let mut frontend = start_server(&cluster, "connector", true).await;
    let client = cluster.client("connector", &client_config(Duration::from_secs(2), false), None);

    let err = bounded("push", client.send_push("connector", None, push("fu"))).await.unwrap_err();
    assert_eq!((err.code(), err.message()), ("PIT-000", NO_BINDING_STORAGE));
    let kick = KickMsg { user_id: "fu".into() };
    let err = bounded("kick", client.send_kick("connector", kick)).await.unwrap_err();
    assert_eq!(err.message(), NO_BINDING_STORAGE);
    let err = bounded("bind", client.broadcast_session_bind("fu")).await.unwrap_err();
    assert_eq!(err.message(), NO_BINDING_STORAGE);
    // A push with a frontend id needs no storage.
    bounded("push", client.send_push("connector", Some(&frontend.me.id), push("fu")))
        .await
        .unwrap();
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Push(push("fu")));
    frontend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kick_through_the_binding() {
    let cluster = Cluster::default();
    let mut frontend = start_server(&cluster, "connector", true).await;
    let (bindings, client) = with_storage(&cluster, "game");

    bindings.bind("connector", "g1u", &frontend.me.id);
    bounded("kick", client.send_kick("connector", KickMsg { user_id: "g1u".into() }))
        .await
        .expect("kick");
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Kick(KickMsg { user_id: "g1u".into() }));

    let err = bounded("kick", client.send_kick("connector", KickMsg { user_id: "x".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.message(), BINDING_NOT_FOUND);

    bindings.bind("connector", GONE, &frontend.me.id);
    let err = bounded("kick", client.send_kick("connector", KickMsg { user_id: GONE.into() }))
        .await
        .unwrap_err();
    assert_eq!(err.message(), "rpc error: code = Unknown desc = session not found");
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Kick(KickMsg { user_id: GONE.into() }));
    nothing_more(&mut frontend.seen, QUIET).await;
    frontend.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_announcement_goes_to_the_previous_frontend() {
    let cluster = Cluster::default();
    let mut previous = start_server(&cluster, "connector", true).await;
    let (bindings, client) = with_storage(&cluster, "connector");
    let me = {
        // The client's fid is its own server id: learn it from what the peer receives.
        bindings.bind("connector", "zz", &previous.me.id);
        bounded("bind", client.broadcast_session_bind("zz")).await.expect("announced");
        let Seen::Bind(bind) = next_seen(&mut previous.seen).await else { panic!("not a bind") };
        assert_eq!(bind.uid, "zz");
        assert_eq!(bind.fid.len(), 36, "a server id: {}", bind.fid);
        assert_ne!(bind.fid, previous.me.id);
        bind.fid
    };

    // Not bound anywhere yet: nothing to kick.
    bounded("bind", client.broadcast_session_bind("fresh")).await.expect("ok");
    // Bound here already: nothing to send.
    bindings.bind("connector", "mine", &me);
    bounded("bind", client.broadcast_session_bind("mine")).await.expect("ok");
    // Bound on a frontend that left discovery: nothing to send.
    bindings.bind("connector", "stale", "crashed-frontend");
    bounded("bind", client.broadcast_session_bind("stale")).await.expect("ok");
    nothing_more(&mut previous.seen, QUIET).await;

    // The previous frontend leaves: the announcement is skipped.
    previous.sd.stop().await;
    bounded("bind", client.broadcast_session_bind("zz")).await.expect("ok");
    nothing_more(&mut previous.seen, QUIET).await;
    previous.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_seen_by_a_raw_client() {
    let cluster = Cluster::default();
    let mut frontend = start_server(&cluster, "connector", true).await;
    let uri = format!("http://{}", frontend.server.local_addr());
    let mut raw = bounded("connect", PitayaClient::connect(uri)).await.unwrap();

    let ack = bounded("push", raw.push_to_user(push("fu"))).await.unwrap().into_inner();
    assert_eq!((ack.data, ack.error), (Bytes::from_static(b"ack"), None));
    let status = bounded("push", raw.push_to_user(push(GONE))).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unknown, "session not found"));

    let answer = bounded("kick", raw.kick_user(KickMsg { user_id: "g1u".into() })).await.unwrap();
    assert_eq!(answer.into_inner(), KickAnswer { kicked: true });
    let status =
        bounded("kick", raw.kick_user(KickMsg { user_id: GONE.into() })).await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Unknown, "session not found"));

    let bind = BindMsg { uid: "zz".into(), fid: "other".into() };
    let ack = bounded("bind", raw.session_bind_remote(bind.clone())).await.unwrap().into_inner();
    assert_eq!(ack.data, Bytes::from_static(b"ack"));

    for _ in 0..4 {
        next_seen(&mut frontend.seen).await;
    }
    assert_eq!(next_seen(&mut frontend.seen).await, Seen::Bind(bind));
    frontend.server.stop().await;
}
