//! Go Pitaya's e2e suite (`e2e/e2e_test.go`) against the `testing` example server,
//! launched as separate processes over real etcd and NATS with a random SD prefix each,
//! the way Pitaya's `helpers.StartServer` does. One test per Go test, same scenarios.

use std::time::Duration;

use bytes::Bytes;

use crate::support::{
    Launch, connect, eventually, expect_error_body, launch, sd_prefix, wait, within,
};

/// A server of the suite on the shared etcd, over NATS or over gRPC (with etcd binding
/// storage), as Go's suite runs with and without `-grpc`.
fn node<'a>(grpc: bool, server_type: &'a str, frontend: bool, prefix: &'a str) -> Launch<'a> {
    Launch { grpc, ..Launch::new(server_type, frontend, prefix) }
}

/// Each scenario twice: `nats::name` and `grpc::name`.
macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {
        mod nats {
            $(#[tokio::test] async fn $name() { super::$name(false).await })*
        }
        mod grpc {
            $(#[tokio::test] async fn $name() { super::$name(true).await })*
        }
    };
}

both_transports!(
    handler_call_to_front,
    group_front,
    kick,
    unique_session_should_kick,
    unique_session_should_succeed_if_kick_fails,
    unique_session_across_frontends_should_succeed_if_kick_fails,
    same_uid_user_should_be_kicked,
    same_uid_user_should_be_kicked_in_different_servers_from_same_type,
    same_uid_user_should_not_be_kicked_in_different_servers_from_diff_type,
    kick_on_back,
    push_to_users,
    forward_to_backend,
    group_back,
    user_rpc,
    loopback_rpc
);

const NONSENSE: &[u8] = br#"{"code":"PIT-000","msg":"you are making a rpc that may be processed locally, either specify a different server type or specify a server id"}"#;

fn uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Go's e2e environment for the unique-session tests.
fn unique(mut l: Launch<'_>) -> Launch<'_> {
    l.env.push(("PITAYA_SESSION_UNIQUE".to_owned(), "true".to_owned()));
    l
}

/// Binds `uid` through `testonlybindid` and checks the reply is Go's `ack`, not an error.
async fn only_bind(c: &pitaya::client::Client, uid: &str) {
    match c.request("connector.testsvc.testonlybindid", uid.to_owned()).await {
        Ok(body) => assert_eq!(&body[..], b"ack"),
        Err(e) => panic!("testonlybindid {uid}: {e}"),
    }
}

/// Checks that `uid` belongs to the session of `c` (a push to the uid reaches it) and
/// that the session stays connected.
async fn owns(c: &pitaya::client::Client, pushes: &mut pitaya::client::Pushes, uid: &str) {
    let msg = format!(r#"{{"msg":"mine","uids":["{uid}"]}}"#);
    c.notify("connector.testsvc.testsendtousers", msg).await.unwrap();
    assert_eq!(&wait("push to the new session", pushes.recv()).await.unwrap().data[..], b"mine");
    assert!(!c.is_closed());
}

/// Binds `uid`, already bound before on this frontend type: the bind itself succeeds,
/// but when the older session was on the same frontend the uid is still a member of that
/// frontend's group `g1`, so the handler answers `PIT-441`, as Go's does.
async fn bind_again(c: &pitaya::client::Client, uid: &str) {
    match c.request("connector.testsvc.testbindid", uid.to_owned()).await {
        Ok(body) => assert_eq!(&body[..], b"ack"),
        Err(e) => {
            expect_error_body(&e, br#"{"code":"PIT-441","msg":"member already exists in group"}"#)
        }
    }
}

/// Asserts the response to `route` with `data` is `want`: a success body, or, when it
/// starts with `{"code":"PIT-`, an error response with that body.
async fn expect(c: &pitaya::client::Client, route: &str, data: &[u8], want: &[u8]) {
    let res = c.request(route, Bytes::copy_from_slice(data)).await;
    if want.starts_with(br#"{"code":"PIT-"#) {
        expect_error_body(&res.expect_err(route), want);
    } else {
        let got = res.unwrap_or_else(|e| panic!("{route}: {e}"));
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want), "{route}");
    }
}

async fn handler_call_to_front(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let front = launch(&node(grpc, "connector", true, &prefix));
        let (c, _p) = connect(&front.addr).await;
        let cases: [(&str, &[u8], &[u8]); 8] = [
            ("connector.testsvc.testrequestonlysessionreturnsptr", b"", br#"{"code":200,"msg":"hello"}"#),
            ("connector.testsvc.testrequestonlysessionreturnsptrnil", b"", br#"{"code":"PIT-000","msg":"reply must not be null"}"#),
            ("connector.testsvc.testrequestonlysessionreturnsrawnil", b"", br#"{"code":"PIT-000","msg":"reply must not be null"}"#),
            ("connector.testsvc.testrequestreturnsptr", br#"{"msg":"good"}"#, br#"{"code":200,"msg":"good"}"#),
            ("connector.testsvc.testrequestreturnsraw", br#"{"msg":"good"}"#, b"good"),
            ("connector.testsvc.testrequestreceivereturnsraw", b"woow", b"woow"),
            ("connector.testsvc.nonexistenthandler", b"woow", br#"{"code":"PIT-404","msg":"pitaya/handler: connector.testsvc.nonexistenthandler not found"}"#),
            ("connector.testsvc.testrequestreturnserror", b"woow", br#"{"code":"PIT-555","msg":"somerror"}"#),
        ];
        for (route, data, want) in cases {
            expect(&c, route, data, want).await;
        }
    })
    .await;
}

async fn group_front(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let front = launch(&node(grpc, "connector", true, &prefix));
        let (c1, mut p1) = connect(&front.addr).await;
        let (c2, mut p2) = connect(&front.addr).await;
        assert_eq!(&c1.request("connector.testsvc.testbind", "").await.unwrap()[..], b"ack");
        assert_eq!(&c2.request("connector.testsvc.testbind", "").await.unwrap()[..], b"ack");
        for (route, data) in [
            ("connector.testsvc.testsendgroupmsg", &b"testing group"[..]),
            ("connector.testsvc.testsendgroupmsgptr", &br#"{"msg":"hellow"}"#[..]),
        ] {
            c1.notify(route, Bytes::copy_from_slice(data)).await.unwrap();
            let m1 = wait("push to c1", p1.recv()).await.expect("c1 push");
            let m2 = wait("push to c2", p2.recv()).await.expect("c2 push");
            assert_eq!((&m1.data[..], &m2.data[..]), (data, data), "{route}");
        }
    })
    .await;
}

async fn kick(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let front = launch(&node(grpc, "connector", true, &prefix));
        let (c1, _p1) = connect(&front.addr).await;
        let (c2, _p2) = connect(&front.addr).await;
        let uid1 = uid();
        c1.request("connector.testsvc.testbindid", uid1.clone()).await.unwrap();
        let res = c2.request("connector.testsvc.testrequestkickuser", uid1).await.unwrap();
        assert_eq!(&res[..], br#"{"code":200,"msg":"ok"}"#);
        assert!(eventually(Duration::from_secs(1), || c1.is_closed()).await, "c1 still connected");
        assert!(c1.kicked());
    })
    .await;
}

/// A second login with the same uid on the same frontend kicks the first: its client
/// gets the kick packet, and the newer session owns the uid.
/// Go's `TestUniqueSession_ShouldKick`, step by step: with `PITAYA_SESSION_UNIQUE=true`
/// a uid bound through `testonlybindid` on one connection is bound again on a second
/// connection of the same frontend. Both replies are successes (no error flag) and the
/// first client is disconnected within 1 s (with a kick packet, spec §8.5).
async fn unique_session_should_kick(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let front = launch(&unique(node(grpc, "connector", true, &prefix)));
        let (c1, _p1) = connect(&front.addr).await;
        let uid1 = uid();
        only_bind(&c1, &uid1).await;
        let (c2, mut p2) = connect(&front.addr).await;
        only_bind(&c2, &uid1).await;
        assert!(eventually(Duration::from_secs(1), || c1.is_closed()).await, "c1 still connected");
        assert!(c1.kicked(), "the older session must get a kick packet");
        // Beyond Go's test: the uid now belongs to the newer session.
        let msg = format!(r#"{{"msg":"still here","uids":["{uid1}"]}}"#);
        c2.notify("connector.testsvc.testsendtousers", msg).await.unwrap();
        assert_eq!(
            &wait("push to the newer session", p2.recv()).await.unwrap().data[..],
            b"still here"
        );
    })
    .await;
}

/// Go's `TestUniqueSession_ShouldSucceedIfKickFails`, step by step: the first client
/// drops its connection right after its bind, so kicking it cannot be delivered;
/// the second bind of the same uid on the same frontend must still succeed.
async fn unique_session_should_succeed_if_kick_fails(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let front = launch(&unique(node(grpc, "connector", true, &prefix)));
        let (c1, _p1) = connect(&front.addr).await;
        let uid1 = uid();
        // Go's test disconnects without reading this reply; waiting for it makes sure
        // the uid is bound before the connection dies, the case the test is about.
        only_bind(&c1, &uid1).await;
        c1.close().await;
        let (c2, mut p2) = connect(&front.addr).await;
        only_bind(&c2, &uid1).await;
        // Beyond Go's test: the uid belongs to the new session, which stays connected.
        owns(&c2, &mut p2, &uid1).await;
    })
    .await;
}

/// Not in Go's suite: the same as above across two frontends of one type, where the
/// older session's death must not fail the newer bind on the other frontend either.
async fn unique_session_across_frontends_should_succeed_if_kick_fails(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let a = launch(&unique(node(grpc, "connector", true, &prefix)));
        let b = launch(&unique(node(grpc, "connector", true, &prefix)));
        let uid1 = uid();
        let (c1, _p1) = connect(&a.addr).await;
        only_bind(&c1, &uid1).await;
        c1.close().await;
        let (c2, mut p2) = connect(&b.addr).await;
        only_bind(&c2, &uid1).await;
        owns(&c2, &mut p2, &uid1).await;
    })
    .await;
}

