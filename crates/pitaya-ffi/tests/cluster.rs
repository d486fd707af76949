//! The C ABI in a real cluster (etcd + NATS, the shared test services): a Rust frontend
//! forwards client requests to the C example (`target/ffi/echo_backend`, built by
//! `cargo xtask build-ffi` or `cargo xtask test`) and to the Python example; the C
//! backend calls a Rust backend's remote and pushes to a user bound on the frontend;
//! callbacks that misbehave, in this process through the ABI, get error replies; and
//! 10,000 requests through the C backend leave its memory flat.

use std::ffi::c_void;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pitaya_client::{Client, ClientError, ClientOptions, Pushes};
use pitaya_config::ConfigLoader;
use pitaya_core::Error;
use pitaya_ffi::*;
use pitaya_handler::{RemoteComponent, RemoteRequest};
use pitaya_protos::test::{TestRequest, TestResponse};
use pitaya_serialize::Serializer as _;
use pitaya_server::{Builder, RunningApp};
use prost::Message as _;

/// Bound on one wait (a backend's start, a routed request, an exit).
const WAIT: Duration = Duration::from_secs(5);
/// Bound on a backend process's start, Python's included.
const START: Duration = Duration::from_secs(20);
/// What the cluster runtime answers while a frontend knows no server of the type.
const NO_SERVERS: &str = "no servers available of this type";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    )
}

fn ffi_dir() -> PathBuf {
    let dir = target_dir().join("ffi");
    assert!(
        dir.join("echo_backend").is_file() && dir.join("libpitaya_ffi.so").is_file(),
        "{} has no echo_backend: run `cargo xtask build-ffi` (cargo xtask test does)",
        dir.display()
    );
    dir
}

fn prefix(test: &str) -> String {
    format!("ffi-{test}-{}/", std::process::id())
}

/// The cluster keys of a server under `prefix` on the shared etcd and NATS (gRPC on a
/// free port, with etcd binding storage, for the gRPC tests).
fn cluster_keys(prefix: &str) -> Vec<(&'static str, String)> {
    let nats = pitaya_test_services::shared_nats_url();
    let etcd = pitaya_test_services::shared_etcd_endpoint();
    vec![
        ("pitaya.cluster.sd.etcd.prefix", prefix.to_owned()),
        ("pitaya.cluster.sd.etcd.endpoints", etcd.clone()),
        ("pitaya.cluster.rpc.client.nats.connect", nats.clone()),
        ("pitaya.cluster.rpc.server.nats.connect", nats),
        ("pitaya.cluster.rpc.server.grpc.port", "0".to_owned()),
        ("pitaya.modules.bindingstorage.etcd.endpoints", etcd),
        ("pitaya.modules.bindingstorage.etcd.prefix", prefix.to_owned()),
    ]
}

fn config(prefix: &str) -> pitaya_config::PitayaConfig {
    let mut loader = ConfigLoader::new();
    for (key, value) in cluster_keys(prefix) {
        loader = loader.set(key, value);
    }
    loader.load().expect("configuration")
}

/// A Rust frontend of type `connector` on a free loopback port.
async fn frontend(prefix: &str) -> RunningApp {
    frontend_on(prefix, false).await
}

/// As [`frontend`], over etcd + gRPC when `grpc`.
async fn frontend_on(prefix: &str, grpc: bool) -> RunningApp {
    let b = Builder::new()
        .server_type("connector")
        .config(config(prefix))
        .tcp("127.0.0.1:0")
        .metadata("grpcHost", "127.0.0.1");
    let b = if grpc { b.etcd_grpc_cluster() } else { b.etcd_nats_cluster() };
    b.build().expect("build").start().await.expect("start the frontend")
}

async fn connect(front: &RunningApp) -> (Client, Pushes) {
    let addr = front.local_addrs()[0].1.to_string();
    let opts = ClientOptions { request_timeout: WAIT, ..ClientOptions::default() };
    Client::connect(&addr, opts).await.expect("connect")
}

