//! A tiny Pitaya frontend for the tests: just enough protocol to drive the client.
//!
//! Request routes with a meaning: `fail` (error response PIT-499), `silent` (no answer),
//! `close` (server closes), `kick` (Kick packet, then close), `push` (data = count: that
//! many `onMessage` pushes, then "ok"), `delay` (data = "<ms> <payload>": echo after a
//! delay), `garbage` (a packet with a bad type). Anything else is echoed.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use pitaya_codec::{
    HandshakeRequest, HandshakeResponse, Message, MessageCodec, MessageType, Packet, PacketDecoder,
    PacketType, RouteDict, compression, encode_packet,
};
use pitaya_serialize::{ErrorPayload, SerializerKind};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Upper bound for any single test.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `fut`, failing the test if it takes longer than [`TEST_TIMEOUT`].
pub(crate) async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, fut).await.expect("test took too long")
}

/// Polls `check` every 10 ms until it holds, for at most [`TEST_TIMEOUT`].
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TEST_TIMEOUT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Tcp,
    Ws,
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) code: u16,
    pub(crate) heartbeat: Duration,
    pub(crate) send_heartbeats: bool,
    pub(crate) dict: BTreeMap<String, u16>,
    pub(crate) serializer: SerializerKind,
    pub(crate) compress_handshake: bool,
    pub(crate) compress_data: bool,
    pub(crate) tls: Option<TlsAcceptor>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            code: 200,
            heartbeat: Duration::ZERO,
            send_heartbeats: true,
            dict: BTreeMap::new(),
            serializer: SerializerKind::Json,
            compress_handshake: false,
            compress_data: false,
            tls: None,
        }
    }
}

/// What the server saw, for assertions.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) handshakes: Mutex<Vec<HandshakeRequest>>,
    pub(crate) acks: AtomicU64,
    pub(crate) heartbeats: AtomicU64,
    pub(crate) notifies: Mutex<Vec<(String, Bytes)>>,
    /// Flag byte of every Data packet received.
    pub(crate) flags: Mutex<Vec<u8>>,
    /// Id and route of every request received.
    pub(crate) requests: Mutex<Vec<(u64, String)>>,
}

pub(crate) struct FakeServer {
    pub(crate) addr: SocketAddr,
    pub(crate) wire: Wire,
    pub(crate) seen: Arc<Seen>,
}

impl FakeServer {
    pub(crate) async fn start(wire: Wire, config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let config = Arc::new(config);
        let state = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (config, seen) = (config.clone(), state.clone());
                tokio::spawn(async move {
                    match config.tls.clone() {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(tcp).await {
                                serve(tls, wire, config, seen).await;
                            }
                        }
                        None => serve(tcp, wire, config, seen).await,
                    }
                });
            }
        });
        Self { addr, wire, seen }
    }

    /// The address for the client, with the right scheme.
    pub(crate) fn url(&self, tls: bool) -> String {
        match (self.wire, tls) {
            (Wire::Tcp, false) => self.addr.to_string(),
            (Wire::Tcp, true) => format!("tls://{}", self.addr),
            (Wire::Ws, false) => format!("ws://{}/any/path", self.addr),
            (Wire::Ws, true) => format!("wss://{}/any/path", self.addr),
        }
    }
}

enum Out {
    Packet(Bytes),
    Close,
}