async fn same_uid_user_should_be_kicked(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let front = launch(&node(grpc, "connector", true, &prefix));
        let (c1, _p1) = connect(&front.addr).await;
        let (c2, _p2) = connect(&front.addr).await;
        let uid1 = uid();
        c1.request("connector.testsvc.testbindid", uid1.clone()).await.unwrap();
        bind_again(&c2, &uid1).await;
        assert!(eventually(Duration::from_secs(1), || c1.is_closed()).await, "c1 still connected");
    })
    .await;
}

async fn same_uid_user_should_be_kicked_in_different_servers_from_same_type(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let f1 = launch(&node(grpc, "connector", true, &prefix));
        let f2 = launch(&node(grpc, "connector", true, &prefix));
        let (c1, _p1) = connect(&f1.addr).await;
        let (c2, _p2) = connect(&f2.addr).await;
        let uid1 = uid();
        c1.request("connector.testsvc.testbindid", uid1.clone()).await.unwrap();
        c2.request("connector.testsvc.testbindid", uid1).await.unwrap();
        assert!(eventually(Duration::from_secs(1), || c1.is_closed()).await, "c1 still connected");
        assert!(!c2.is_closed());
    })
    .await;
}

async fn same_uid_user_should_not_be_kicked_in_different_servers_from_diff_type(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let f1 = launch(&node(grpc, "connector1", true, &prefix));
        let f2 = launch(&node(grpc, "connector2", true, &prefix));
        let (c1, _p1) = connect(&f1.addr).await;
        let (c2, _p2) = connect(&f2.addr).await;
        let uid1 = uid();
        // As in Go: the route names type `connector`, which neither server is, so both
        // requests are answered with an error; neither client may be disconnected.
        let _ = c1.request("connector.testsvc.testbindid", uid1.clone()).await;
        let _ = c2.request("connector.testsvc.testbindid", uid1.clone()).await;
        let _ = c1.request("connector1.testsvc.testbindid", uid1.clone()).await.unwrap();
        let _ = c2.request("connector2.testsvc.testbindid", uid1).await.unwrap();
        assert!(!eventually(Duration::from_secs(1), || c1.is_closed()).await, "c1 was kicked");
        assert!(!c2.is_closed());
    })
    .await;
}

