//! The cluster runtime in one process: the `testing` components on a frontend and a
//! backend joined by `MemoryCluster`.

use bytes::Bytes;
use pitaya::cluster::memory::MemoryCluster;
use pitaya::config::ConfigLoader;
use pitaya::{RunningApp, SerializerKind};
use pitaya_cluster_examples::testing::{Options, builder};

use crate::support::{connect, expect_error_body, wait, within};

async fn start(cluster: &MemoryCluster, ty: &str, frontend: bool, loopback: bool) -> RunningApp {
    // The example listens on all interfaces like Go's; these tests listen on loopback.
    let opts = Options {
        server_type: ty.to_owned(),
        port: 0,
        frontend: false,
        serializer: SerializerKind::Json,
        grpc_port: 3434,
    };
    let config = ConfigLoader::new()
        .set("pitaya.cluster.rpc.server.loopbackenabled", loopback)
        .load()
        .expect("config");
    let mut b = builder(&opts).frontend(frontend).config(config).memory_cluster(cluster);
    if frontend {
        b = b.tcp("127.0.0.1:0");
    }
    b.build().expect("build").start().await.expect("start")
}

fn addr(app: &RunningApp) -> String {
    app.local_addrs()[0].1.to_string()
}

#[tokio::test]
async fn forward_to_backend() {
    within(async {
        let cluster = MemoryCluster::new();
        let _game = start(&cluster, "game", false, false).await;
        let front = start(&cluster, "connector", true, false).await;
        let (c, _p) = connect(&addr(&front)).await;
        let cases: [(&str, &[u8], &[u8]); 4] = [
            ("game.testsvc.testrequestonlysessionreturnsptr", b"", br#"{"code":200,"msg":"hello"}"#),
            ("game.testsvc.testrequestreturnsptr", br#"{"msg":"good"}"#, br#"{"code":200,"msg":"good"}"#),
            ("game.testsvc.testrequestreturnsraw", br#"{"msg":"good"}"#, b"good"),
            ("game.testsvc.testrequestreceivereturnsraw", b"woow", b"woow"),
        ];
        for (route, data, want) in cases {
            let got = c.request(route, Bytes::from_static(data)).await.unwrap();
            assert_eq!(&got[..], want, "{route}");
        }
        let e = c.request("game.testsvc.nonexistenthandler", "woow").await.unwrap_err();
        expect_error_body(&e, br#"{"code":"PIT-404","msg":"pitaya/handler: game.testsvc.nonexistenthandler not found"}"#);
        let e = c.request("game.testsvc.testrequestreturnserror", "woow").await.unwrap_err();
        expect_error_body(&e, br#"{"code":"PIT-555","msg":"somerror"}"#);
        let e = c.request("nosuchtype.testsvc.x", "").await.unwrap_err();
        expect_error_body(&e, br#"{"code":"PIT-500","msg":"no servers available of this type"}"#);
    })
    .await;
}

#[tokio::test]
async fn user_rpc_both_ways_and_errors() {
    within(async {
        let cluster = MemoryCluster::new();
        let _game = start(&cluster, "game", false, false).await;
        let front = start(&cluster, "connector", true, false).await;
        let (c, _p) = connect(&addr(&front)).await;
        let ok = br#"{"code":200,"msg":"got thisthis"}"#;
        let got = c
            .request("connector.testsvc.testsendrpc", r#"{"route":"game.testremotesvc.rpctestrawptrreturnsptr","data":"thisthis"}"#)
            .await
            .unwrap();
        assert_eq!(&got[..], ok);
        let got = c
            .request("game.testsvc.testsendrpc", r#"{"route":"connector.testremotesvc.rpctestrawptrreturnsptr","data":"thisthis"}"#)
            .await
            .unwrap();
        assert_eq!(&got[..], ok);
        let got = c
            .request("connector.testsvc.testsendrpcnoargs", r#"{"route":"game.testremotesvc.rpctestnoargs"}"#)
            .await
            .unwrap();
        assert_eq!(&got[..], br#"{"code":200,"msg":"got nothing"}"#);
        let e = c
            .request("game.testsvc.testsendrpc", r#"{"route":"connector.testremotesvc.rpctestreturnserror","data":"x"}"#)
            .await
            .unwrap_err();
        expect_error_body(&e, br#"{"code":"PIT-433","msg":"test error","metadata":{"some":"meta"}}"#);
        let e = c
            .request("connector.testsvc.testsendrpc", r#"{"route":"game.testremotesvc.rpctestnotfound","data":"x"}"#)
            .await
            .unwrap_err();
        expect_error_body(&e, br#"{"code":"PIT-404","msg":"route not found","metadata":{"route":"testremotesvc.rpctestnotfound"}}"#);
        let e = c
            .request("connector.testsvc.testsendrpc", r#"{"route":"connector.testremotesvc.rpctestrawptrreturnsptr","data":"x"}"#)
            .await
            .unwrap_err();
        expect_error_body(&e, br#"{"code":"PIT-000","msg":"you are making a rpc that may be processed locally, either specify a different server type or specify a server id"}"#);
    })
    .await;
}

#[tokio::test]
async fn loopback_serves_own_type_locally() {
    within(async {
        let cluster = MemoryCluster::new();
        let front = start(&cluster, "connector", true, true).await;
        let (c, _p) = connect(&addr(&front)).await;
        let got = c
            .request(
                "connector.testsvc.testsendrpc",
                r#"{"route":"connector.testremotesvc.rpctestrawptrreturnsptr","data":"thisthis"}"#,
            )
            .await
            .unwrap();
        assert_eq!(&got[..], br#"{"code":200,"msg":"got thisthis"}"#);
    })
    .await;
}

#[tokio::test]
async fn backend_bind_group_push_and_kick() {
    within(async {
        let cluster = MemoryCluster::new();
        let _game = start(&cluster, "game", false, false).await;
        let f1 = start(&cluster, "connector", true, false).await;
        let f2 = start(&cluster, "connector", true, false).await;
        let (c1, mut p1) = connect(&addr(&f1)).await;
        let (c2, mut p2) = connect(&addr(&f2)).await;
        assert_eq!(&c1.request("game.testsvc.testbind", "").await.unwrap()[..], b"ack");
        assert_eq!(&c2.request("game.testsvc.testbind", "").await.unwrap()[..], b"ack");
        assert!(f1.handle().sessions().sessions()[0].uid().is_some(), "bound on the frontend");
        for (route, data) in [
            ("game.testsvc.testsendgroupmsg", &b"testing group"[..]),
            ("game.testsvc.testsendgroupmsgptr", &br#"{"msg":"hellow"}"#[..]),
        ] {
            c1.notify(route, Bytes::copy_from_slice(data)).await.unwrap();
            let m1 = wait("push 1", p1.recv()).await.unwrap();
            let m2 = wait("push 2", p2.recv()).await.unwrap();
            assert_eq!((&m1.data[..], &m2.data[..]), (data, data));
        }
        c1.request("game.testsvc.testrequestkickme", "").await.ok();
        wait("kick", c1.closed()).await;
        assert!(c1.kicked());
        assert!(!c2.is_closed());
    })
    .await;
}

#[tokio::test]
async fn unique_session_across_frontends_of_one_type_only() {
    within(async {
        let cluster = MemoryCluster::new();
        let a = start(&cluster, "connector", true, false).await;
        let b = start(&cluster, "connector", true, false).await;
        let other = start(&cluster, "connector2", true, false).await;
        let (c1, _p1) = connect(&addr(&a)).await;
        let (c3, _p3) = connect(&addr(&other)).await;
        c1.request("connector.testsvc.testbindid", "u1").await.unwrap();
        c3.request("connector2.testsvc.testbindid", "u1").await.unwrap();
        let (c2, _p2) = connect(&addr(&b)).await;
        c2.request("connector.testsvc.testbindid", "u1").await.unwrap();
        wait("first login kicked", c1.closed()).await;
        assert!(c1.kicked());
        assert!(!c3.is_closed() && !c2.is_closed());
    })
    .await;
}

#[tokio::test]
async fn push_to_users_from_frontend_and_backend() {
    within(async {
        let cluster = MemoryCluster::new();
        let _game = start(&cluster, "game", false, false).await;
        let f1 = start(&cluster, "connector", true, false).await;
        let f2 = start(&cluster, "connector", true, false).await;
        let (c1, mut p1) = connect(&addr(&f1)).await;
        let (c2, mut p2) = connect(&addr(&f2)).await;
        c1.request("connector.testsvc.testbindid", "pu1").await.unwrap();
        c2.request("connector.testsvc.testbindid", "pu2").await.unwrap();
        let msg = r#"{"msg":"testing send to users","uids":["pu1","pu2"]}"#;
        for route in ["connector.testsvc.testsendtousers", "game.testsvc.testsendtousers"] {
            c1.notify(route, msg).await.unwrap();
            let m1 = wait("push 1", p1.recv()).await.unwrap();
            let m2 = wait("push 2", p2.recv()).await.unwrap();
            assert_eq!(m1.route, "route.sendtousers");
            assert_eq!(
                (&m1.data[..], &m2.data[..]),
                (&b"testing send to users"[..], &b"testing send to users"[..])
            );
        }
    })
    .await;
}