enum Input<S> {
    Tcp(tokio::io::ReadHalf<S>, BytesMut),
    Ws(futures_util::stream::SplitStream<tokio_tungstenite::WebSocketStream<S>>),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Input<S> {
    async fn next(&mut self) -> Option<Packet> {
        match self {
            Self::Tcp(io, buf) => loop {
                if let Some(p) = PacketDecoder::default().decode(buf).ok()? {
                    return Some(p);
                }
                if io.read_buf(buf).await.ok()? == 0 {
                    return None;
                }
            },
            Self::Ws(stream) => loop {
                match stream.next().await?.ok()? {
                    WsMessage::Binary(frame) => return Packet::from_frame(frame, 1 << 24).ok(),
                    WsMessage::Close(_) => return None,
                    _ => continue,
                }
            },
        }
    }
}

pub(crate) fn packet(kind: PacketType, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::new();
    encode_packet(kind, body, &mut buf).unwrap();
    buf.freeze()
}

async fn serve<S>(io: S, wire: Wire, config: Arc<Config>, seen: Arc<Seen>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (out, mut queue) = mpsc::unbounded_channel::<Out>();
    let mut input = match wire {
        Wire::Tcp => {
            let (read, mut write) = tokio::io::split(io);
            tokio::spawn(async move {
                while let Some(Out::Packet(p)) = queue.recv().await {
                    if write.write_all(&p).await.is_err() {
                        return;
                    }
                }
                let _ = write.shutdown().await;
            });
            Input::Tcp(read, BytesMut::new())
        }
        Wire::Ws => {
            let Ok(ws) = tokio_tungstenite::accept_async(io).await else { return };
            let (mut sink, stream) = ws.split();
            tokio::spawn(async move {
                while let Some(Out::Packet(p)) = queue.recv().await {
                    if sink.send(WsMessage::Binary(p)).await.is_err() {
                        return;
                    }
                }
                let _ = sink.close().await;
            });
            Input::Ws(stream)
        }
    };

    let Some(hello) = input.next().await else { return };
    assert_eq!(hello.kind, PacketType::Handshake);
    seen.handshakes.lock().unwrap().push(HandshakeRequest::decode(&hello.body).unwrap());
    let response = HandshakeResponse::new(
        config.code,
        config.heartbeat,
        config.dict.clone(),
        config.serializer.name(),
    )
    .encode();
    let body = if config.compress_handshake { compression::deflate(&response) } else { response };
    let _ = out.send(Out::Packet(packet(PacketType::Handshake, &body)));
    if config.code != 200 {
        let _ = out.send(Out::Close);
        return;
    }
    if config.send_heartbeats && !config.heartbeat.is_zero() {
        let (out, period) = (out.clone(), config.heartbeat);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                if out.send(Out::Packet(packet(PacketType::Heartbeat, &[]))).is_err() {
                    return;
                }
            }
        });
    }

    let dict = RouteDict::from_entries(config.dict.iter().map(|(r, c)| (r.as_str(), *c))).unwrap();
    let codec =
        MessageCodec::new().with_dict(Arc::new(dict)).with_data_compression(config.compress_data);
    let send = |msg: Message| {
        let mut buf = BytesMut::new();
        codec.encode_packet(&msg, &mut buf).unwrap();
        let _ = out.send(Out::Packet(buf.freeze()));
    };
    while let Some(p) = input.next().await {
        match p.kind {
            PacketType::HandshakeAck => {
                seen.acks.fetch_add(1, Ordering::SeqCst);
            }
            PacketType::Heartbeat => {
                seen.heartbeats.fetch_add(1, Ordering::SeqCst);
            }
            PacketType::Data => {
                seen.flags.lock().unwrap().push(p.body[0]);
                let msg = codec.decode(p.body).unwrap();
                match msg.kind {
                    MessageType::Notify => {
                        seen.notifies.lock().unwrap().push((msg.route, msg.data))
                    }
                    MessageType::Request => {
                        seen.requests.lock().unwrap().push((msg.id, msg.route.clone()));
                        let id = msg.id;
                        match msg.route.as_str() {
                            "fail" => {
                                let err = ErrorPayload::new("PIT-499", "fail")
                                    .with_metadata("route", "fail");
                                send(Message::error_response(
                                    id,
                                    config.serializer.serializer().encode_error(&err),
                                ));
                            }
                            "silent" => {}
                            "close" => {
                                let _ = out.send(Out::Close);
                            }
                            "kick" => {
                                let _ = out.send(Out::Packet(packet(PacketType::Kick, &[])));
                                let _ = out.send(Out::Close);
                            }
                            "garbage" => {
                                let _ = out.send(Out::Packet(Bytes::from_static(&[9, 0, 0, 0])));
                            }
                            "push" => {
                                let n: usize =
                                    std::str::from_utf8(&msg.data).unwrap().parse().unwrap();
                                for i in 0..n {
                                    send(Message::push("onMessage", i.to_string()));
                                }
                                send(Message::response(id, "ok"));
                            }
                            "delay" => {
                                let text = std::str::from_utf8(&msg.data).unwrap();
                                let ms: u64 = text.split(' ').next().unwrap().parse().unwrap();
                                let (codec, out, data) = (codec.clone(), out.clone(), msg.data);
                                tokio::spawn(async move {
                                    tokio::time::sleep(Duration::from_millis(ms)).await;
                                    let mut buf = BytesMut::new();
                                    codec
                                        .encode_packet(&Message::response(id, data), &mut buf)
                                        .unwrap();
                                    let _ = out.send(Out::Packet(buf.freeze()));
                                });
                            }
                            _ => send(Message::response(id, msg.data)),
                        }
                    }
                    other => panic!("client sent a {other:?}"),
                }
            }
            other => panic!("client sent a {other:?} packet"),
        }
    }
}
