//! Dispatch through the router and pipelines: kinds, errors, extractors, panics, hooks.

use std::sync::Arc;

use bytes::Bytes;
use pitaya_codec::Route;
use pitaya_core::Error;
use pitaya_handler::{
    AppState, Component, HandlerKind, HandlerService, Json, Msg, Proto, Request, RouteInfo, Router,
    State, after_fn, before_fn,
};
use pitaya_protos::test::{TestRequest, TestResponse};
use pitaya_serialize::SerializerKind;
use pitaya_session::{NoopEntity, Session, SessionPool};
use tower::{Layer, ServiceExt};

#[derive(serde::Deserialize, serde::Serialize)]
struct Hello {
    name: String,
}

#[derive(Clone)]
struct Greeting(&'static str);

async fn hello(State(g): State<Greeting>, Json(h): Json<Hello>) -> Result<Json<Hello>, Error> {
    Ok(Json(Hello { name: format!("{} {}", g.0, h.name) }))
}

async fn echo(body: Bytes) -> Result<Bytes, Error> {
    Ok(body)
}

async fn nothing(_s: Session) -> Result<Option<Bytes>, Error> {
    Ok(None)
}

async fn fail() -> Result<Bytes, Error> {
    Err(Error::new("PIT-555", "somerror"))
}

async fn plain_fail() -> Result<Bytes, std::io::Error> {
    Err(std::io::Error::other("disk on fire"))
}

async fn boom(_r: RouteInfo) -> Result<Bytes, Error> {
    panic!("kaboom")
}

async fn notified(_s: Session, _body: Bytes) {}

async fn proto(Proto(r): Proto<TestRequest>) -> Result<Proto<TestResponse>, Error> {
    Ok(Proto(TestResponse { code: 200, msg: r.msg }))
}

fn router() -> Router {
    let mut router = Router::new();
    let c = Component::new("testsvc")
        .name_fn(str::to_lowercase)
        .handler("Hello", hello)
        .handler("Echo", echo)
        .handler("Nothing", nothing)
        .handler("Fail", fail)
        .handler("PlainFail", plain_fail)
        .handler("Boom", boom)
        .handler("Notified", notified)
        .handler("Proto", proto);
    router.add(c).unwrap();
    router
}

fn request(route: &str, kind: HandlerKind, data: &'static [u8]) -> Request {
    let mut state = AppState::new();
    state.insert(Greeting("hi"));
    Request {
        session: SessionPool::new().create(Arc::new(NoopEntity)),
        route: Route::parse(route).unwrap().with_server_type("connector"),
        id: 1,
        kind,
        data: Bytes::from_static(data),
        serializer: SerializerKind::Json.serializer(),
        state,
        ctx: pitaya_core::Context::new(),
    }
}

async fn call(svc: HandlerService, req: Request) -> Result<Option<Bytes>, Error> {
    svc.oneshot(req).await
}

fn service() -> HandlerService {
    HandlerService::new(router().into_service())
}

#[tokio::test]
async fn kinds_come_from_return_types() {
    let r = router();
    assert_eq!(r.kind("testsvc.hello"), Some(HandlerKind::Request));
    assert_eq!(r.kind("testsvc.notified"), Some(HandlerKind::Notify));
    assert_eq!(r.kind("testsvc.Hello"), None, "name_fn lower-cased it");
    assert_eq!(r.routes().len(), 8);
}

#[tokio::test]
async fn extractors_and_replies() {
    let out =
        call(service(), request("testsvc.hello", HandlerKind::Request, br#"{"name":"ana"}"#)).await;
    assert_eq!(out.unwrap().unwrap(), &br#"{"name":"hi ana"}"#[..]);
    let out = call(service(), request("testsvc.echo", HandlerKind::Request, b"\x00raw")).await;
    assert_eq!(out.unwrap().unwrap(), &b"\x00raw"[..]);
    let out = call(service(), request("testsvc.proto", HandlerKind::Request, b"\x0a\x02hi")).await;
    assert_eq!(out.unwrap().unwrap(), &b"\x08\xc8\x01\x12\x02hi"[..]);
}

#[tokio::test]
async fn errors_as_go_sends_them() {
    let e =
        call(service(), request("testsvc.missing", HandlerKind::Request, b"")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        ("PIT-404", "pitaya/handler: connector.testsvc.missing not found")
    );
    let e =
        call(service(), request("testsvc.nothing", HandlerKind::Request, b"")).await.unwrap_err();
    assert_eq!((e.code(), e.message()), ("PIT-000", "reply must not be null"));
    let e = call(service(), request("testsvc.fail", HandlerKind::Request, b"")).await.unwrap_err();
    assert_eq!((e.code(), e.message()), ("PIT-555", "somerror"));
    let e =
        call(service(), request("testsvc.plainfail", HandlerKind::Request, b"")).await.unwrap_err();
    assert_eq!((e.code(), e.message()), ("PIT-000", "disk on fire"));
    let e =
        call(service(), request("testsvc.notified", HandlerKind::Request, b"")).await.unwrap_err();
    assert_eq!((e.code(), e.message()), ("PIT-400", "tried to request a notify route"));
    let e =
        call(service(), request("testsvc.hello", HandlerKind::Request, b"{bad")).await.unwrap_err();
    assert_eq!(e.code(), "PIT-400");
}

#[tokio::test]
async fn a_panic_fails_only_that_request() {
    let e = call(service(), request("testsvc.boom", HandlerKind::Request, b"")).await.unwrap_err();
    assert_eq!((e.code(), e.message()), ("PIT-000", "kaboom"));
    assert!(call(service(), request("testsvc.echo", HandlerKind::Request, b"x")).await.is_ok());
}

#[tokio::test]
async fn notify_to_a_request_handler_runs_and_drops_the_reply() {
    let out = call(service(), request("testsvc.echo", HandlerKind::Notify, b"x")).await;
    assert_eq!(out.unwrap(), None);
    let out = call(service(), request("testsvc.notified", HandlerKind::Notify, b"x")).await;
    assert_eq!(out.unwrap(), None);
}

#[tokio::test]
async fn hooks_wrap_the_router_in_order() {
    let before = before_fn(|mut req: Request| async move {
        if req.data.as_ref() == b"stop" {
            return Err(Error::new("PIT-401", "stopped"));
        }
        req.data = Bytes::from(format!("[{}]", String::from_utf8_lossy(&req.data)));
        Ok(req)
    });
    let after = after_fn(|res: Result<Option<Bytes>, Error>| async move {
        res.map(|r| r.map(|b| Bytes::from([b.as_ref(), b"!"].concat())))
    });
    let svc = after.layer(before.layer(service()));
    let out = call(svc.clone(), request("testsvc.echo", HandlerKind::Request, b"x")).await;
    assert_eq!(out.unwrap().unwrap(), &b"[x]!"[..]);
    let e = call(svc, request("testsvc.echo", HandlerKind::Request, b"stop")).await.unwrap_err();
    assert_eq!(e.code(), "PIT-401");
}

#[tokio::test]
async fn registration_errors() {
    let mut r = router();
    assert!(r.add(Component::new("testsvc").handler("x", echo)).is_err());
    assert!(r.add(Component::new("empty")).is_err());
    assert!(r.add(Component::new("dup").handler("a", echo).handler("a", echo)).is_err());
}

#[tokio::test]
async fn msg_uses_the_server_serializer() {
    #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
    struct Code {
        #[prost(int32, tag = "1")]
        code: i32,
    }
    async fn code(Msg(c): Msg<Code>) -> Result<Msg<Code>, Error> {
        Ok(Msg(Code { code: c.code + 1 }))
    }
    let mut r = Router::new();
    r.add(Component::new("c").handler("code", code)).unwrap();
    let svc = HandlerService::new(r.into_service());
    let mut req = request("c.code", HandlerKind::Request, br#"{"code":1}"#);
    assert_eq!(call(svc.clone(), req.clone()).await.unwrap().unwrap(), &br#"{"code":2}"#[..]);
    req.serializer = SerializerKind::Protobuf.serializer();
    req.data = Bytes::from_static(&[0x08, 0x01]);
    assert_eq!(call(svc, req).await.unwrap().unwrap(), &[0x08, 0x02][..]);
}

#[derive(serde::Deserialize, validator::Validate)]
struct Named {
    #[validate(length(min = 2))]
    name: String,
}

async fn named(
    pitaya_handler::Valid(Json(n)): pitaya_handler::Valid<Json<Named>>,
) -> Result<Bytes, Error> {
    Ok(Bytes::from(n.name))
}

#[tokio::test]
async fn struct_validation_follows_the_config_flag() {
    let mut r = Router::new();
    r.add(Component::new("v").handler("named", named)).unwrap();
    let svc = HandlerService::new(r.into_service());
    let mut req = request("v.named", HandlerKind::Request, br#"{"name":"x"}"#);
    // Off (Go's default): the value passes unchecked.
    assert_eq!(call(svc.clone(), req.clone()).await.unwrap().unwrap(), &b"x"[..]);
    req.state.insert(pitaya_handler::StructValidation(true));
    let e = call(svc.clone(), req.clone()).await.unwrap_err();
    assert_eq!(e.code(), "PIT-000");
    assert!(e.message().contains("name"), "{}", e.message());
    req.data = Bytes::from_static(br#"{"name":"xy"}"#);
    assert_eq!(call(svc, req).await.unwrap().unwrap(), &b"xy"[..]);
}