async fn kick_on_back(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let front = launch(&node(grpc, "connector", true, &prefix));
        let _back = launch(&node(grpc, "game", false, &prefix));
        let (c1, _p1) = connect(&front.addr).await;
        assert_eq!(&c1.request("game.testsvc.testbind", "").await.unwrap()[..], b"ack");
        let _ = c1.request("game.testsvc.testrequestkickme", "").await;
        assert!(eventually(Duration::from_secs(1), || c1.is_closed()).await, "c1 still connected");
        assert!(c1.kicked());
    })
    .await;
}

async fn push_to_users(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let _back = launch(&node(grpc, "game", false, &prefix));
        let f1 = launch(&node(grpc, "connector", true, &prefix));
        let f2 = launch(&node(grpc, "connector", true, &prefix));
        let (c1, mut p1) = connect(&f1.addr).await;
        let (c2, mut p2) = connect(&f2.addr).await;
        let (uid1, uid2) = (uid(), uid());
        assert_eq!(
            &c1.request("connector.testsvc.testbindid", uid1.clone()).await.unwrap()[..],
            b"ack"
        );
        assert_eq!(
            &c2.request("connector.testsvc.testbindid", uid2.clone()).await.unwrap()[..],
            b"ack"
        );
        let msg = format!(r#"{{"msg":"testing send to users","uids":["{uid1}","{uid2}"]}}"#);
        for route in ["connector.testsvc.testsendtousers", "game.testsvc.testsendtousers"] {
            c1.notify(route, msg.clone()).await.unwrap();
            let m1 = wait("push to c1", p1.recv()).await.unwrap();
            let m2 = wait("push to c2", p2.recv()).await.unwrap();
            for m in [&m1, &m2] {
                assert_eq!(m.route, "route.sendtousers");
                assert_eq!(&m.data[..], b"testing send to users", "{route}");
            }
        }
    })
    .await;
}

