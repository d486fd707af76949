//! The cluster runtime in one process: the `testing` components on a frontend and a
//! backend joined by `MemoryCluster`.

use bytes::Bytes;
use pitaya::cluster::memory::MemoryCluster;
use pitaya::config::ConfigLoader;
use pitaya::{AppHandle, Component, Error, RunningApp, SerializerKind, Session};
use pitaya_cluster_examples::testing::{Options, TestResponse, builder};

use crate::inproc::addr;
use crate::support::{connect, expect_error_body, wait, within};

/// Session data and server identity, on every server of these tests.
fn extra() -> Component {
    async fn set(s: Session, v: Bytes) -> Result<Bytes, Error> {
        s.set("k", &String::from_utf8_lossy(&v))?;
        s.push_to_front().await?;
        Ok(Bytes::from_static(b"ok"))
    }
    async fn get(s: Session) -> Result<Bytes, Error> {
        Ok(Bytes::from(s.get::<String>("k").unwrap_or_default()))
    }
    async fn whoami(app: AppHandle) -> Result<Bytes, Error> {
        Ok(Bytes::from(app.server().map(|s| s.id.clone()).unwrap_or_default()))
    }
    /// This hop's trace parent, then the one a nested RPC to `connector` arrived with.
    async fn tracehop(app: AppHandle, ctx: pitaya::Context) -> Result<Bytes, Error> {
        let here = ctx.trace_parent().map(|t| t.to_string()).unwrap_or_default();
        let there: TestResponse = app.rpc_no_args(&ctx, "connector.trace.get").await?;
        Ok(Bytes::from(format!("{here}|{}", there.msg)))
    }
    Component::new("extra")
        .handler("set", set)
        .handler("get", get)
        .handler("whoami", whoami)
        .handler("tracehop", tracehop)
}

/// Answers the trace parent its RPC arrived with.
fn trace_remote() -> pitaya::RemoteComponent {
    pitaya::RemoteComponent::new("trace").remote_no_args(
        "get",
        |r: pitaya::RemoteRequest| async move {
            let msg = r.ctx.trace_parent().map(|t| t.to_string()).unwrap_or_default();
            Ok(TestResponse { code: 200, msg })
        },
    )
}

async fn start(cluster: &MemoryCluster, ty: &str, frontend: bool, loopback: bool) -> RunningApp {
    start_with(cluster, ty, frontend, loopback, |b| b).await
}

async fn start_with(
    cluster: &MemoryCluster,
    ty: &str,
    frontend: bool,
    loopback: bool,
    f: impl FnOnce(pitaya::Builder) -> pitaya::Builder,
) -> RunningApp {
    start_configured(cluster, ty, frontend, loopback, &[], f).await
}

async fn start_configured(
    cluster: &MemoryCluster,
    ty: &str,
    frontend: bool,
    loopback: bool,
    keys: &[(&str, &str)],
    f: impl FnOnce(pitaya::Builder) -> pitaya::Builder,
) -> RunningApp {
    // The example listens on all interfaces like Go's; these tests listen on loopback.
    let opts = Options {
        server_type: ty.to_owned(),
        port: 0,
        frontend: false,
        serializer: SerializerKind::Json,
        grpc_port: 3434,
    };
    let config = keys
        .iter()
        .fold(
            ConfigLoader::new().set("pitaya.cluster.rpc.server.loopbackenabled", loopback),
            |loader, (key, value)| loader.set(key, *value),
        )
        .load()
        .expect("config");
    let mut b = f(builder(&opts).component(extra()).remote(trace_remote()))
        .frontend(frontend)
        .config(config)
        .memory_cluster(cluster);
    if frontend {
        b = b.tcp("127.0.0.1:0");
    }
    crate::inproc::start(b).await
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

#[tokio::test]
async fn backend_session_data_travels_both_ways() {
    within(async {
        let cluster = MemoryCluster::new();
        let _game = start(&cluster, "game", false, false).await;
        let front = start(&cluster, "connector", true, false).await;
        let (c, _p) = connect(&addr(&front)).await;
        assert_eq!(&c.request("game.extra.set", "v1").await.unwrap()[..], b"ok");
        // Pushed to the frontend's session...
        assert_eq!(&c.request("connector.extra.get", "").await.unwrap()[..], b"v1");
        // ...and forwarded with the next message to a backend.
        assert_eq!(&c.request("game.extra.get", "").await.unwrap()[..], b"v1");
    })
    .await;
}

#[tokio::test]
async fn custom_routing_picks_the_server() {
    within(async {
        let cluster = MemoryCluster::new();
        let g1 = start(&cluster, "game", false, false).await;
        let g2 = start(&cluster, "game", false, false).await;
        let ids =
            [g1.handle().server().unwrap().id.clone(), g2.handle().server().unwrap().id.clone()];
        let chosen = ids.iter().max().unwrap().clone();
        let front = start_with(&cluster, "connector", true, false, |b| {
            b.route("game", |r| {
                // Sticky by the largest id: a deterministic choice the test can check.
                Ok(r.servers.iter().max_by(|a, b| a.id.cmp(&b.id)).unwrap().clone())
            })
        })
        .await;
        let (c, _p) = connect(&addr(&front)).await;
        for _ in 0..10 {
            assert_eq!(
                String::from_utf8_lossy(&c.request("game.extra.whoami", "").await.unwrap()),
                chosen
            );
        }
        // Without a routing function a session keeps the backend it was first sent to
        // (sticky routing), and sessions are spread over both at random.
        let plain = start(&cluster, "connector", true, false).await;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let (c, _p) = connect(&addr(&plain)).await;
            let first = c.request("game.extra.whoami", "").await.unwrap();
            for _ in 0..3 {
                assert_eq!(c.request("game.extra.whoami", "").await.unwrap(), first, "not sticky");
            }
            seen.insert(first);
            c.close().await;
        }
        assert_eq!(seen.len(), 2, "random routing used one backend only");
    })
    .await;
}

