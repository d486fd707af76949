//! [`PacketReader`]: the read half of a connection, yielding whole packets.

use std::fmt;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use futures_util::stream::SplitStream;
use futures_util::{FutureExt, StreamExt};
use pitaya_codec::{Packet, PacketDecoder, PacketType};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{self, Message};
use tracing::debug;

use crate::ConnError;
use crate::rate_limit::PacketRateLimiter;
use crate::ws::WsStream;

/// The read half of a TLS stream, or of a PROXY-prefixed one.
pub(crate) type BoxedRead = Box<dyn AsyncRead + Send + Unpin>;

/// Where a stream reader's bytes come from.
pub(crate) enum StreamIo {
    /// Plain TCP, whose readiness can be awaited without a buffer: an idle connection
    /// then holds no read buffer at all (1 KiB of the server's memory per connection).
    Tcp(OwnedReadHalf),
    /// TLS, or a stream behind bytes already read (PROXY header).
    Other(BoxedRead),
}

/// Smallest room a read gets: what a connection waiting between requests holds (an idle
/// TCP one holds nothing, see [`StreamSource::idle`]).
const MIN_READ: usize = 1024;
/// Largest room a read gets. Draining a busy socket in small steps costs a syscall per
/// step and, on loopback, delays the sender's window updates (`cargo xtask bench` showed
/// 4 KiB reads losing most of the throughput on 4 KiB messages).
const MAX_READ: usize = 64 * 1024;

/// Reads packets from one client connection.
///
/// Usable from a different task than the [`PacketWriter`](crate::PacketWriter) of the
/// same connection, concurrently.
pub struct PacketReader {
    source: Source,
    limiter: Option<PacketRateLimiter>,
    dropped: u64,
    dropped_data: u64,
    remote_addr: SocketAddr,
}

enum Source {
    Stream(StreamSource),
    Ws(WsSource),
}

impl PacketReader {
    /// A reader over a byte stream; `buffered` holds bytes already read off it (after a
    /// PROXY header), decoded before anything else.
    pub(crate) fn stream(
        io: StreamIo,
        buffered: BytesMut,
        max_body_len: usize,
        limiter: Option<PacketRateLimiter>,
        remote_addr: SocketAddr,
    ) -> Self {
        let decoder = PacketDecoder::with_max_body_len(max_body_len);
        let source = Source::Stream(StreamSource {
            io,
            buf: buffered,
            decoder,
            read_size: MIN_READ,
            idle: true,
        });
        Self { source, limiter, dropped: 0, dropped_data: 0, remote_addr }
    }

    /// A reader over the receiving half of a WebSocket.
    pub(crate) fn websocket(
        stream: SplitStream<WsStream>,
        max_body_len: usize,
        limiter: Option<PacketRateLimiter>,
        remote_addr: SocketAddr,
    ) -> Self {
        let source = Source::Ws(WsSource { stream, max_body_len });
        Self { source, limiter, dropped: 0, dropped_data: 0, remote_addr }
    }

    /// Returns the next packet, or `Ok(None)` once the peer closed cleanly: EOF between
    /// two packets on TCP/TLS; a close frame, or the socket closing, on WebSocket (the
    /// WebSocket library does not tell a socket closed between frames from one closed
    /// inside a frame; either way no partial packet is returned).
    ///
    /// When a rate limit is configured, packets over it (heartbeats included, spec §4.4)
    /// are dropped here, counted in [`dropped_by_rate_limit`](Self::dropped_by_rate_limit)
    /// and [`exceeded_rate_limiting_total`](crate::exceeded_rate_limiting_total), and
    /// never returned.
    ///
    /// # Cancel safety
    /// Cancel safe: if the future is dropped before it completes (for instance in a
    /// `tokio::select!` branch that lost), no byte is lost and the next call resumes where
    /// this one stopped.
    ///
    /// # Errors
    /// Every error means the connection must be closed; do not call `read` again after
    /// one.
    /// - [`ConnError::Packet`]: bad type byte, body over the limit (detected from the
    ///   header, before the body is read), or a WebSocket message that is shorter than a
    ///   header or not exactly `4 + length` bytes.
    /// - [`ConnError::UnexpectedEof`]: the stream ended inside a packet.
    /// - [`ConnError::Io`], [`ConnError::WebSocket`]: transport failures, including a
    ///   WebSocket protocol violation. A text message is read like a binary one and its
    ///   payload is never checked for UTF-8, as in Go (spec §4.2).
    pub async fn read(&mut self) -> Result<Option<Packet>, ConnError> {
        loop {
            // The only awaits are inside the sources, and both are cancel safe; once a
            // packet is taken off the buffer nothing awaits before it is returned.
            let packet = match &mut self.source {
                Source::Stream(source) => source.read().await?,
                Source::Ws(source) => source.read(self.remote_addr).await?,
            };
            let Some(packet) = packet else {
                return Ok(None);
            };
            match &self.limiter {
                Some(limiter) if !limiter.admit() => {
                    self.dropped += 1;
                    if packet.kind == PacketType::Data {
                        self.dropped_data += 1;
                    }
                    debug!(
                        remote = %self.remote_addr,
                        kind = ?packet.kind,
                        dropped = self.dropped,
                        "packet dropped by rate limiting"
                    );
                }
                _ => return Ok(Some(packet)),
            }
        }
    }

