//! Shared helpers of the cluster tests: time limits, clients, error bodies.

use std::future::Future;
use std::time::Duration;

use pitaya::client::{Client, ClientError, ClientOptions, Pushes};
use pitaya::serialize::Serializer;

/// Bound on any single wait.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Bound on a whole test body.
const TEST_LIMIT: Duration = Duration::from_secs(90);

/// Runs a test body, failing instead of hanging.
pub(crate) async fn within<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, body).await.expect("the test exceeded its time limit")
}

/// Awaits `f` for at most [`WAIT`].
pub(crate) async fn wait<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A handshaken client of the server at `addr`.
pub(crate) async fn connect(addr: &str) -> (Client, Pushes) {
    let opts =
        ClientOptions { request_timeout: Duration::from_secs(10), ..ClientOptions::default() };
    Client::connect(addr, opts).await.unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// Checks that `e` is the error response whose JSON body is `want`, byte for byte once
/// re-encoded the way Go encodes it (spec §2.5).
pub(crate) fn expect_error_body(e: &ClientError, want: &[u8]) {
    let ClientError::Server(payload) = e else { panic!("expected an error response, got {e:?}") };
    let body = pitaya::serialize::Json.encode_error(payload);
    assert_eq!(String::from_utf8_lossy(&body), String::from_utf8_lossy(want));
}

/// How a `testing` server process is launched, as Go Pitaya's e2e helper does.
#[derive(Debug, Clone)]
pub(crate) struct Launch<'a> {
    pub(crate) server_type: &'a str,
    pub(crate) frontend: bool,
    /// Client port of a frontend (0 for a backend).
    pub(crate) port: u16,
    pub(crate) sd_prefix: &'a str,
    pub(crate) loopback: bool,
    /// Where NATS and etcd are (the shared instances unless a test brings its own).
    pub(crate) nats_url: String,
    pub(crate) etcd_endpoint: String,
    /// Extra `PITAYA_*` variables.
    pub(crate) env: Vec<(String, String)>,
    /// gRPC RPC with etcd binding storage instead of NATS (`-grpc=true`).
    pub(crate) grpc: bool,
    /// `PITAYA_CLUSTER_RPC_CLIENT_GRPC_LAZYCONNECTION`, as Go's helper sets it.
    pub(crate) lazy: bool,
}

impl<'a> Launch<'a> {
    /// A server of `server_type` on the shared NATS and etcd.
    pub(crate) fn new(server_type: &'a str, frontend: bool, sd_prefix: &'a str) -> Self {
        Self {
            server_type,
            frontend,
            port: if frontend { pitaya_test_services::free_port() } else { 0 },
            sd_prefix,
            loopback: false,
            nats_url: pitaya_test_services::shared_nats_url(),
            etcd_endpoint: pitaya_test_services::shared_etcd_endpoint(),
            env: Vec::new(),
            grpc: false,
            lazy: false,
        }
    }
}

/// A running `testing` server process, killed (SIGKILL, as Go's helper does) on drop.
pub(crate) struct ServerProc {
    child: std::process::Child,
    /// The client address of a frontend.
    pub(crate) addr: String,
    /// Kept open and never read after the ready line, as Go's helper leaves it: the
    /// server must not stall on a full pipe. With `PITAYA_TEST_SERVER_LOGS=<dir>` the
    /// rest of the log is copied to a file there instead, for debugging.
    _stderr: Option<std::io::BufReader<std::process::ChildStderr>>,
}

/// A fresh SD prefix, so that tests sharing one etcd do not see each other.
pub(crate) fn sd_prefix() -> String {
    format!("{}/", uuid::Uuid::new_v4())
}

