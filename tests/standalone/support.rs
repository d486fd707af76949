//! Shared helpers: servers on 127.0.0.1 port 0, raw TCP and WebSocket peers, time limits.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use pitaya::client::{Client, ClientError, ClientOptions, ErrorPayload, Push, Pushes, TlsOptions};
use pitaya::codec::{Message, MessageCodec, Packet, PacketDecoder, PacketType};
use pitaya::config::{ConfigLoader, PitayaConfig};
use pitaya::{App, AppHandle, Builder, Component, Error, Pitaya, RunningApp, Session};
use pitaya_examples::echo::{self, EchoArgs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite;

/// Bound on any single wait: generous for a loaded 2-core machine, short enough that a
/// hang is reported within seconds.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Bound on the packets [`Raw::closed`] collects while waiting for a close.
const MAX_PACKETS_BEFORE_CLOSE: usize = 100;

/// Bound on a whole test body.
const TEST_LIMIT: Duration = Duration::from_secs(40);

/// A client handshake with the four `sys` strings libpitaya sends (spec §1.3).
pub(crate) const HANDSHAKE: &[u8] = br#"{"sys":{"platform":"test","libVersion":"0.1.0","clientBuildNumber":"1","clientVersion":"1.0"}}"#;
/// The canonical empty packets (spec §1.2).
pub(crate) const ACK: &[u8] = &[0x02, 0x00, 0x00, 0x00];
pub(crate) const HEARTBEAT: &[u8] = &[0x03, 0x00, 0x00, 0x00];
pub(crate) const KICK: &[u8] = &[0x05, 0x00, 0x00, 0x00];

/// Runs a test body, failing instead of hanging.
pub(crate) async fn within<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, body).await.expect("the test exceeded its time limit")
}

/// Awaits `f` for at most [`WAIT`].
pub(crate) async fn wait<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Go Pitaya's defaults with `overrides` on top. The environment is not read, so the
/// runner's `PITAYA_*` variables cannot change what a test sees.
pub(crate) fn config(overrides: &[(&str, &str)]) -> PitayaConfig {
    overrides
        .iter()
        .fold(ConfigLoader::new(), |loader, (key, value)| loader.set(key, *value))
        .load()
        .expect("test configuration loads")
}

/// A heartbeat of one second: short enough to watch several intervals in a test.
pub(crate) const FAST_HEARTBEAT: (&str, &str) = ("pitaya.heartbeat.interval", "1s");

/// The echo app on a TCP and a WebSocket acceptor, both on a free port.
pub(crate) fn echo_builder(config: PitayaConfig) -> Builder {
    Pitaya::builder()
        .server_type("connector")
        .config(config)
        .component(echo::component())
        .tcp("127.0.0.1:0")
        .ws("127.0.0.1:0")
}

/// `EchoArgs` for a TCP and a WebSocket acceptor on free ports.
pub(crate) fn echo_args() -> EchoArgs {
    EchoArgs {
        tcp: Some("127.0.0.1:0".to_owned()),
        ws: Some("127.0.0.1:0".to_owned()),
        ..EchoArgs::default()
    }
}

/// A `test` component beside the echo app's `room`: `test.bind` binds the uid in the
/// body and answers `bound`.
pub(crate) fn test_component() -> Component {
    Component::new("test").handler("bind", bind)
}

async fn bind(s: Session, body: Bytes) -> Result<Bytes, Error> {
    s.bind(&String::from_utf8_lossy(&body)).await?;
    Ok(Bytes::from_static(b"bound"))
}

/// A running server and how to reach it.
pub(crate) struct Server {
    running: RunningApp,
    tls: Option<TlsOptions>,
}

impl Server {
    /// Starts `builder`.
    pub(crate) async fn start(builder: Builder) -> Self {
        let running = App::start_from(builder).await.expect("the server starts");
        Self { running, tls: None }
    }