    /// Packets this connection dropped because of the rate limit.
    pub fn dropped_by_rate_limit(&self) -> u64 {
        self.dropped
    }

    /// The Data packets among [`dropped_by_rate_limit`](Self::dropped_by_rate_limit): a
    /// resumable session counts them as read (`docs/resume.md`).
    pub fn dropped_data_by_rate_limit(&self) -> u64 {
        self.dropped_data
    }
}

impl fmt::Debug for PacketReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Stream(s) => format!("stream ({} bytes buffered)", s.buf.len()),
            Source::Ws(_) => "websocket".to_owned(),
        };
        f.debug_struct("PacketReader")
            .field("source", &source)
            .field("limiter", &self.limiter)
            .field("dropped", &self.dropped)
            .field("remote_addr", &self.remote_addr)
            .finish()
    }
}

struct StreamSource {
    io: StreamIo,
    buf: BytesMut,
    decoder: PacketDecoder,
    /// Room for the next read: doubles while reads fill it, halves when they come in well
    /// under it, between `MIN_READ` and `MAX_READ`.
    read_size: usize,
    /// Whether the client looks idle: nothing received yet, or the last packet was a
    /// heartbeat or part of the handshake. Only then does an empty buffer go back to the
    /// allocator before waiting; a client sending data keeps its buffer, so the request
    /// path never allocates one per read.
    idle: bool,
}

impl StreamSource {
    /// Decoding before reading keeps this cancel safe: `readable` and `read_buf` either
    /// complete, or are dropped having read nothing.
    async fn read(&mut self) -> Result<Option<Packet>, ConnError> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.buf)? {
                self.idle = packet.kind != PacketType::Data;
                return Ok(Some(packet));
            }
            let (room, read) = match &mut self.io {
                StreamIo::Tcp(tcp) if self.idle && self.buf.is_empty() => {
                    idle_read(tcp, &mut self.buf, self.read_size).await?
                }
                io => {
                    // Only grow a full buffer: `decode` already reserved the rest of a
                    // partial packet, and topping that up would copy the packet into a
                    // new allocation.
                    if self.buf.len() == self.buf.capacity() {
                        self.buf.reserve(self.read_size);
                    }
                    let room = self.buf.capacity() - self.buf.len();
                    let read = match io {
                        StreamIo::Tcp(tcp) => tcp.read_buf(&mut self.buf).await?,
                        StreamIo::Other(io) => io.read_buf(&mut self.buf).await?,
                    };
                    (room, read)
                }
            };
            if read == 0 {
                return match self.buf.len() {
                    0 => Ok(None),
                    buffered => Err(ConnError::UnexpectedEof { buffered }),
                };
            }
            self.read_size = if read == room {
                (self.read_size * 2).min(MAX_READ)
            } else if read < self.read_size / 4 {
                (self.read_size / 2).max(MIN_READ)
            } else {
                self.read_size
            };
        }
    }
}

