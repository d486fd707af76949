//! WebSocket connection setup (spec §4.2): optional TLS, then the HTTP upgrade.

use std::net::SocketAddr;

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::acceptor::Setup;
use crate::rate_limit::PacketRateLimiter;
use crate::ws_text::TextAsBinary;
use crate::{AcceptError, Connection, PacketReader, PacketWriter};

/// A plain or TLS socket, so that WS and WSS share one WebSocket type.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// The WebSocket type behind both [`PacketReader`] and [`PacketWriter`].
pub(crate) type WsStream = WebSocketStream<Box<dyn Io>>;

/// Go's gorilla read buffer size; tungstenite allocates this per connection up front.
const READ_BUFFER_SIZE: usize = 4096;

/// Upgrades `stream` (after TLS when configured). The PROXY protocol does not apply to
/// WebSocket, as in Go (spec §4.3), so the remote address is the socket peer.
pub(crate) async fn establish(
    stream: TcpStream,
    peer_addr: SocketAddr,
    setup: &Setup,
) -> Result<Connection, AcceptError> {
    let io: Box<dyn Io> = match &setup.tls {
        None => Box::new(TextAsBinary::new(stream)),
        Some(tls) => {
            Box::new(TextAsBinary::new(tls.accept(stream).await.map_err(AcceptError::Tls)?))
        }
    };
    let max_body_len = setup.opts.effective_max_body_len();
    // No callback: any path is upgraded, every origin is accepted, no subprotocol is
    // chosen, and without the `deflate` feature no compression is negotiated (spec §4.2).
    let ws = tokio_tungstenite::accept_async_with_config(io, Some(config(max_body_len)))
        .await
        .map_err(|e| AcceptError::WebSocket(Box::new(e)))?;
    let (sink, stream) = ws.split();
    let limiter = setup.opts.rate_limit.and_then(PacketRateLimiter::new);
    Ok(Connection {
        reader: PacketReader::websocket(stream, max_body_len, limiter, peer_addr),
        writer: PacketWriter::websocket(sink, peer_addr),
        remote_addr: peer_addr,
        transport: setup.transport(),
    })
}

/// A message must hold exactly one packet, so no frame or message may exceed the largest
/// packet; tungstenite then refuses a longer frame from its header, before buffering it.
fn config(max_body_len: usize) -> WebSocketConfig {
    let max_message = max_body_len.saturating_add(pitaya_codec::packet::HEADER_LEN);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .max_frame_size(Some(max_message))
        .max_message_size(Some(max_message))
}
