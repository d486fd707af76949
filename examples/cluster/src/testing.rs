//! The handlers (`testsvc`) and remotes (`testremotesvc`) of Go Pitaya's
//! `examples/testing`, with the same routes, arguments, replies and errors.

use bytes::Bytes;
use pitaya::cluster::{GRPC_HOST_KEY, GRPC_PORT_KEY};
use pitaya::groups::{Groups, MemoryGroups};
use pitaya::handler::Lifecycle;
use pitaya::{
    AppHandle, BoxFuture, Builder, Component, Context, Error, Msg, Pitaya, RemoteComponent,
    RemoteRequest, Session,
};
use serde::{Deserialize, Serialize};

/// `TestRequest` of Go's `examples/testing/protos` (also `test.TestRequest`).
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct TestRequest {
    /// `msg`
    #[prost(string, tag = "1")]
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub msg: String,
}

/// `TestResponse`: Go's JSON leaves out zero fields (`omitempty`).
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct TestResponse {
    /// `code`
    #[prost(int32, tag = "1")]
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
    /// `msg`
    #[prost(string, tag = "2")]
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub msg: String,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// Argument of `testsendrpc`: the route to call and the `msg` to send.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct TestRpcRequest {
    /// `route`
    #[prost(string, tag = "1")]
    #[serde(default)]
    pub route: String,
    /// `data`
    #[prost(string, tag = "2")]
    #[serde(default)]
    pub data: String,
}

/// Argument of `testsendtousers`.
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
pub struct TestSendToUsers {
    /// `uids`
    #[prost(string, repeated, tag = "1")]
    #[serde(default)]
    pub uids: Vec<String>,
    /// `msg`
    #[prost(string, tag = "2")]
    #[serde(default)]
    pub msg: String,
}

/// The group every bound test user joins.
pub const GROUP: &str = "g1";
/// The frontend type group messages and user pushes go to.
pub const FRONTEND_TYPE: &str = "connector";

fn ok(msg: &str) -> Msg<TestResponse> {
    Msg(TestResponse { code: 200, msg: msg.to_owned() })
}

async fn test_request_kick_user(app: AppHandle, uid: Bytes) -> Result<Msg<TestResponse>, Error> {
    let uid = String::from_utf8_lossy(&uid);
    let session = app
        .sessions()
        .by_uid(&uid)
        .ok_or_else(|| Error::new("PIT-404", pitaya::session::messages::NOT_FOUND))?;
    session.kick().await?;
    Ok(ok("ok"))
}

async fn test_request_kick_me(s: Session) -> Result<Msg<TestResponse>, Error> {
    s.kick().await?;
    Ok(ok("ok"))
}

async fn test_request_only_session_returns_ptr(_s: Session) -> Result<Msg<TestResponse>, Error> {
    Ok(ok("hello"))
}

async fn test_request_only_session_returns_ptr_nil(
    _s: Session,
) -> Result<Option<Msg<TestResponse>>, Error> {
    Ok(None)
}

async fn test_request_returns_ptr(Msg(req): Msg<TestRequest>) -> Result<Msg<TestResponse>, Error> {
    Ok(ok(&req.msg))
}

async fn test_request_only_session_returns_raw_nil(_s: Session) -> Result<Option<Bytes>, Error> {
    Ok(None)
}

async fn test_request_returns_raw(Msg(req): Msg<TestRequest>) -> Result<Bytes, Error> {
    Ok(Bytes::from(req.msg))
}

async fn test_request_receive_returns_raw(data: Bytes) -> Result<Bytes, Error> {
    Ok(data)
}

async fn test_request_returns_error(_data: Bytes) -> Result<Bytes, Error> {
    Err(Error::new("PIT-555", "somerror"))
}

async fn bind_and_join(app: &AppHandle, s: &Session, uid: &str) -> Result<Bytes, Error> {
    s.bind(uid).await.map_err(|e| Error::new("PIT-444", e.message()))?;
    app.groups().add_member(GROUP, uid).await.map_err(|e| Error::new("PIT-441", e.to_string()))?;
    Ok(Bytes::from_static(b"ack"))
}

async fn test_bind(app: AppHandle, s: Session) -> Result<Bytes, Error> {
    let uid = uuid::Uuid::new_v4().to_string();
    bind_and_join(&app, &s, &uid).await
}

async fn test_bind_id(app: AppHandle, s: Session, uid: Bytes) -> Result<Bytes, Error> {
    bind_and_join(&app, &s, &String::from_utf8_lossy(&uid)).await
}

/// Go's `TestOnlyBindID`: binds the session to the body as uid, nothing else (the
/// unique-session scenarios of Go's e2e suite use it, so no group membership is left
/// behind to fail a second bind of the same uid).
async fn test_only_bind_id(s: Session, uid: Bytes) -> Result<Bytes, Error> {
    s.bind(&String::from_utf8_lossy(&uid)).await.map_err(|e| Error::new("PIT-444", e.message()))?;
    Ok(Bytes::from_static(b"ack"))
}

async fn test_send_group_msg(app: AppHandle, msg: Bytes) {
    if let Err(e) = app.group_broadcast(FRONTEND_TYPE, GROUP, "route.test", msg).await {
        tracing::warn!(error = %e, "group broadcast failed");
    }
}

