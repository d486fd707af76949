//! A TCP proxy on loopback that a test can cut: it forwards each accepted connection to
//! `upstream` byte for byte until told to
//!
//! - **hold**: every connection open now loses every byte both ways from then on (read
//!   and thrown away, as a dead network does), so nothing more is delivered either way;
//! - **cut**: every connection open now ends at once, both sides, with no WebSocket
//!   close frame (the peers see end of stream or a reset).
//!
//! Connections accepted later are forwarded normally. A node script drives it through a
//! small HTTP endpoint on 127.0.0.1: `POST /hold`, `POST /cut`, and `GET /connections`
//! (how many connections were accepted so far).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// The running proxy; stops accepting and ends its connections when dropped.
pub(crate) struct CutProxy {
    addr: SocketAddr,
    control: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    conns: Mutex<Vec<Conn>>,
    accepted: AtomicUsize,
}

struct Conn {
    held: Arc<AtomicBool>,
    task: AbortHandle,
}

impl CutProxy {
    /// Listens on a free loopback port for clients and another for the control endpoint.
    pub(crate) async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let control = TcpListener::bind("127.0.0.1:0").await?;
        let (addr, control_addr) = (listener.local_addr()?, control.local_addr()?);
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        let app = Router::new()
            .route(
                "/hold",
                post(|State(s): State<Arc<Shared>>| async move { s.hold().to_string() }),
            )
            .route("/cut", post(|State(s): State<Arc<Shared>>| async move { s.cut().to_string() }))
            .route(
                "/connections",
                get(|State(s): State<Arc<Shared>>| async move {
                    s.accepted.load(Ordering::SeqCst).to_string()
                }),
            )
            .with_state(shared.clone());
        let serve = tokio::spawn(async move {
            let _ = axum::serve(control, app).await;
        });
        Ok(Self { addr, control: control_addr, shared, tasks: vec![accept, serve] })
    }

    /// Where clients connect instead of `upstream`.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control endpoint, `http://127.0.0.1:PORT`.
    pub(crate) fn control_url(&self) -> String {
        format!("http://{}", self.control)
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.shared.cut();
    }
}

impl Shared {
    /// Holds the connections open now; returns how many.
    fn hold(&self) -> usize {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for conn in conns.iter() {
            conn.held.store(true, Ordering::SeqCst);
        }
        conns.len()
    }

    /// Ends the connections open now; returns how many.
    fn cut(&self) -> usize {
        let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let live = conns.iter().filter(|c| !c.task.is_finished()).count();
        // Aborting drops both sockets of the connection, which closes them.
        for conn in conns.drain(..) {
            conn.task.abort();
        }
        live
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        let held = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(pipe(client, upstream, held.clone()));
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.retain(|c| !c.task.is_finished());
        conns.push(Conn { held, task: task.abort_handle() });
    }
}

/// Forwards both ways until either side ends; then both are closed.
async fn pipe(client: TcpStream, upstream: SocketAddr, held: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = forward(client_read, server_write, &held) => {}
        () = forward(server_read, client_write, &held) => {}
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    held: &AtomicBool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if held.load(Ordering::SeqCst) {
            continue;
        }
        // `n` comes from `read` into `buf`, so the range is in bounds.
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
