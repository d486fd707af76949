//! [`PacketWriter`]: the write half of a connection, sending encoded packets.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use pitaya_codec::packet::HEADER_LEN;
use pitaya_codec::{PacketError, PacketType};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use crate::ConnError;
use crate::ws::WsStream;

/// The write half of a TCP stream or a TLS stream.
pub(crate) type BoxedWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Bound on [`PacketWriter::close`], so a peer that stopped reading cannot hold the task.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes encoded packets to one client connection.
///
/// Usable from a different task than the [`PacketReader`](crate::PacketReader) of the
/// same connection, concurrently.
pub struct PacketWriter {
    sink: Sink,
    remote_addr: SocketAddr,
}

enum Sink {
    Stream(BoxedWrite),
    Ws(SplitSink<WsStream, Message>),
}

impl PacketWriter {
    pub(crate) fn stream(io: BoxedWrite, remote_addr: SocketAddr) -> Self {
        Self { sink: Sink::Stream(io), remote_addr }
    }

    pub(crate) fn websocket(sink: SplitSink<WsStream, Message>, remote_addr: SocketAddr) -> Self {
        Self { sink: Sink::Ws(sink), remote_addr }
    }

    /// Sends `packets`: one or more encoded packets back to back, each starting with its
    /// 4-byte header.
    ///
    /// On TCP and TLS the whole buffer goes out in one write (this is how many small
    /// messages share one syscall) and its framing is not checked. On WebSocket each
    /// packet becomes one binary message (spec §4.2), split without copying, then the
    /// socket is flushed once.
    ///
    /// # Cancel safety
    /// Not cancel safe: a dropped future may have sent part of the buffer. Close the
    /// connection after a cancelled write.
    ///
    /// # Errors
    /// [`ConnError::InvalidOutgoing`] (WebSocket only) when the buffer is not a sequence
    /// of whole packets; nothing is sent then. [`ConnError::Io`] or
    /// [`ConnError::WebSocket`] when the transport fails; the connection is then unusable.
    pub async fn write(&mut self, packets: Bytes) -> Result<(), ConnError> {
        if packets.is_empty() {
            return Ok(());
        }
        match &mut self.sink {
            Sink::Stream(io) => {
                io.write_all(&packets).await?;
                // TLS holds records until flushed; plain TCP makes this a no-op.
                io.flush().await?;
            }
            Sink::Ws(sink) => {
                // Check the whole buffer first so that a bad one sends nothing.
                let mut rest: &[u8] = &packets;
                while !rest.is_empty() {
                    let len = first_packet_len(rest).map_err(ConnError::InvalidOutgoing)?;
                    rest = rest.get(len..).unwrap_or_default();
                }
                let mut rest = packets;
                while !rest.is_empty() {
                    let len = first_packet_len(&rest).map_err(ConnError::InvalidOutgoing)?;
                    sink.feed(Message::Binary(rest.split_to(len))).await?;
                }
                sink.flush().await?;
            }
        }
        Ok(())
    }

    /// Flushes and closes the write side: TCP shutdown (after TLS close_notify), or a
    /// WebSocket close frame. Best effort: failures are logged at debug level, and the
    /// call gives up after 5 seconds. The read half keeps working until the peer closes.
    pub async fn close(&mut self) {
        let result = match &mut self.sink {
            Sink::Stream(io) => tokio::time::timeout(CLOSE_TIMEOUT, io.shutdown())
                .await
                .map(|r| r.map_err(ConnError::from)),
            Sink::Ws(sink) => tokio::time::timeout(CLOSE_TIMEOUT, sink.close())
                .await
                .map(|r| r.map_err(ConnError::from)),
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => debug!(remote = %self.remote_addr, %error, "closing failed"),
            Err(_) => debug!(remote = %self.remote_addr, "closing timed out"),
        }
    }
}

impl fmt::Debug for PacketWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sink = match self.sink {
            Sink::Stream(_) => "stream",
            Sink::Ws(_) => "websocket",
        };
        f.debug_struct("PacketWriter")
            .field("sink", &sink)
            .field("remote_addr", &self.remote_addr)
            .finish()
    }
}

/// Length, header included, of the packet at the start of `buf`.
fn first_packet_len(buf: &[u8]) -> Result<usize, PacketError> {
    let &[kind, a, b, c, ..] = buf else {
        return Err(PacketError::FrameTooShort(buf.len()));
    };
    PacketType::try_from(kind)?;
    let body = u32::from_be_bytes([0, a, b, c]) as usize;
    // The pattern above matched at least HEADER_LEN bytes.
    let actual = buf.len() - HEADER_LEN;
    if body > actual {
        return Err(PacketError::LengthMismatch { declared: body, actual });
    }
    Ok(HEADER_LEN + body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_lengths_come_from_headers() {
        assert_eq!(first_packet_len(&[3, 0, 0, 0, 4, 0]), Ok(4));
        assert_eq!(first_packet_len(&[4, 0, 0, 2, 9, 9, 3]), Ok(6));
        assert_eq!(first_packet_len(&[4, 0, 0]), Err(PacketError::FrameTooShort(3)));
        assert_eq!(first_packet_len(&[9, 0, 0, 0]), Err(PacketError::UnknownType(9)));
        assert_eq!(
            first_packet_len(&[4, 0, 0, 3, 1]),
            Err(PacketError::LengthMismatch { declared: 3, actual: 1 })
        );
    }
}