#[tokio::test]
async fn rpc_to_a_given_server() {
    within(async {
        let cluster = MemoryCluster::new();
        let g1 = start(&cluster, "game", false, false).await;
        let _g2 = start(&cluster, "game", false, false).await;
        let front = start(&cluster, "connector", true, false).await;
        let app = front.handle();
        let ctx = pitaya::Context::new();
        let target = g1.handle().server().unwrap().id.clone();
        let arg = pitaya_cluster_examples::testing::TestRequest { msg: "to".into() };
        let r: pitaya_cluster_examples::testing::TestResponse = app
            .rpc_to(&ctx, &target, "game.testremotesvc.rpctestptrreturnsptr", &arg)
            .await
            .unwrap();
        assert_eq!(r.msg, "got to");
        let e = app
            .rpc_to::<pitaya_cluster_examples::testing::TestResponse>(
                &ctx,
                "nope",
                "game.testremotesvc.rpctestnoargs",
                &arg,
            )
            .await
            .unwrap_err();
        assert_eq!(e.message(), "server not found");
        let own = app.server().unwrap().id.clone();
        let e = app
            .rpc_to::<pitaya_cluster_examples::testing::TestResponse>(
                &ctx,
                &own,
                "connector.testremotesvc.rpctestnoargs",
                &arg,
            )
            .await
            .unwrap_err();
        assert!(e.message().starts_with("you are making a rpc that may be processed locally"));
        let e = app
            .rpc::<pitaya_cluster_examples::testing::TestResponse>(
                &ctx,
                "testremotesvc.rpctestnoargs",
                &arg,
            )
            .await
            .unwrap_err();
        assert!(e.message().starts_with("no server type chosen for sending RPC"));
    })
    .await;
}

/// The W3C trace context crosses hops: frontend → backend (forward) → frontend (RPC)
/// keeps one trace id with a new span id per hop.
#[tokio::test]
async fn trace_context_crosses_server_hops() {
    within(async {
        let cluster = MemoryCluster::new();
        let _game = start(&cluster, "game", false, false).await;
        let front = start(&cluster, "connector", true, false).await;
        let (c, _p) = connect(&addr(&front)).await;
        let body = c.request("game.extra.tracehop", "").await.unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        let (here, there) = body.split_once('|').unwrap();
        let here = pitaya::context::TraceParent::parse(here).expect("the backend got a trace");
        let there = pitaya::context::TraceParent::parse(there).expect("the nested RPC carried it");
        assert_eq!(here.trace_id, there.trace_id, "one trace across hops");
        assert_ne!(here.span_id, there.span_id, "a span per hop");
        // A second request starts another trace.
        let again = c.request("game.extra.tracehop", "").await.unwrap();
        let again = pitaya::context::TraceParent::parse(
            String::from_utf8_lossy(&again).split('|').next().unwrap(),
        )
        .unwrap();
        assert_ne!(again.trace_id, here.trace_id);
    })
    .await;
}