async fn forward_to_backend(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let _back = launch(&node(grpc, "game", false, &prefix));
        let front = launch(&Launch { lazy: true, ..node(grpc, "connector", true, &prefix) });
        let (c, _p) = connect(&front.addr).await;
        let cases: [(&str, &[u8], &[u8]); 6] = [
            ("game.testsvc.testrequestonlysessionreturnsptr", b"", br#"{"code":200,"msg":"hello"}"#),
            ("game.testsvc.testrequestreturnsptr", br#"{"msg":"good"}"#, br#"{"code":200,"msg":"good"}"#),
            ("game.testsvc.testrequestreturnsraw", br#"{"msg":"good"}"#, b"good"),
            ("game.testsvc.testrequestreceivereturnsraw", b"woow", b"woow"),
            ("game.testsvc.nonexistenthandler", b"woow", br#"{"code":"PIT-404","msg":"pitaya/handler: game.testsvc.nonexistenthandler not found"}"#),
            ("game.testsvc.testrequestreturnserror", b"woow", br#"{"code":"PIT-555","msg":"somerror"}"#),
        ];
        for (route, data, want) in cases {
            expect(&c, route, data, want).await;
        }
    })
    .await;
}

async fn group_back(grpc: bool) {
    within(async {
        let prefix = sd_prefix();
        let _back = launch(&node(grpc, "game", false, &prefix));
        let f1 = launch(&node(grpc, "connector", true, &prefix));
        let f2 = launch(&node(grpc, "connector", true, &prefix));
        let (c1, mut p1) = connect(&f1.addr).await;
        let (c2, mut p2) = connect(&f2.addr).await;
        assert_eq!(&c1.request("game.testsvc.testbind", "").await.unwrap()[..], b"ack");
        assert_eq!(&c2.request("game.testsvc.testbind", "").await.unwrap()[..], b"ack");
        for (route, data) in [
            ("game.testsvc.testsendgroupmsg", &b"testing group"[..]),
            ("game.testsvc.testsendgroupmsgptr", &br#"{"msg":"hellow"}"#[..]),
        ] {
            c1.notify(route, Bytes::copy_from_slice(data)).await.unwrap();
            let m1 = wait("push to c1", p1.recv()).await.unwrap();
            let m2 = wait("push to c2", p2.recv()).await.unwrap();
            assert_eq!((&m1.data[..], &m2.data[..]), (data, data), "{route}");
        }
    })
    .await;
}

/// The table of Go's TestUserRPC and TestLoopbackRPC; only `same_server` differs.
async fn user_rpc_table(grpc: bool, loopback: bool) {
    let prefix = sd_prefix();
    // As Go's suite: the backend dials its peers lazily.
    let _back = launch(&Launch { lazy: true, ..node(grpc, "game", false, &prefix) });
    let front = launch(&Launch { loopback, ..node(grpc, "connector", true, &prefix) });
    let (c, _p) = connect(&front.addr).await;
    let got = br#"{"code":200,"msg":"got thisthis"}"#;
    let error = br#"{"code":"PIT-433","msg":"test error","metadata":{"some":"meta"}}"#;
    let same_server: &[u8] = if loopback { got } else { NONSENSE };
    let cases: [(&str, &str, &[u8], &[u8]); 8] = [
        ("front_to_back", "connector.testsvc.testsendrpc", br#"{"route":"game.testremotesvc.rpctestrawptrreturnsptr","data":"thisthis"}"#, got),
        ("back_to_front", "game.testsvc.testsendrpc", br#"{"route":"connector.testremotesvc.rpctestrawptrreturnsptr","data":"thisthis"}"#, got),
        ("front_to_back_error", "connector.testsvc.testsendrpc", br#"{"route":"game.testremotesvc.rpctestreturnserror","data":"thisthis"}"#, error),
        ("back_to_front_error", "game.testsvc.testsendrpc", br#"{"route":"connector.testremotesvc.rpctestreturnserror","data":"thisthis"}"#, error),
        ("same_server", "connector.testsvc.testsendrpc", br#"{"route":"connector.testremotesvc.rpctestrawptrreturnsptr","data":"thisthis"}"#, same_server),
        ("front_to_back_ptr", "connector.testsvc.testsendrpc", br#"{"route":"game.testremotesvc.rpctestptrreturnsptr","data":"thisthis"}"#, got),
        ("no_args", "connector.testsvc.testsendrpcnoargs", br#"{"route":"game.testremotesvc.rpctestnoargs"}"#, br#"{"code":200,"msg":"got nothing"}"#),
        ("not_found", "connector.testsvc.testsendrpc", br#"{"route":"game.testremotesvc.rpctestnotfound","data":"thisthis"}"#, br#"{"code":"PIT-404","msg":"route not found","metadata":{"route":"testremotesvc.rpctestnotfound"}}"#),
    ];
    for (name, route, data, want) in cases {
        eprintln!("case {name}");
        expect(&c, route, data, want).await;
    }
}

async fn user_rpc(grpc: bool) {
    within(user_rpc_table(grpc, false)).await;
}

async fn loopback_rpc(grpc: bool) {
    within(user_rpc_table(grpc, true)).await;
}
