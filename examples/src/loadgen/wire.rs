//! The load generator's side of the wire: dial TCP or WebSocket, handshake, move packets.
//!
//! It drives `pitaya-codec` directly rather than going through `pitaya-client`: the
//! client's reader and writer tasks and its per-request channels would cost CPU on the
//! same two cores as the server under test, and every microsecond the load generator
//! spends is a request the server is not asked for.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, Result, bail, ensure};
use bytes::BytesMut;
use futures_util::{FutureExt, SinkExt, StreamExt};
use pitaya_codec::packet::HEADER_LEN;
use pitaya_codec::{
    ClientInfo, HandshakeRequest, HandshakeResponse, MAX_BODY_LEN, Message, MessageCodec,
    MessageType, Packet, PacketDecoder, PacketType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Room made in the read buffer before each read. Loopback's MSS is about 64 KiB, and a
/// receiver that drains its socket in smaller steps delays its TCP window updates: with
/// 4 KiB reads, 4 KiB echoes stalled for milliseconds at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Frames taken without waiting after the one awaited, so that one flush answers many.
const WS_BATCH: usize = 64;

/// One handshaken connection.
pub(crate) struct Conn {
    io: Io,
    /// Bytes read but not decoded yet (TCP), or packets of frames not taken yet (WS).
    rbuf: BytesMut,
    /// Encoded packets waiting for [`Conn::flush`].
    wbuf: BytesMut,
    decoder: PacketDecoder,
}

enum Io {
    Tcp(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
}

impl Conn {
    /// Connects to `addr` (a WebSocket on path `/` when `ws`), handshakes and acks.
    ///
    /// # Errors
    /// Connection refused, a failed upgrade, a handshake code other than 200, or a server
    /// that closes first.
    pub(crate) async fn open(addr: SocketAddr, ws: bool) -> Result<Self> {
        Self::open_from(addr, None, ws).await
    }

    /// As [`Conn::open`], from source address `source` when given: one loopback source
    /// address to one port runs out of ephemeral ports near 28,000 connections, and each
    /// further source address (127.0.0.2, 127.0.0.3, ...) brings as many again.
    pub(crate) async fn open_from(
        addr: SocketAddr,
        source: Option<IpAddr>,
        ws: bool,
    ) -> Result<Self> {
        let tcp = match source {
            None => TcpStream::connect(addr).await,
            Some(source) => {
                let socket = match source {
                    IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                    IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                };
                socket
                    .bind(SocketAddr::new(source, 0))
                    .with_context(|| format!("binding source address {source}"))?;
                socket.connect(addr).await
            }
        }
        .with_context(|| format!("connecting to {addr}"))?;
        // Requests are written in batches already; Nagle would only add latency.
        tcp.set_nodelay(true)?;
        let io = if ws {
            let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
                .await
                .context("WebSocket upgrade")?;
            Io::Ws(Box::new(ws))
        } else {
            Io::Tcp(tcp)
        };
        let mut conn = Self {
            io,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            decoder: PacketDecoder::default(),
        };
        conn.handshake().await?;
        Ok(conn)
    }

    async fn handshake(&mut self) -> Result<()> {
        let hello = HandshakeRequest {
            sys: ClientInfo {
                platform: "loadgen".into(),
                lib_version: env!("CARGO_PKG_VERSION").into(),
                ..ClientInfo::default()
            },
            user: None,
        };
        Packet::new(PacketType::Handshake, hello.encode()).encode(&mut self.wbuf)?;
        self.flush().await?;
        loop {
            let packet = self.recv().await?.context("server closed during the handshake")?;
            match packet.kind {
                PacketType::Handshake => {
                    let response = HandshakeResponse::decode(&packet.body, MAX_BODY_LEN)?;
                    ensure!(response.code == 200, "handshake refused with code {}", response.code);
                    break;
                }
                // The server's heartbeat ticker runs from accept (spec §1.6).
                PacketType::Heartbeat => {}
                other => bail!("{other:?} packet before the handshake response"),
            }
        }
        Packet::empty(PacketType::HandshakeAck).encode(&mut self.wbuf)?;
        self.flush().await
    }

    /// Queues `msg`; it goes out with the next [`Conn::flush`].
    pub(crate) fn queue(&mut self, codec: &MessageCodec, msg: &Message) -> Result<()> {
        Ok(codec.encode_packet(msg, &mut self.wbuf)?)
    }

    /// Sends request `route` with `body` (id 1) and waits for its answer, skipping any
    /// other packet; an error response is an error.
    pub(crate) async fn request(&mut self, route: &str, body: bytes::Bytes) -> Result<()> {
        let codec = MessageCodec::new();
        self.queue(&codec, &Message::request(1, route, body))?;
        self.flush().await?;
        while let Some(packet) = self.recv().await? {
            if packet.kind != PacketType::Data {
                continue;
            }
            let msg = codec.decode(packet.body)?;
            if msg.kind == MessageType::Response && msg.id == 1 {
                ensure!(!msg.error, "{route} failed: {}", String::from_utf8_lossy(&msg.data));
                return Ok(());
            }
        }
        bail!("server closed the connection before answering {route}")
    }

    /// Writes every queued packet: one write on TCP, one frame per packet on WebSocket
    /// (spec §4.2), then one flush.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        match &mut self.io {
            Io::Tcp(tcp) => {
                tcp.write_all(&self.wbuf).await?;
                self.wbuf.clear();
            }
            Io::Ws(ws) => {
                let mut rest = self.wbuf.split().freeze();
                while !rest.is_empty() {
                    // Headers were written by the codec just above, so they are whole.
                    let body = rest
                        .get(1..HEADER_LEN)
                        .map(|l| l.iter().fold(0usize, |n, &b| n << 8 | usize::from(b)))
                        .context("queued bytes are not whole packets")?;
                    let len = (HEADER_LEN + body).min(rest.len());
                    ws.feed(WsMessage::Binary(rest.split_to(len))).await?;
                }
                ws.flush().await?;
            }
        }
        Ok(())
    }

    /// The next packet, waiting for bytes when none is buffered; `None` once the server
    /// closed the connection.
    pub(crate) async fn recv(&mut self) -> Result<Option<Packet>> {
        loop {
            if let Some(packet) = self.buffered()? {
                return Ok(Some(packet));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// A packet already received, without waiting.
    pub(crate) fn buffered(&mut self) -> Result<Option<Packet>> {
        Ok(self.decoder.decode(&mut self.rbuf)?)
    }

    /// Waits for more bytes (TCP) or frames (WS), then takes whatever else is already
    /// there; false once the server closed the connection.
    pub(crate) async fn fill(&mut self) -> Result<bool> {
        match &mut self.io {
            Io::Tcp(tcp) => {
                // Copies a partial packet at most once per 64 KiB read; the buffer is
                // reclaimed in place once the bodies split off it are dropped.
                self.rbuf.reserve(READ_CHUNK);
                Ok(tcp.read_buf(&mut self.rbuf).await? > 0)
            }
            Io::Ws(ws) => {
                let Some(first) = ws.next().await else { return Ok(false) };
                let mut open = take_frame(first?, &mut self.rbuf);
                for _ in 0..WS_BATCH {
                    // `next` on a WebSocket stream is cancel safe: dropping a pending
                    // poll loses nothing.
                    match ws.next().now_or_never() {
                        Some(Some(frame)) => open &= take_frame(frame?, &mut self.rbuf),
                        Some(None) => open = false,
                        None => break,
                    }
                }
                Ok(open)
            }
        }
    }

    /// Drops the buffers and keeps only the socket: what an idle connection needs.
    pub(crate) fn into_idle(self) -> IdleConn {
        IdleConn(self.io)
    }
}

/// A connection held open: never read again, or only to answer heartbeats.
pub(crate) struct IdleConn(Io);

/// Heartbeat packet (spec §1.5): type 3, empty body.
const HEARTBEAT: [u8; 4] = [0x03, 0x00, 0x00, 0x00];

impl IdleConn {
    /// Answers each of the server's heartbeats with one of ours, as Pitaya clients do,
    /// until `until`; returns the heartbeats answered and whether the connection was still
    /// open then. Anything but heartbeats is an error: nothing else is sent to an idle
    /// client.
    ///
    /// Reads into a 64-byte buffer on the stack: a hundred thousand of these run at once,
    /// and the 64 KiB read buffers of [`Conn`] would take gigabytes.
    pub(crate) async fn answer_heartbeats(
        self,
        until: tokio::time::Instant,
    ) -> Result<(u64, bool)> {
        let Io::Tcp(mut tcp) = self.0 else { bail!("heartbeats are answered on TCP only") };
        let mut answered = 0u64;
        // Bytes of a heartbeat packet read so far: reads may split it.
        let mut partial = 0usize;
        let mut buf = [0u8; 64];
        loop {
            let read = match tokio::time::timeout_at(until, tcp.read(&mut buf)).await {
                Err(_) => return Ok((answered, true)),
                Ok(read) => read?,
            };
            if read == 0 {
                return Ok((answered, false));
            }
            let mut whole = 0;
            for &byte in buf.get(..read).unwrap_or_default() {
                ensure!(
                    HEARTBEAT.get(partial) == Some(&byte),
                    "an idle client received something other than heartbeats"
                );
                partial += 1;
                if partial == HEARTBEAT.len() {
                    partial = 0;
                    whole += 1;
                }
            }
            for _ in 0..whole {
                tcp.write_all(&HEARTBEAT).await?;
            }
            answered += whole;
        }
    }
}

/// Appends a WebSocket frame's packet to `buf`; false for a close frame.
fn take_frame(frame: WsMessage, buf: &mut BytesMut) -> bool {
    match frame {
        WsMessage::Binary(bytes) => buf.extend_from_slice(&bytes),
        WsMessage::Text(text) => buf.extend_from_slice(text.as_bytes()),
        WsMessage::Close(_) => return false,
        WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
    }
    true
}