    /// Starts the echo app as its binary does; `tls` is what clients need to trust it.
    pub(crate) async fn echo(
        args: &EchoArgs,
        config: PitayaConfig,
        tls: Option<TlsOptions>,
    ) -> Self {
        let running = echo::start_with_config(args, config).await.expect("the echo server starts");
        Self { running, tls }
    }

    /// The first acceptor of that kind.
    pub(crate) fn addr(&self, websocket: bool) -> SocketAddr {
        self.running
            .local_addrs()
            .iter()
            .find(|(transport, _)| transport.is_websocket() == websocket)
            .map(|(_, addr)| *addr)
            .expect("the server has an acceptor of that kind")
    }

    /// The client address of that acceptor, with the scheme TLS needs.
    pub(crate) fn url(&self, websocket: bool) -> String {
        let addr = self.addr(websocket);
        match (websocket, self.tls.is_some()) {
            (false, false) => addr.to_string(),
            (false, true) => format!("tls://{addr}"),
            (true, false) => format!("ws://{addr}/"),
            (true, true) => format!("wss://{addr}/"),
        }
    }

    pub(crate) fn options(&self) -> ClientOptions {
        ClientOptions { tls: self.tls.clone(), ..ClientOptions::default() }
    }

    /// A client over TCP (or TLS).
    pub(crate) async fn client(&self) -> (Client, Pushes) {
        self.connect(false).await
    }

    /// A client over TCP or WebSocket (TLS when the server has it).
    pub(crate) async fn connect(&self, websocket: bool) -> (Client, Pushes) {
        Client::connect(&self.url(websocket), self.options())
            .await
            .unwrap_or_else(|e| panic!("client connects to {}: {e}", self.url(websocket)))
    }

    /// A fresh client gets a `room.echo` answered: what every bad input must leave intact.
    pub(crate) async fn assert_healthy(&self) {
        let (client, _pushes) = self.client().await;
        let reply = client.request("room.echo", "still serving").await;
        assert_eq!(reply.expect("a healthy client is served"), "still serving");
        client.close().await;
    }

    /// A raw peer on the plain TCP acceptor.
    pub(crate) async fn raw(&self) -> Raw {
        Raw::connect(self.addr(false)).await
    }

    /// A raw peer on the plain WebSocket acceptor.
    pub(crate) async fn raw_ws(&self) -> RawWs {
        let addr = self.addr(true);
        let tcp = wait("tcp connect", TcpStream::connect(addr)).await.expect("tcp connect");
        let (ws, _) = wait(
            "websocket upgrade",
            tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp),
        )
        .await
        .expect("websocket upgrade");
        RawWs(ws)
    }

    pub(crate) fn handle(&self) -> &AppHandle {
        self.running.handle()
    }

    /// Graceful shutdown, bounded.
    pub(crate) async fn shutdown(self) {
        wait("server shutdown", self.running.shutdown()).await;
    }
}

/// A packet with a raw type byte and a correct length field.
pub(crate) fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("test bodies are small");
    let [_, a, b, c] = len.to_be_bytes();
    let mut out = vec![kind, a, b, c];
    out.extend_from_slice(body);
    out
}

/// A Data packet carrying `msg`, without dictionary or compression.
pub(crate) fn encode(msg: &Message) -> Vec<u8> {
    let mut out = BytesMut::new();
    MessageCodec::new().encode_packet(msg, &mut out).expect("the test message encodes");
    out.to_vec()
}

/// The error payload of a failed request; panics on anything else.
pub(crate) fn server_error(result: Result<Bytes, ClientError>) -> ErrorPayload {
    match result {
        Err(ClientError::Server(payload)) => payload,
        other => panic!("expected an error response, got {other:?}"),
    }
}

/// The next push, within [`WAIT`].
pub(crate) async fn next_push(pushes: &mut Pushes) -> Push {
    wait("a push", pushes.recv()).await.expect("the push stream ended")
}

pub(crate) fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(bytes)))
}

/// A raw TCP peer: sends literal bytes, reads whole packets.
pub(crate) struct Raw {
    stream: TcpStream,
    buf: BytesMut,
    codec: MessageCodec,
    /// Heartbeats skipped by [`frame`](Self::frame).
    pub(crate) heartbeats: usize,
}