/// Starts a `testing` server with Go's e2e flags and an environment holding only
/// `PITAYA_*` variables, and waits for `all modules started!` on its stderr.
pub(crate) fn launch(l: &Launch<'_>) -> ServerProc {
    use std::io::BufRead;
    let bin = env!("CARGO_BIN_EXE_pitaya-testing-server");
    let grpc_port = pitaya_test_services::free_port();
    let prom_port = pitaya_test_services::free_port();
    let mut cmd = std::process::Command::new(bin);
    cmd.args(["-type", l.server_type, "-port", &l.port.to_string()])
        .arg(format!("-frontend={}", l.frontend))
        .args(["-sdprefix", l.sd_prefix, "-grpcport", &grpc_port.to_string()])
        .arg(format!("-grpc={}", l.grpc))
        .arg("-debug")
        .env_clear()
        .env("PITAYA_METRICS_PROMETHEUS_PORT", prom_port.to_string())
        .env("PITAYA_CLUSTER_RPC_CLIENT_GRPC_LAZYCONNECTION", l.lazy.to_string())
        .env("PITAYA_CLUSTER_RPC_SERVER_LOOPBACKENABLED", l.loopback.to_string())
        .env("PITAYA_CLUSTER_RPC_CLIENT_NATS_CONNECT", &l.nats_url)
        .env("PITAYA_CLUSTER_RPC_SERVER_NATS_CONNECT", &l.nats_url)
        .env("PITAYA_CLUSTER_SD_ETCD_ENDPOINTS", &l.etcd_endpoint)
        .env("PITAYA_MODULES_BINDINGSTORAGE_ETCD_ENDPOINTS", &l.etcd_endpoint)
        .envs(l.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the testing server");
    let stderr = child.stderr.take().expect("stderr is piped");
    let log_dir = std::env::var("PITAYA_TEST_SERVER_LOGS").ok();
    let log_name = format!("{}-{}-{}.log", l.server_type, child.id(), l.port);
    let (tx, rx) = std::sync::mpsc::channel();
    // Read on a thread so that the wait is bounded; hand the reader back once ready.
    std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stderr);
        let mut seen = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Err(seen.concat()));
                    return;
                }
                Ok(_) => {
                    if seen.len() < 200 {
                        seen.push(line.clone());
                    }
                    if line.contains("all modules started!") {
                        let Some(dir) = log_dir else {
                            let _ = tx.send(Ok(Some(reader)));
                            return;
                        };
                        let _ = tx.send(Ok(None));
                        if let Ok(mut f) = std::fs::File::create(format!("{dir}/{log_name}")) {
                            use std::io::Write;
                            let _ = f.write_all(seen.concat().as_bytes());
                            let _ = std::io::copy(&mut reader, &mut f);
                        }
                        return;
                    }
                }
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(reader)) => {
            ServerProc { child, addr: format!("127.0.0.1:{}", l.port), _stderr: reader }
        }
        Ok(Err(log)) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {} server exited before it was ready:\n{log}", l.server_type)
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {} server was not ready within 30 s", l.server_type)
        }
    }
}

impl ServerProc {
    /// Kills the process at once (SIGKILL): no deregistration, no draining.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `limit` for a graceful exit; true if it exited.
    pub(crate) fn terminate(&mut self, limit: Duration) -> bool {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 10 ms until it returns true, for at most `limit`.
pub(crate) async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// The keys registered under `prefix` in the etcd at `etcd`
/// (`<prefix>servers/<type>/<id>`), read with `etcdctl`.
pub(crate) fn registered(etcd: &str, prefix: &str) -> Vec<String> {
    let out = std::process::Command::new("etcdctl")
        .args(["--endpoints", etcd, "get", "--prefix", "--keys-only", &format!("{prefix}servers/")])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("run etcdctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// A TCP proxy on loopback in front of a NATS server, which a test cuts (every
/// connection through it closed at once, new ones closed as soon as accepted, as a
/// partition that resets connections) and restores. It counts the NATS `MSG`s it
/// delivers to its clients on subjects starting with a given prefix. Stops on drop.
pub(crate) struct CutProxy {
    port: u16,
    cut: tokio::sync::watch::Sender<bool>,
    delivered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    /// A proxy to `upstream` (`host:port`, a `scheme://` prefix is ignored), counting the
    /// messages delivered on subjects starting with `subject_prefix`.
    pub(crate) async fn start(upstream: &str, subject_prefix: &str) -> Self {
        let upstream = upstream.rsplit("://").next().unwrap_or(upstream).to_owned();
        let needle: std::sync::Arc<[u8]> = format!("MSG {subject_prefix}").into_bytes().into();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        let delivered = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = delivered.clone();
        let task = tokio::spawn(async move {
            // Owned by this task: aborting it drops every connection.
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                while conns.try_join_next().is_some() {}
                if *cut_rx.borrow() {
                    continue;
                }
                let mut cut_rx = cut_rx.clone();
                let (upstream, needle, counter) =
                    (upstream.clone(), needle.clone(), counter.clone());
                conns.spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut client_rx, mut client_tx) = inbound.into_split();
                    let (mut server_rx, mut server_tx) = outbound.into_split();
                    let up = tokio::io::copy(&mut client_rx, &mut server_tx);
                    let down = copy_counting(&mut server_rx, &mut client_tx, &needle, &counter);
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = cut_rx.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { port, cut, delivered, task }
    }

    /// The NATS URL of the proxy.
    pub(crate) fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub(crate) fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Forwards new connections again.
    pub(crate) fn restore(&self) {
        self.cut.send_replace(false);
    }

    /// Messages delivered so far on the subjects of the prefix (a message whose `MSG`
    /// line straddles two reads may be missed: a lower bound).
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to` until either ends, adding to `counter` the occurrences of
/// `needle` in each chunk.
async fn copy_counting(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    needle: &[u8],
    counter: &std::sync::atomic::AtomicU64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let seen = chunk.windows(needle.len()).filter(|w| *w == needle).count();
        counter.fetch_add(seen as u64, std::sync::atomic::Ordering::Relaxed);
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}