/// A raw TCP client for session resume (`docs/resume.md`): the Rust client's own resume
/// is tested on its own; here every byte is ours.
struct ResumeClient {
    stream: tokio::net::TcpStream,
    buf: bytes::BytesMut,
    next_id: u64,
}

impl ResumeClient {
    /// Connects and handshakes with `resume` as `sys.resume`; returns the client and the
    /// response's `sys.resume`.
    async fn connect(addr: &str, resume: serde_json::Value) -> (Self, serde_json::Value) {
        use tokio::io::AsyncWriteExt;
        let stream = wait("connect", tokio::net::TcpStream::connect(addr)).await.expect("connect");
        let mut c = Self { stream, buf: bytes::BytesMut::new(), next_id: 1 };
        let hs = serde_json::json!({"sys": {"platform": "test", "resume": resume}});
        c.send(pitaya::codec::PacketType::Handshake, &serde_json::to_vec(&hs).unwrap()).await;
        let response = c.packet().await;
        assert_eq!(response.kind, pitaya::codec::PacketType::Handshake);
        let response: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(response["code"], 200, "{response}");
        c.stream.write_all(&[0x02, 0, 0, 0]).await.expect("ack");
        (c, response["sys"]["resume"].clone())
    }

    async fn send(&mut self, kind: pitaya::codec::PacketType, body: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let mut out = bytes::BytesMut::new();
        pitaya::codec::encode_packet(kind, body, &mut out).expect("encodes");
        self.stream.write_all(&out).await.expect("write");
    }

    async fn packet(&mut self) -> pitaya::codec::Packet {
        use tokio::io::AsyncReadExt;
        wait("a packet", async {
            loop {
                let decoded = pitaya::codec::PacketDecoder::default().decode(&mut self.buf);
                match decoded.expect("framing") {
                    Some(p) if p.kind == pitaya::codec::PacketType::Heartbeat => {}
                    Some(p) => return p,
                    None => {
                        let n = self.stream.read_buf(&mut self.buf).await.expect("read");
                        assert!(n > 0, "closed by the server");
                    }
                }
            }
        })
        .await
    }

    /// Sends a request and returns its answer's body.
    async fn request(&mut self, route: &str, data: &[u8]) -> Bytes {
        let id = self.next_id;
        self.next_id += 1;
        let msg = pitaya::codec::Message::request(id, route, Bytes::copy_from_slice(data));
        let mut out = bytes::BytesMut::new();
        pitaya::codec::MessageCodec::new().encode_packet(&msg, &mut out).expect("encodes");
        tokio::io::AsyncWriteExt::write_all(&mut self.stream, &out).await.expect("write");
        let packet = self.packet().await;
        let reply = pitaya::codec::MessageCodec::new().decode(packet.body).expect("decodes");
        assert_eq!(reply.id, id);
        reply.data
    }
}

/// On a frontend, a resumed session keeps what backends gave it (its data, pushed to the
/// front) and is forwarded as before; a resume that reaches another frontend gets a fresh
/// session, as the docs say.
#[tokio::test]
async fn a_resumed_session_forwards_as_before_and_other_frontends_start_fresh() {
    within(async {
        let cluster = MemoryCluster::new();
        let resume = [("pitaya.session.resume.enabled", "true")];
        let _game = start(&cluster, "game", false, false).await;
        let front1 = start_configured(&cluster, "connector", true, false, &resume, |b| b).await;
        let front2 = start_configured(&cluster, "connector", true, false, &resume, |b| b).await;
        crate::inproc::sees(&front1, "game").await;
        let (mut c, grant) = ResumeClient::connect(&addr(&front1), serde_json::json!(true)).await;
        let token = grant["token"].as_str().expect("a token").to_owned();
        assert_eq!(&c.request("game.extra.set", b"kept").await[..], b"ok");
        drop(c);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;

        let elsewhere = serde_json::json!({"token": token, "received": 1});
        let (_other, grant) = ResumeClient::connect(&addr(&front2), elsewhere.clone()).await;
        assert_eq!(grant["resumed"], false, "another frontend: {grant}");

        let (mut c, grant) = ResumeClient::connect(&addr(&front1), elsewhere).await;
        assert_eq!(grant["resumed"], true, "{grant}");
        assert_eq!(grant["received"], 1, "{grant}");
        assert_eq!(&c.request("game.extra.get", b"").await[..], b"kept");
        let ok = c.request("game.testsvc.testrequestreturnsraw", br#"{"msg":"again"}"#).await;
        assert_eq!(&ok[..], b"again");
    })
    .await;
}