/// Reads into the empty `buf` of an idle client without holding memory while it waits:
/// the buffer goes back to the allocator, the socket's readiness is awaited, and only
/// then is `read_size` of room reserved for a read that does not wait. Idle connections
/// are most of a server's connections; bodies split off the buffer keep their own
/// reference to its allocation. Returns the room and the bytes read (0: EOF).
///
/// Cancel safe: the only await is `readable`, and nothing is read before it completes.
async fn idle_read(
    tcp: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    read_size: usize,
) -> Result<(usize, usize), ConnError> {
    loop {
        if buf.capacity() > 0 {
            *buf = BytesMut::new();
        }
        tcp.readable().await?;
        buf.reserve(read_size);
        let room = buf.capacity();
        match tcp.try_read_buf(buf) {
            Ok(read) => return Ok((room, read)),
            // Readiness can be stale (tokio says so); it is cleared now, so the next
            // `readable` waits for real.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

struct WsSource {
    stream: SplitStream<WsStream>,
    max_body_len: usize,
}

impl WsSource {
    /// `SplitStream::next` is cancel safe: tungstenite keeps partial frames buffered.
    async fn read(&mut self, remote_addr: SocketAddr) -> Result<Option<Packet>, ConnError> {
        loop {
            let Some(message) = self.stream.next().await else {
                return Ok(None);
            };
            let frame = match message {
                Ok(Message::Binary(frame)) => frame,
                // spec §4.2: Go reads text messages like binary ones. `TextAsBinary`
                // already relabels text frames (so non-UTF-8 ones get through); this
                // arm only keeps the reader correct without it.
                Ok(Message::Text(text)) => Bytes::from(text),
                Ok(Message::Close(frame)) => {
                    debug!(remote = %remote_addr, ?frame, "websocket closed by peer");
                    // tungstenite queued the close reply; one more poll writes it and
                    // ends the stream, without waiting if the socket is busy.
                    let _ = self.stream.next().now_or_never();
                    return Ok(None);
                }
                // Pings are answered by tungstenite on the next poll, which is the next
                // iteration.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    // Frames are whole, so nothing was cut: an abrupt close between
                    // messages, as a killed mobile app does, is not worth an error.
                    debug!(remote = %remote_addr, "websocket closed without a close frame");
                    return Ok(None);
                }
                Err(error) => return Err(error.into()),
            };
            return Ok(Some(Packet::from_frame(frame, self.max_body_len)?));
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    impl PacketReader {
        /// Bytes allocated for the read buffer of a stream reader.
        fn buffer_capacity(&self) -> usize {
            match &self.source {
                Source::Stream(s) => s.buf.capacity(),
                Source::Ws(_) => 0,
            }
        }
    }

    #[tokio::test]
    async fn an_idle_tcp_reader_holds_no_buffer_and_a_busy_one_keeps_its_own() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let (read, _write) = server.into_split();
        let mut reader =
            PacketReader::stream(StreamIo::Tcp(read), BytesMut::new(), 1 << 16, None, peer);
        // Waiting for the first packet holds nothing.
        assert!(reader.read().now_or_never().is_none());
        assert_eq!(reader.buffer_capacity(), 0);

        client.write_all(&[0x03, 0, 0, 0]).await.unwrap();
        let packet = reader.read().await.unwrap().unwrap();
        assert_eq!(packet.kind, PacketType::Heartbeat);
        assert!(reader.read().now_or_never().is_none());
        assert_eq!(reader.buffer_capacity(), 0, "a heartbeat leaves the client idle");

        client.write_all(&[0x04, 0, 0, 2, 0x00, 0x01]).await.unwrap();
        let packet = reader.read().await.unwrap().unwrap();
        assert_eq!((packet.kind, &packet.body[..]), (PacketType::Data, &[0x00, 0x01][..]));
        assert!(reader.read().now_or_never().is_none());
        // What is left of it after the 6 bytes read.
        assert_eq!(
            reader.buffer_capacity(),
            MIN_READ - 6,
            "a client sending data keeps its buffer"
        );

        // Bytes that arrive in pieces are still put together after an idle wait.
        client.write_all(&[0x03, 0]).await.unwrap();
        tokio::task::yield_now().await;
        client.write_all(&[0, 0]).await.unwrap();
        let packet = reader.read().await.unwrap().unwrap();
        assert_eq!(packet.kind, PacketType::Heartbeat);
        drop(client);
        assert!(reader.read().await.unwrap().is_none());
    }
}
