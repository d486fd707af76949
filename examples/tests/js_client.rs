//! The JS client (`clients/js`) against real servers: `node --test clients/js/test/`
//! with four servers started here — JSON with a 1 s heartbeat, route dictionary plus
//! zlib compression, protobuf, and JSON with session resume enabled — each with the echo
//! example's `room` component and a `jstest` component for what the echo server does not
//! do (kick, handshake echo, error metadata).

mod js_support;

use pitaya::config::ConfigLoader;
use pitaya::{Component, Error, Json, Pitaya, RunningApp, SerializerKind, Session};

struct Variant {
    serializer: SerializerKind,
    heartbeat: &'static str,
    compression: bool,
    dict: bool,
    resume: bool,
}

async fn whoami(s: Session) -> Result<Json<serde_json::Value>, Error> {
    let handshake = s.handshake().ok_or_else(|| Error::internal("no handshake recorded"))?;
    serde_json::to_value(&*handshake).map(Json).map_err(|e| Error::internal(e.to_string()))
}

async fn meta() -> Result<Json<()>, Error> {
    Err(Error::new("PIT-433", "with metadata")
        .with_metadata("why", "testing")
        .with_metadata("route", "jstest.meta"))
}

async fn kick(s: Session) {
    let _ = s.kick().await;
}

async fn start(v: Variant) -> RunningApp {
    let config = ConfigLoader::new()
        .set("pitaya.heartbeat.interval", v.heartbeat)
        .set("pitaya.handler.messages.compression", v.compression)
        .set("pitaya.session.resume.enabled", v.resume)
        .load()
        .expect("test configuration loads");
    let mut builder = Pitaya::builder()
        .config(config)
        .serializer(v.serializer)
        .ws("127.0.0.1:0")
        .component(pitaya_examples::echo::component())
        .component(
            Component::new("jstest")
                .handler("whoami", whoami)
                .handler("meta", meta)
                .handler("kick", kick),
        );
    builder.sessions().add_handshake_validator("jstest", |_, handshake| {
        let reject = handshake.user.as_ref().and_then(|u| u.get("reject"));
        match reject {
            Some(serde_json::Value::Bool(true)) => Err(Error::bad_request("rejected on request")),
            _ => Ok(()),
        }
    });
    if v.dict {
        let routes = pitaya_examples::echo::ROUTES.iter().copied();
        let routes = routes.chain(["jstest.whoami", "jstest.meta", "jstest.kick", "onNotify"]);
        builder = builder.dictionary(routes.zip(1u16..));
    }
    builder.build().expect("server builds").start().await.expect("server starts")
}

fn ws_url(running: &RunningApp) -> String {
    let (_, addr) =
        running.local_addrs().iter().find(|(t, _)| t.is_websocket()).expect("a ws acceptor");
    format!("ws://{addr}/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_client_node_tests_pass_against_real_servers() {
    js_support::require_node(&["ws"]);
    let json = start(Variant {
        serializer: SerializerKind::Json,
        heartbeat: "1s",
        compression: false,
        dict: false,
        resume: false,
    })
    .await;
    let dict = start(Variant {
        serializer: SerializerKind::Json,
        heartbeat: "30s",
        compression: true,
        dict: true,
        resume: false,
    })
    .await;
    let protobuf = start(Variant {
        serializer: SerializerKind::Protobuf,
        heartbeat: "30s",
        compression: false,
        dict: false,
        resume: false,
    })
    .await;
    let resume = start(Variant {
        serializer: SerializerKind::Json,
        heartbeat: "30s",
        compression: false,
        dict: false,
        resume: true,
    })
    .await;
    let env = vec![
        ("PITAYA_JS_WS_JSON", ws_url(&json)),
        ("PITAYA_JS_WS_DICT", ws_url(&dict)),
        ("PITAYA_JS_WS_PROTOBUF", ws_url(&protobuf)),
        ("PITAYA_JS_WS_RESUME", ws_url(&resume)),
    ];
    // Blocking on node here would stall the servers if they shared this thread.
    let outcome =
        tokio::task::spawn_blocking(move || js_support::node_test(&["test/"], &env)).await;
    for running in [json, dict, protobuf, resume] {
        running.shutdown().await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
