//! Dialing (TCP, TLS, WebSocket) and the packet-level halves of a connection.
//!
//! [`PacketSource`] yields whole packets and [`PacketSink`] writes them, whatever the
//! transport: a TCP or TLS byte stream framed by [`PacketDecoder`], or one packet per
//! WebSocket frame (spec §4.2).

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use pitaya_codec::packet::HEADER_LEN;
use pitaya_codec::{Packet, PacketDecoder, PacketError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage, protocol::WebSocketConfig};

use crate::{ClientError, ClientOptions, Endpoint, TlsOptions, Transport};

/// Read size when the buffer has no room left; most Pitaya packets are far smaller.
const READ_CHUNK: usize = 8 * 1024;
/// Queued bytes after which a stream sink writes without waiting for a flush.
const WRITE_HIGH_WATER: usize = 64 * 1024;
/// tungstenite allocates its read buffer eagerly: keep it small, a load generator holds
/// thousands of connections (gorilla on the server side uses 4 KiB).
const WS_READ_BUFFER: usize = 16 * 1024;

/// A byte stream that can carry packets or a WebSocket.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

type WsStream = WebSocketStream<Box<dyn Io>>;

/// Opens the transport `endpoint` asks for, with TLS when the address or `opts` want it.
///
/// # Errors
/// [`ClientError::Connect`], [`ClientError::TlsConfig`], [`ClientError::Tls`] or
/// [`ClientError::WebSocket`]. No timeout here: the caller bounds the whole connect.
pub(crate) async fn dial(
    endpoint: &Endpoint,
    opts: &ClientOptions,
) -> Result<(PacketSource, PacketSink), ClientError> {
    let tls = match (&opts.tls, endpoint.tls) {
        (Some(tls), _) => Some(tls),
        (None, true) => {
            return Err(ClientError::TlsConfig(format!(
                "{endpoint} needs ClientOptions::tls (trusted roots or a rustls config)"
            )));
        }
        (None, false) => None,
    };
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(ClientError::Connect)?;
    // Requests are small and latency-bound; the writer task batches on its own.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let decoder = PacketDecoder::with_max_body_len(opts.max_body_len);
    match (&endpoint.transport, tls) {
        (Transport::Tcp, None) => {
            let (read, write) = tcp.into_split();
            Ok((PacketSource::stream(Box::new(read), decoder), PacketSink::stream(Box::new(write))))
        }
        (Transport::Tcp, Some(tls)) => {
            let (read, write) = tokio::io::split(tls_connect(tcp, &endpoint.host, tls).await?);
            Ok((PacketSource::stream(Box::new(read), decoder), PacketSink::stream(Box::new(write))))
        }
        (Transport::Ws { path }, tls) => {
            let io: Box<dyn Io> = match tls {
                Some(tls) => Box::new(tls_connect(tcp, &endpoint.host, tls).await?),
                None => Box::new(tcp),
            };
            let url = endpoint.ws_url(path, tls.is_some());
            let frame_limit = decoder.max_body_len() + HEADER_LEN;
            let config = WebSocketConfig::default()
                .read_buffer_size(WS_READ_BUFFER)
                .max_message_size(Some(frame_limit))
                .max_frame_size(Some(frame_limit));
            let (ws, _response) =
                tokio_tungstenite::client_async_with_config(url, io, Some(config))
                    .await
                    .map_err(|e| ClientError::WebSocket(Box::new(e)))?;
            let (sink, stream) = ws.split();
            let source = PacketSource::Ws { stream, max_body_len: decoder.max_body_len() };
            Ok((source, PacketSink::Ws(sink)))
        }
    }
}

async fn tls_connect(
    tcp: TcpStream,
    host: &str,
    tls: &TlsOptions,
) -> Result<TlsStream<TcpStream>, ClientError> {
    let name = tls.name_for(host)?;
    TlsConnector::from(tls.config.clone()).connect(name, tcp).await.map_err(ClientError::Tls)
}

/// The read half: whole packets, in order.
pub(crate) enum PacketSource {
    /// TCP or TLS: packets framed by their headers.
    Stream { io: Box<dyn AsyncRead + Send + Unpin>, buf: BytesMut, decoder: PacketDecoder },
    /// WebSocket: one packet per frame.
    Ws { stream: SplitStream<WsStream>, max_body_len: usize },
}

impl PacketSource {
    fn stream(io: Box<dyn AsyncRead + Send + Unpin>, decoder: PacketDecoder) -> Self {
        Self::Stream { io, buf: BytesMut::with_capacity(READ_CHUNK), decoder }
    }