impl Raw {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        let stream = wait("tcp connect", TcpStream::connect(addr)).await.expect("tcp connect");
        Self { stream, buf: BytesMut::new(), codec: MessageCodec::new(), heartbeats: 0 }
    }

    /// As [`connect`](Self::connect), with the smallest receive buffer the kernel allows:
    /// a peer that stops reading then backs the server up after little data.
    pub(crate) async fn connect_small_window(addr: SocketAddr) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a tcp socket");
        socket.set_recv_buffer_size(1024).expect("a small receive buffer");
        let stream = wait("tcp connect", socket.connect(addr)).await.expect("tcp connect");
        Self { stream, buf: BytesMut::new(), codec: MessageCodec::new(), heartbeats: 0 }
    }

    /// Reads and discards until the server closes, within `limit` and at most
    /// `max_bytes`; the number of bytes read.
    pub(crate) async fn drain_until_close(&mut self, limit: Duration, max_bytes: usize) -> usize {
        let mut read = self.buf.len();
        self.buf.clear();
        let drained = tokio::time::timeout(limit, async {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => read += n,
                }
                assert!(read <= max_bytes, "the server keeps sending: {read} bytes");
            }
        })
        .await;
        assert!(drained.is_ok(), "the server did not close within {limit:?}");
        read
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        wait("a write", self.stream.write_all(bytes)).await.expect("write to the server");
    }

    /// Ends our side of the stream (TCP FIN), keeping the read side open.
    pub(crate) async fn shutdown_write(&mut self) {
        wait("a shutdown", self.stream.shutdown()).await.expect("shutdown the write half");
    }

    /// The next packet, heartbeats included; `None` once the server closed.
    pub(crate) async fn packet(&mut self) -> Option<Packet> {
        wait("a packet from the server", self.read_packet()).await
    }

    /// Like [`frame`](Self::frame), but `Err` when nothing came within `limit`.
    pub(crate) async fn frame_within(&mut self, limit: Duration) -> Result<Option<Packet>, ()> {
        tokio::time::timeout(limit, async {
            loop {
                match self.read_packet().await {
                    Some(p) if p.kind == PacketType::Heartbeat => self.heartbeats += 1,
                    other => return other,
                }
            }
        })
        .await
        .map_err(|_| ())
    }

    /// Cancel safe: bytes are only appended to the buffer by a completed read.
    async fn read_packet(&mut self) -> Option<Packet> {
        loop {
            let decoded = PacketDecoder::default().decode(&mut self.buf);
            if let Some(packet) = decoded.expect("the server sends valid framing") {
                return Some(packet);
            }
            match self.stream.read_buf(&mut self.buf).await {
                // A reset is how a close looks when the server had unread bytes from us.
                Ok(0) | Err(_) => {
                    assert!(
                        self.buf.is_empty(),
                        "connection ended inside a packet: {:02x?}",
                        &self.buf[..]
                    );
                    return None;
                }
                Ok(_) => {}
            }
        }
    }

    /// The next packet that is not a heartbeat (heartbeats are counted), within [`WAIT`]
    /// in all: a server that only ever sends heartbeats fails the wait.
    pub(crate) async fn frame(&mut self) -> Option<Packet> {
        self.frame_within(WAIT)
            .await
            .expect("timed out waiting for a packet other than a heartbeat")
    }

    /// Sends the handshake, returns its response (code 200 expected), sends the ack.
    pub(crate) async fn handshake(&mut self) -> Packet {
        self.send(&packet(0x01, HANDSHAKE)).await;
        let response = self.frame().await.expect("a handshake response");
        assert_eq!(response.kind, PacketType::Handshake);
        assert_eq!(json(&response.body)["code"], 200);
        self.send(ACK).await;
        response
    }

    /// The next data message with its flag byte, as the server put it on the wire.
    pub(crate) async fn flagged_message(&mut self) -> (u8, Message) {
        let packet = self.frame().await.expect("a message, not a close");
        assert_eq!(packet.kind, PacketType::Data, "expected a data packet, got {packet:?}");
        let flag = *packet.body.first().expect("a message has a flag byte");
        (flag, self.codec.decode(packet.body).expect("the server's message decodes"))
    }

    /// The next data message.
    pub(crate) async fn message(&mut self) -> Message {
        self.flagged_message().await.1
    }

    pub(crate) async fn request(&mut self, id: u64, route: &str, data: &[u8]) {
        self.send(&encode(&Message::request(id, route, Bytes::copy_from_slice(data)))).await;
    }

    pub(crate) async fn notify(&mut self, route: &str, data: &[u8]) {
        self.send(&encode(&Message::notify(route, Bytes::copy_from_slice(data)))).await;
    }

    /// Reads until the server closes; returns the packets other than heartbeats.
    pub(crate) async fn closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        while let Some(packet) = self.frame().await {
            seen.push(packet);
            assert!(seen.len() < MAX_PACKETS_BEFORE_CLOSE, "the server keeps talking: {seen:?}");
        }
        seen
    }

    /// The server closes and sends nothing but heartbeats first.
    pub(crate) async fn expect_silent_close(&mut self, case: &str) {
        let seen = self.closed().await;
        assert!(seen.is_empty(), "{case}: expected a close with nothing sent, got {seen:?}");
    }

    /// Every byte until the server closes, for exact wire checks.
    pub(crate) async fn bytes_until_close(&mut self) -> Vec<u8> {
        let mut out = self.buf.split().to_vec();
        wait("the server to close", async {
            while let Ok(1..) = self.stream.read_buf(&mut out).await {}
        })
        .await;
        out
    }

    /// Exactly `n` bytes, for exact wire checks.
    pub(crate) async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let read = wait("bytes from the server", self.stream.read_buf(&mut self.buf)).await;
            assert!(read.expect("read from the server") > 0, "closed before {n} bytes");
        }
        self.buf.split_to(n).to_vec()
    }
}