/// A request that waits, up to [`WAIT`], for the frontend's etcd watch to see a server
/// of the route's type.
async fn routed(client: &Client, route: &str, body: &[u8]) -> Result<Bytes, ClientError> {
    let deadline = Instant::now() + WAIT;
    loop {
        match client.request(route, Bytes::copy_from_slice(body)).await {
            Err(ClientError::Server(p)) if p.msg == NO_SERVERS && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// The JSON error body a client of a JSON server sees for `e`.
fn error_json(e: &ClientError) -> String {
    let ClientError::Server(payload) = e else { panic!("expected an error response, got {e:?}") };
    String::from_utf8_lossy(&pitaya_serialize::Json.encode_error(payload)).into_owned()
}

/// A backend process, killed on drop.
struct Backend {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Backend {
    /// Starts `cmd` and waits for `all modules started!` on its stderr.
    fn start(mut cmd: Command) -> Backend {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("backend: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut backend = Backend { child, log, seen: Vec::new() };
        assert!(backend.wait_for_line("all modules started!", START), "{:?}", backend.seen);
        backend
    }

    fn wait_for_line(&mut self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Resident memory in KiB, from /proc.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Sends SIGTERM and waits up to [`WAIT`] for the exit.
    fn terminate(&mut self) -> Option<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cluster_args(cmd: &mut Command, prefix: &str) {
    cmd.args(["--nats", &pitaya_test_services::shared_nats_url()])
        .args(["--etcd", &pitaya_test_services::shared_etcd_endpoint()])
        .args(["--sdprefix", prefix]);
}

fn c_backend(prefix: &str) -> Backend {
    let mut cmd = Command::new(ffi_dir().join("echo_backend"));
    // Started with no environment at all: the rpath finds the library.
    cmd.env_clear().args(["--type", "room"]);
    cluster_args(&mut cmd, prefix);
    Backend::start(cmd)
}

fn python_backend(prefix: &str) -> Backend {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/ffi/echo_backend.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg("--lib").arg(ffi_dir().join("libpitaya_ffi.so"));
    cluster_args(&mut cmd, prefix);
    Backend::start(cmd)
}

/// Echo, fail and a late answer through the frontend, then a graceful stop that takes
/// the backend out of etcd.
async fn serves_forwarded_requests(prefix: &str, backend: impl FnOnce() -> Backend) {
    let front = frontend(prefix).await;
    let mut backend = backend();
    let (client, _pushes) = connect(&front).await;
    let echoed = routed(&client, "room.room.echo", b"\x00hello\xff").await.expect("echo");
    assert_eq!(&echoed[..], b"\x00hello\xff");
    let failed = routed(&client, "room.room.fail", b"{}").await.expect_err("fail");
    assert_eq!(error_json(&failed), r#"{"code":"PIT-499","msg":"fail"}"#);
    let later = routed(&client, "room.room.later", b"later").await.expect("later");
    assert_eq!(&later[..], b"later");

    let status = backend.terminate().expect("the backend exits within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}; log {:?}", backend.seen);
    let discovery = front.handle().discovery().expect("cluster mode");
    let deadline = Instant::now() + WAIT;
    while !discovery.servers_by_type("room").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(discovery.servers_by_type("room").is_empty(), "the backend is still in etcd");
    front.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_backend_serves_requests_forwarded_by_a_rust_frontend() {
    let prefix = prefix("c");
    serves_forwarded_requests(&prefix, || c_backend(&prefix)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_backend_serves_requests_forwarded_by_a_rust_frontend() {
    let prefix = prefix("py");
    serves_forwarded_requests(&prefix, || python_backend(&prefix)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_backend_calls_a_rust_remote_and_pushes_to_a_user_of_the_frontend() {
    let prefix = prefix("rpc");
    let front = frontend(&prefix).await;
    let remotes = RemoteComponent::new("remote")
        .remote("greet", |_r: RemoteRequest, a: TestRequest| async move {
            Ok(TestResponse { code: 200, msg: format!("hi {}", a.msg) })
        })
        .remote("fail", |_r: RemoteRequest, _a: TestRequest| async move {
            Err::<TestResponse, _>(
                Error::new("PIT-433", "test error").with_metadata("some", "meta"),
            )
        });
    let rust = Builder::new()
        .server_type("rust")
        .frontend(false)
        .config(config(&prefix))
        .remote(remotes)
        .etcd_nats_cluster()
        .build()
        .expect("build")
        .start()
        .await
        .expect("start the Rust backend");
    let _backend = c_backend(&prefix);
    let (client, mut pushes) = connect(&front).await;

    let mut body = b"rust.remote.greet\n".to_vec();
    body.extend(TestRequest { msg: "from C".into() }.encode_to_vec());
    // The C backend's own etcd watch must see the Rust backend too: retry on its
    // "no servers" as well.
    let deadline = Instant::now() + WAIT;
    let reply = loop {
        match routed(&client, "room.room.rpc", &body).await {
            Err(ClientError::Server(p)) if p.msg == NO_SERVERS && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.expect("rpc through the C backend"),
        }
    };
    assert_eq!(
        TestResponse::decode(reply).unwrap(),
        TestResponse { code: 200, msg: "hi from C".into() }
    );
    let mut body = b"rust.remote.fail\n".to_vec();
    body.extend(TestRequest::default().encode_to_vec());
    let e = routed(&client, "room.room.rpc", &body).await.expect_err("the remote's error");
    assert_eq!(
        error_json(&e),
        r#"{"code":"PIT-433","msg":"test error","metadata":{"some":"meta"}}"#
    );

    let ok = routed(&client, "room.room.bindpush", b"ffi-user").await.expect("bindpush");
    assert_eq!(&ok[..], b"ok");
    let push = tokio::time::timeout(WAIT, pushes.recv()).await.expect("a push").expect("open");
    assert_eq!((push.route.as_str(), &push.data[..]), ("onPush", &b"hello from C"[..]));
    assert!(front.handle().sessions().by_uid("ffi-user").is_some(), "bound on the frontend");

    rust.shutdown().await;
    front.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_through_the_c_backend_leak_nothing() {
    const CLIENTS: usize = 8;
    let prefix = prefix("leak");
    let front = frontend(&prefix).await;
    let backend = c_backend(&prefix);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(connect(&front).await);
    }
    // 4 KiB bodies: a copy kept per request would show as 40 MiB.
    let body = vec![b'x'; 4096];
    routed(&clients[0].0, "room.room.echo", &body).await.expect("routed");
    let run = |n: usize| {
        let body = body.clone();
        let clients: Vec<&Client> = clients.iter().map(|(c, _)| c).collect();
        async move {
            let per = n / CLIENTS;
            let each = clients.iter().map(|c| {
                let body = body.clone();
                async move {
                    for i in 0..per {
                        let route = if i % 10 == 9 { "room.room.fail" } else { "room.room.echo" };
                        let r = c.request(route, body.clone()).await;
                        assert_eq!(r.is_ok(), i % 10 != 9, "{r:?}");
                    }
                }
            });
            futures_util::future::join_all(each).await;
        }
    };
    run(2_000).await; // warm-up: pools, arenas, caches
    let before = backend.rss_kib();
    run(10_000).await;
    let after = backend.rss_kib();
    eprintln!("echo_backend RSS: {before} KiB after warm-up, {after} KiB after 10,000 requests");
    assert!(after < before + 8 * 1024, "RSS grew from {before} to {after} KiB");
    front.shutdown().await;
}

// Callbacks registered through the ABI from Rust, misbehaving in each way a foreign
// callback can, on a backend started in this process.

unsafe extern "C-unwind" fn returns_seven(
    _: *mut c_void,
    _: *const PitayaRequest,
    _: *mut PitayaCall,
) -> i32 {
    7
}

unsafe extern "C-unwind" fn replies_null_with_a_length(
    _: *mut c_void,
    _: *const PitayaRequest,
    call: *mut PitayaCall,
) -> i32 {
    // SAFETY: a live call; NULL data is what this callback is testing.
    unsafe {
        let e = pitaya_call_respond(call, std::ptr::null(), 5);
        assert!(!e.is_null(), "NULL data with a length is refused");
        pitaya_error_free(e);
    }
    0
}

unsafe extern "C-unwind" fn fails_with_a_code_that_is_not_utf8(
    _: *mut c_void,
    _: *const PitayaRequest,
    call: *mut PitayaCall,
) -> i32 {
    let code = [0xffu8, 0xfe, 0];
    // SAFETY: a live call and NUL-terminated strings.
    unsafe {
        let e = pitaya_call_fail(call, code.as_ptr().cast(), c"x".as_ptr(), c"[1]".as_ptr());
        assert!(!e.is_null(), "a code that is not UTF-8 is refused");
        pitaya_error_free(e);
    }
    0
}

unsafe extern "C-unwind" fn panics(
    _: *mut c_void,
    _: *const PitayaRequest,
    _: *mut PitayaCall,
) -> i32 {
    panic!("a Rust callback panicked")
}

unsafe extern "C-unwind" fn echo(
    _: *mut c_void,
    request: *const PitayaRequest,
    call: *mut PitayaCall,
) -> i32 {
    // SAFETY: the request is valid during the callback; the call is live.
    unsafe {
        let e = pitaya_call_respond(call, (*request).body, (*request).body_len);
        assert!(e.is_null());
    }
    0
}

/// Binds the session to the uid in the body and sets its data, through the frontend.
unsafe extern "C-unwind" fn remember(
    _: *mut c_void,
    request: *const PitayaRequest,
    call: *mut PitayaCall,
) -> i32 {
    // SAFETY: the request is valid during the callback; the call is live.
    unsafe {
        let r = &*request;
        let mut uid = std::slice::from_raw_parts(r.body, r.body_len).to_vec();
        uid.push(0);
        assert!(pitaya_call_bind(call, uid.as_ptr().cast()).is_null(), "bind");
        let data = br#"{"level":3}"#;
        assert!(pitaya_call_set_session_data(call, data.as_ptr(), data.len()).is_null(), "data");
        assert!(pitaya_call_respond(call, b"ok".as_ptr(), 2).is_null());
    }
    0
}

/// Replies what the request says of its session: `uid data from-a-frontend`.
unsafe extern "C-unwind" fn whoami(
    _: *mut c_void,
    request: *const PitayaRequest,
    call: *mut PitayaCall,
) -> i32 {
    // SAFETY: the request and its strings are valid during the callback.
    unsafe {
        let r = &*request;
        let uid = std::ffi::CStr::from_ptr(r.uid).to_string_lossy();
        let front = std::ffi::CStr::from_ptr(r.frontend_id).to_string_lossy();
        let data =
            String::from_utf8_lossy(std::slice::from_raw_parts(r.session_data, r.session_data_len));
        let text = format!("{uid} {data} {} {}", !front.is_empty(), r.session_id > 0);
        assert!(pitaya_call_respond(call, text.as_ptr(), text.len()).is_null());
    }
    0
}

/// A remote that replies its argument reversed, from another thread.
unsafe extern "C-unwind" fn reverse_later(
    _: *mut c_void,
    request: *const PitayaRequest,
    call: *mut PitayaCall,
) -> i32 {
    // SAFETY: the request is valid during the callback; the body is copied out.
    let (kind, mut body) = unsafe {
        let r = &*request;
        (r.kind, std::slice::from_raw_parts(r.body, r.body_len).to_vec())
    };
    assert_eq!(kind, PitayaKind::Remote);
    body.reverse();
    let call = CallPtr(call);
    std::thread::spawn(move || {
        let call = call;
        // SAFETY: the call is live until answered, from any thread.
        assert!(unsafe { pitaya_call_respond(call.0, body.as_ptr(), body.len()) }.is_null());
    });
    0
}

/// Bodies the notify handler received.
static NOTED: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// A notify handler: records the body, then finishes the call (its answer is dropped).
unsafe extern "C-unwind" fn note(
    _: *mut c_void,
    request: *const PitayaRequest,
    call: *mut PitayaCall,
) -> i32 {
    // SAFETY: the request is valid during the callback; the call is live.
    unsafe {
        let r = &*request;
        assert_eq!(r.kind, PitayaKind::Notify);
        NOTED.lock().unwrap().push(std::slice::from_raw_parts(r.body, r.body_len).to_vec());
        assert!(pitaya_call_respond(call, std::ptr::null(), 0).is_null());
    }
    0
}

struct CallPtr(*mut PitayaCall);
// SAFETY: the ABI lets a call be finished from any thread.
unsafe impl Send for CallPtr {}

/// A server pointer that moves to a blocking thread.
struct ServerPtr(*mut PitayaServer);
// SAFETY: the ABI allows a server to be used from any thread.
unsafe impl Send for ServerPtr {}

/// Starts an `ffi` backend through the ABI with the misbehaving callbacks.
fn start_ffi_backend(prefix: &str) -> ServerPtr {
    start_ffi_backend_on(prefix, false)
}

/// As [`start_ffi_backend`], over etcd + gRPC when `grpc`.
fn start_ffi_backend_on(prefix: &str, grpc: bool) -> ServerPtr {
    let keys: Vec<(std::ffi::CString, std::ffi::CString)> = cluster_keys(prefix)
        .into_iter()
        .map(|(k, v)| (std::ffi::CString::new(k).unwrap(), std::ffi::CString::new(v).unwrap()))
        .collect();
    type Cb =
        unsafe extern "C-unwind" fn(*mut c_void, *const PitayaRequest, *mut PitayaCall) -> i32;
    let handlers: [(&std::ffi::CStr, Cb); 7] = [
        (c"seven", returns_seven),
        (c"nullreply", replies_null_with_a_length),
        (c"badcode", fails_with_a_code_that_is_not_utf8),
        (c"panics", panics),
        (c"echo", echo),
        (c"remember", remember),
        (c"whoami", whoami),
    ];
    // SAFETY: valid C strings and callbacks that follow the ABI's contract.
    unsafe {
        let b = pitaya_builder_new(c"ffi".as_ptr(), false);
        assert!(!b.is_null());
        for (key, value) in &keys {
            assert!(pitaya_builder_set(b, key.as_ptr(), value.as_ptr()).is_null());
        }
        if grpc {
            assert!(pitaya_builder_transport(b, PitayaTransport::EtcdGrpc).is_null());
            let e = pitaya_builder_metadata(b, c"grpcHost".as_ptr(), c"127.0.0.1".as_ptr());
            assert!(e.is_null());
        }
        for (method, cb) in handlers {
            let e = pitaya_builder_handler(
                b,
                c"cb".as_ptr(),
                method.as_ptr(),
                PitayaKind::Request,
                Some(cb),
                std::ptr::null_mut(),
            );
            assert!(e.is_null());
        }
        let e = pitaya_builder_handler(
            b,
            c"cb".as_ptr(),
            c"note".as_ptr(),
            PitayaKind::Notify,
            Some(note),
            std::ptr::null_mut(),
        );
        assert!(e.is_null());
        let e = pitaya_builder_remote(
            b,
            c"rcb".as_ptr(),
            c"reverse".as_ptr(),
            Some(reverse_later),
            std::ptr::null_mut(),
        );
        assert!(e.is_null());
        let mut server = std::ptr::null_mut();
        let e = pitaya_start(b, &mut server);
        assert!(e.is_null(), "start: {}", std::ffi::CStr::from_ptr((*e).message).to_string_lossy());
        ServerPtr(server)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_that_return_garbage_or_panic_get_error_replies_not_a_crash() {
    let prefix = prefix("garbage");
    let front = frontend(&prefix).await;
    let p = prefix.clone();
    let server = tokio::task::spawn_blocking(move || start_ffi_backend(&p)).await.unwrap();
    let (client, _pushes) = connect(&front).await;
    for (route, want) in [
        ("ffi.cb.seven", r#"{"code":"PIT-500","msg":"handler callback returned 7"}"#),
        (
            "ffi.cb.nullreply",
            r#"{"code":"PIT-500","msg":"invalid reply from the handler: reply data is NULL with length 5"}"#,
        ),
        (
            "ffi.cb.badcode",
            r#"{"code":"PIT-500","msg":"invalid error from the handler: code is not UTF-8"}"#,
        ),
        (
            "ffi.cb.panics",
            r#"{"code":"PIT-500","msg":"handler callback panicked: a Rust callback panicked"}"#,
        ),
    ] {
        let e = routed(&client, route, b"x").await.expect_err(route);
        assert_eq!(error_json(&e), want, "{route}");
    }
    // The server still serves, and a bad argument to the ABI is an error, not a crash.
    let echoed = routed(&client, "ffi.cb.echo", b"still here").await.expect("echo");
    assert_eq!(&echoed[..], b"still here");
    // SAFETY: a live server; a NULL route is what this checks.
    unsafe {
        let mut reply = PitayaBuffer { data: std::ptr::null_mut(), len: 0 };
        let e = pitaya_rpc(
            server.0,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            0,
            &mut reply,
        );
        assert!(!e.is_null());
        assert_eq!(std::ffi::CStr::from_ptr((*e).code).to_str().unwrap(), "PIT-400");
        pitaya_error_free(e);
    }
    let stopped = tokio::task::spawn_blocking(move || {
        let server = server;
        // SAFETY: the server from `pitaya_start`, shut down once.
        unsafe { pitaya_shutdown(server.0) }.is_null()
    });
    assert!(stopped.await.unwrap());
    front.shutdown().await;
}

/// `f` on a blocking thread with the server, so the ABI's blocking calls do not stall
/// this test's runtime.
async fn with_server<T: Send + 'static>(
    server: &ServerPtr,
    f: impl FnOnce(*mut PitayaServer) -> T + Send + 'static,
) -> T {
    let ptr = ServerPtr(server.0);
    tokio::task::spawn_blocking(move || {
        let ptr = ptr;
        f(ptr.0)
    })
    .await
    .unwrap()
}

/// The bytes of a buffer the library filled, freed.
///
/// # Safety
/// `b` was filled by the library.
unsafe fn take(mut b: PitayaBuffer) -> String {
    // SAFETY: as the caller promises.
    unsafe {
        let text = if b.len == 0 {
            String::new()
        } else {
            String::from_utf8_lossy(std::slice::from_raw_parts(b.data, b.len)).into_owned()
        };
        pitaya_buffer_free(&mut b);
        text
    }
}

const EMPTY: PitayaBuffer = PitayaBuffer { data: std::ptr::null_mut(), len: 0 };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_remotes_groups_pushes_and_kicks_through_the_abi() {
    let prefix = prefix("abi");
    let front = frontend(&prefix).await;
    let p = prefix.clone();
    let server = tokio::task::spawn_blocking(move || start_ffi_backend(&p)).await.unwrap();
    let (client, mut pushes) = connect(&front).await;

    // Session: bound and given data by the backend, seen by the frontend and by the
    // next request's callback.
    let ok = routed(&client, "ffi.cb.remember", b"abi-user").await.expect("remember");
    assert_eq!(&ok[..], b"ok");
    let session = front.handle().sessions().by_uid("abi-user").expect("bound on the frontend");
    assert_eq!(session.get::<i64>("level"), Some(3));
    let who = routed(&client, "ffi.cb.whoami", b"").await.expect("whoami");
    assert_eq!(String::from_utf8_lossy(&who), r#"abi-user {"level":3} true true"#);

    // A notify reaches its callback; the client gets nothing back.
    client.notify("ffi.cb.note", Bytes::from_static(b"noted")).await.expect("notify");
    let deadline = Instant::now() + WAIT;
    while NOTED.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*NOTED.lock().unwrap(), [b"noted".to_vec()]);

    // A remote registered through the ABI, answered from another thread.
    let ctx = pitaya_core::Context::new();
    let reply = front
        .handle()
        .rpc_raw(&ctx, None, "ffi.rcb.reverse", Some(Bytes::from_static(b"abc")))
        .await
        .expect("remote");
    assert_eq!(&reply[..], b"cba");

    // Pushes by uid and to a group, from a thread that is no callback.
    let failed = with_server(&server, |s| {
        let uids = [c"abi-user".as_ptr()];
        let mut failed = EMPTY;
        // SAFETY: a live server and valid arguments.
        unsafe {
            let e = pitaya_push_to_users(
                s,
                c"connector".as_ptr(),
                c"onDirect".as_ptr(),
                b"d".as_ptr(),
                1,
                uids.as_ptr(),
                1,
                &mut failed,
            );
            assert!(e.is_null());
            take(failed)
        }
    })
    .await;
    // Over NATS a push to a uid is published whether anyone holds it or not (as in Go),
    // so only a transport failure would be listed.
    assert_eq!(failed, "[]");
    let push = tokio::time::timeout(WAIT, pushes.recv()).await.expect("a push").expect("open");
    assert_eq!((push.route.as_str(), &push.data[..]), ("onDirect", &b"d"[..]));

    let members = with_server(&server, |s| {
        // SAFETY: a live server and valid arguments.
        unsafe {
            assert!(pitaya_group_create(s, c"room1".as_ptr(), 0).is_null());
            assert!(pitaya_group_add_member(s, c"room1".as_ptr(), c"abi-user".as_ptr()).is_null());
            let again = pitaya_group_add_member(s, c"room1".as_ptr(), c"abi-user".as_ptr());
            assert!(!again.is_null(), "a member twice is an error");
            pitaya_error_free(again);
            let mut members = EMPTY;
            assert!(pitaya_group_members(s, c"room1".as_ptr(), &mut members).is_null());
            let mut failed = EMPTY;
            let e = pitaya_group_broadcast(
                s,
                c"connector".as_ptr(),
                c"room1".as_ptr(),
                c"onGroup".as_ptr(),
                b"g".as_ptr(),
                1,
                &mut failed,
            );
            assert!(e.is_null());
            assert_eq!(take(failed), "[]");
            assert!(
                pitaya_group_remove_member(s, c"room1".as_ptr(), c"abi-user".as_ptr()).is_null()
            );
            assert!(pitaya_group_delete(s, c"room1".as_ptr()).is_null());
            take(members)
        }
    })
    .await;
    assert_eq!(members, r#"["abi-user"]"#);
    let push = tokio::time::timeout(WAIT, pushes.recv()).await.expect("a push").expect("open");
    assert_eq!((push.route.as_str(), &push.data[..]), ("onGroup", &b"g"[..]));

    // A kick by uid closes the client's connection.
    let failed = with_server(&server, |s| {
        let uids = [c"abi-user".as_ptr()];
        let mut failed = EMPTY;
        // SAFETY: a live server and valid arguments.
        unsafe {
            assert!(
                pitaya_kick_users(s, c"connector".as_ptr(), uids.as_ptr(), 1, &mut failed)
                    .is_null()
            );
            take(failed)
        }
    })
    .await;
    assert_eq!(failed, "[]");
    tokio::time::timeout(WAIT, client.closed()).await.expect("the kicked client is closed");

    with_server(&server, |s| {
        // SAFETY: the server from `pitaya_start`, shut down once.
        assert!(unsafe { pitaya_shutdown(s) }.is_null());
    })
    .await;
    front.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_on_etcd_and_grpc_serves_forwarded_requests_and_binds() {
    let prefix = prefix("grpc");
    let front = frontend_on(&prefix, true).await;
    let p = prefix.clone();
    let server = tokio::task::spawn_blocking(move || start_ffi_backend_on(&p, true)).await.unwrap();
    let (client, _pushes) = connect(&front).await;
    let echoed = routed(&client, "ffi.cb.echo", b"over grpc").await.expect("echo");
    assert_eq!(&echoed[..], b"over grpc");
    let e = routed(&client, "ffi.cb.seven", b"").await.expect_err("seven");
    assert_eq!(error_json(&e), r#"{"code":"PIT-500","msg":"handler callback returned 7"}"#);
    let ok = routed(&client, "ffi.cb.remember", b"grpc-user").await.expect("remember");
    assert_eq!(&ok[..], b"ok");
    assert!(front.handle().sessions().by_uid("grpc-user").is_some(), "bound on the frontend");
    with_server(&server, |s| {
        // SAFETY: the server from `pitaya_start`, shut down once.
        assert!(unsafe { pitaya_shutdown(s) }.is_null());
    })
    .await;
    front.shutdown().await;
}