async fn test_send_group_msg_ptr(app: AppHandle, Msg(req): Msg<TestRequest>) {
    let sent = match app.encode(&req) {
        Ok(data) => app.group_broadcast(FRONTEND_TYPE, GROUP, "route.testptr", data).await,
        Err(e) => Err(e),
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "group broadcast failed");
    }
}

async fn test_send_to_users(app: AppHandle, Msg(req): Msg<TestSendToUsers>) {
    let failed = app
        .send_push_to_users("route.sendtousers", Bytes::from(req.msg), &req.uids, FRONTEND_TYPE)
        .await;
    if !failed.is_empty() {
        tracing::warn!(?failed, "push to users failed");
    }
}

async fn test_send_rpc(
    app: AppHandle,
    ctx: Context,
    Msg(req): Msg<TestRpcRequest>,
) -> Result<Msg<TestResponse>, Error> {
    let arg = TestRequest { msg: req.data };
    app.rpc::<TestResponse>(&ctx, &req.route, &arg).await.map(Msg)
}

async fn test_send_rpc_no_args(
    app: AppHandle,
    ctx: Context,
    Msg(req): Msg<TestRpcRequest>,
) -> Result<Msg<TestResponse>, Error> {
    app.rpc_no_args::<TestResponse>(&ctx, &req.route).await.map(Msg)
}

/// Creates group `g1` at start, as Go's `TestSvc.Init` does.
struct CreateGroup(MemoryGroups);

impl Lifecycle for CreateGroup {
    fn init(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            if let Err(e) = self.0.create(GROUP).await {
                tracing::error!(error = %e, "cannot create group {GROUP}");
            }
        })
    }
}

/// The `testsvc` component (method names lower-cased, as Go registers them); its `init`
/// creates group `g1` in `groups`.
pub fn testsvc(groups: MemoryGroups) -> Component {
    Component::new("testsvc")
        .lifecycle(CreateGroup(groups))
        .name_fn(str::to_lowercase)
        .handler("TestRequestKickUser", test_request_kick_user)
        .handler("TestRequestKickMe", test_request_kick_me)
        .handler("TestRequestOnlySessionReturnsPtr", test_request_only_session_returns_ptr)
        .handler("TestRequestOnlySessionReturnsPtrNil", test_request_only_session_returns_ptr_nil)
        .handler("TestRequestReturnsPtr", test_request_returns_ptr)
        .handler("TestRequestOnlySessionReturnsRawNil", test_request_only_session_returns_raw_nil)
        .handler("TestRequestReturnsRaw", test_request_returns_raw)
        .handler("TestRequestReceiveReturnsRaw", test_request_receive_returns_raw)
        .handler("TestRequestReturnsError", test_request_returns_error)
        .handler("TestBind", test_bind)
        .handler("TestBindID", test_bind_id)
        .handler("TestOnlyBindID", test_only_bind_id)
        .handler("TestSendGroupMsg", test_send_group_msg)
        .handler("TestSendGroupMsgPtr", test_send_group_msg_ptr)
        .handler("TestSendToUsers", test_send_to_users)
        .handler("TestSendRPC", test_send_rpc)
        .handler("TestSendRPCNoArgs", test_send_rpc_no_args)
}

fn got(msg: &str) -> TestResponse {
    TestResponse { code: 200, msg: format!("got {msg}") }
}

/// The `testremotesvc` remotes (lower-cased names, as Go registers them).
pub fn testremotesvc() -> RemoteComponent {
    RemoteComponent::new("testremotesvc")
        .name_fn(str::to_lowercase)
        .remote("RPCTestRawPtrReturnsPtr", |_r: RemoteRequest, req: TestRequest| async move {
            Ok(got(&req.msg))
        })
        .remote("RPCTestPtrReturnsPtr", |_r: RemoteRequest, req: TestRequest| async move {
            Ok(got(&req.msg))
        })
        .remote("RPCTestReturnsError", |_r: RemoteRequest, _req: TestRequest| async move {
            Err::<TestResponse, _>(
                Error::new("PIT-433", "test error").with_metadata("some", "meta"),
            )
        })
        .remote_no_args("RPCTestNoArgs", |_r: RemoteRequest| async move {
            Ok(TestResponse { code: 200, msg: "got nothing".to_owned() })
        })
}

/// Options of the testing server (Go's flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// `-type`
    pub server_type: String,
    /// `-port`
    pub port: u16,
    /// `-frontend`
    pub frontend: bool,
    /// `-serializer`: `json` or `protobuf`.
    pub serializer: pitaya::SerializerKind,
    /// `-grpcport`, advertised in the discovery metadata.
    pub grpc_port: u16,
}

/// A builder with the testing server's components, groups and metadata; the caller adds
/// the configuration and the cluster.
pub fn builder(opts: &Options) -> Builder {
    let groups = MemoryGroups::default();
    let mut b = Pitaya::builder()
        .groups(groups.clone())
        .server_type(opts.server_type.clone())
        .frontend(opts.frontend)
        .serializer(opts.serializer)
        .metadata(GRPC_HOST_KEY, "127.0.0.1")
        .metadata(GRPC_PORT_KEY, opts.grpc_port.to_string())
        .component(testsvc(groups))
        .remote(testremotesvc());
    if opts.frontend {
        b = b.tcp(format!("0.0.0.0:{}", opts.port));
    }
    b
}