/// A raw WebSocket peer: sends frames of our choosing.
pub(crate) struct RawWs(pub(crate) WebSocketStream<TcpStream>);

impl RawWs {
    pub(crate) async fn send(&mut self, message: tungstenite::Message) {
        futures_util::SinkExt::send(&mut self.0, message).await.expect("websocket send");
    }

    pub(crate) async fn send_binary(&mut self, bytes: &[u8]) {
        self.send(tungstenite::Message::binary(Bytes::copy_from_slice(bytes))).await;
    }

    /// The next binary message other than a heartbeat; `None` once the server closed.
    pub(crate) async fn frame(&mut self) -> Option<Bytes> {
        wait("a websocket message", async {
            loop {
                match self.0.next().await {
                    Some(Ok(tungstenite::Message::Binary(b))) if b[..] == *HEARTBEAT => {}
                    Some(Ok(tungstenite::Message::Binary(b))) => return Some(b),
                    Some(Ok(tungstenite::Message::Close(_))) | Some(Err(_)) | None => return None,
                    Some(Ok(other)) => panic!("the server sent a non-binary message: {other:?}"),
                }
            }
        })
        .await
    }

    /// The server ends the WebSocket and sends no data first.
    pub(crate) async fn expect_silent_close(&mut self, case: &str) {
        if let Some(frame) = self.frame().await {
            panic!("{case}: expected a close with nothing sent, got {frame:02x?}");
        }
    }
}

/// A self-signed certificate for `localhost` written as PEM files in a fresh temporary
/// directory (removed on drop), and client TLS options that trust exactly it.
pub(crate) struct TlsFiles {
    dir: PathBuf,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) client: TlsOptions,
}

impl TlsFiles {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pitaya-standalone-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the certificate directory");
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("generate a certificate");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).expect("write the certificate");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write the key");
        // We dial 127.0.0.1; the certificate names localhost.
        let client = TlsOptions::with_root_certs([certified.cert.der().clone()])
            .expect("trust the certificate")
            .server_name("localhost");
        Self { dir, cert, key, client }
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