    /// The next packet, or `None` once the server closed the connection cleanly.
    ///
    /// Cancel safe: a packet is either returned or stays buffered for the next call.
    ///
    /// # Errors
    /// Any [`TransportError`]; the connection cannot be used afterwards.
    pub(crate) async fn next(&mut self) -> Result<Option<Packet>, TransportError> {
        match self {
            Self::Stream { io, buf, decoder } => loop {
                if let Some(packet) = decoder.decode(buf)? {
                    return Ok(Some(packet));
                }
                if buf.capacity() - buf.len() < READ_CHUNK / 8 {
                    buf.reserve(READ_CHUNK);
                }
                if io.read_buf(buf).await? == 0 {
                    return match buf.len() {
                        0 => Ok(None),
                        partial => Err(TransportError::Truncated(partial)),
                    };
                }
            },
            Self::Ws { stream, max_body_len } => loop {
                let frame = match stream.next().await {
                    None | Some(Ok(WsMessage::Close(_))) => return Ok(None),
                    Some(Err(
                        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                    )) => return Ok(None),
                    Some(Err(e)) => return Err(TransportError::Ws(e)),
                    Some(Ok(WsMessage::Binary(frame))) => frame,
                    // Gorilla accepts text frames too (spec §4.2); so do we.
                    Some(Ok(WsMessage::Text(text))) => Bytes::from(text),
                    // tungstenite answers pings by itself.
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {
                        continue;
                    }
                };
                return Ok(Some(Packet::from_frame(frame, *max_body_len)?));
            },
        }
    }
}

/// The write half: packets are queued with [`feed`](Self::feed) and sent by
/// [`flush`](Self::flush), so a burst costs one syscall.
pub(crate) enum PacketSink {
    /// TCP or TLS: packets are concatenated.
    Stream { io: Box<dyn AsyncWrite + Send + Unpin>, buf: BytesMut },
    /// WebSocket: one binary frame per packet.
    Ws(SplitSink<WsStream, WsMessage>),
}

impl PacketSink {
    fn stream(io: Box<dyn AsyncWrite + Send + Unpin>) -> Self {
        Self::Stream { io, buf: BytesMut::new() }
    }

    /// Queues one encoded packet; it may be written right away when buffers are full.
    ///
    /// Not cancel safe: a cancelled call may leave part of a packet written. Only cancel
    /// when the connection is being closed anyway.
    pub(crate) async fn feed(&mut self, packet: Bytes) -> Result<(), TransportError> {
        match self {
            Self::Stream { io, buf } => {
                // A big packet alone goes out as is, without a copy into the buffer.
                if buf.is_empty() && packet.len() >= WRITE_HIGH_WATER {
                    return Ok(io.write_all(&packet).await?);
                }
                buf.extend_from_slice(&packet);
                if buf.len() >= WRITE_HIGH_WATER {
                    self.flush().await?;
                }
                Ok(())
            }
            Self::Ws(sink) => Ok(sink.feed(WsMessage::Binary(packet)).await?),
        }
    }

    /// Writes everything queued. Not cancel safe, as [`feed`](Self::feed).
    pub(crate) async fn flush(&mut self) -> Result<(), TransportError> {
        match self {
            Self::Stream { io, buf } => {
                io.write_all(buf).await?;
                buf.clear();
                Ok(io.flush().await?)
            }
            Self::Ws(sink) => Ok(sink.flush().await?),
        }
    }

    /// [`feed`](Self::feed) then [`flush`](Self::flush).
    pub(crate) async fn send(&mut self, packet: Bytes) -> Result<(), TransportError> {
        self.feed(packet).await?;
        self.flush().await
    }

    /// Ends the connection politely: TCP FIN, TLS close_notify, WebSocket close frame.
    /// Errors are irrelevant at this point and ignored.
    pub(crate) async fn close(&mut self) {
        let result = match self {
            Self::Stream { io, .. } => io.shutdown().await.map_err(TransportError::from),
            Self::Ws(sink) => sink.close().await.map_err(TransportError::from),
        };
        if let Err(e) = result {
            tracing::trace!(error = %e, "closing the connection");
        }
    }
}

/// Why the connection's bytes could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    /// Socket or TLS error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Bytes that do not frame into packets (bad type, over the size limit, bad WS frame).
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// WebSocket protocol error.
    #[error(transparent)]
    Ws(#[from] tungstenite::Error),
    /// The server closed the stream in the middle of a packet.
    #[error("connection closed in the middle of a packet ({0} bytes buffered)")]
    Truncated(usize),
}

impl TransportError {
    /// Whether the server sent bytes that break the protocol, rather than the socket
    /// failing.
    pub(crate) fn is_protocol(&self) -> bool {
        matches!(self, Self::Packet(_) | Self::Truncated(_))
            || matches!(self, Self::Ws(tungstenite::Error::Protocol(_)))
    }

    /// Whether the stream just stopped, in the middle of a packet or of a WebSocket
    /// conversation: what a broken network looks like, although [`is_protocol`] holds.
    ///
    /// [`is_protocol`]: Self::is_protocol
    pub(crate) fn is_broken_stream(&self) -> bool {
        matches!(
            self,
            Self::Truncated(_)
                | Self::Ws(tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                ))
        )
    }
}
