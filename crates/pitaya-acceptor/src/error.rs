//! [`AcceptError`] (connection setup failed), [`ConnError`] (an established connection
//! failed) and [`ProxyHeaderError`] (a PROXY header was refused).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use pitaya_codec::PacketError;
use tokio_tungstenite::tungstenite;

/// Why a connection could not be set up, or a TLS configuration could not be loaded.
///
/// Every handshake variant means the socket is dropped with nothing sent at the packet
/// level (spec §4.3: a bad PROXY header closes the connection).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// PROXY header, TLS handshake and WebSocket upgrade together took longer than
    /// [`AcceptorOptions::handshake_timeout`](crate::AcceptorOptions::handshake_timeout).
    #[error("handshake did not finish within {0:?}")]
    HandshakeTimeout(Duration),
    /// The PROXY protocol is on and the connection did not start with a usable header.
    #[error("bad proxy protocol header: {0}")]
    ProxyHeader(#[from] ProxyHeaderError),
    /// The TLS handshake failed (bad client hello, no shared cipher, peer gone...).
    #[error("tls handshake failed: {0}")]
    Tls(#[source] io::Error),
    /// The HTTP upgrade to WebSocket failed. Boxed: the tungstenite error embeds an HTTP
    /// response and would make every `Result` large.
    #[error("websocket upgrade failed: {0}")]
    WebSocket(#[source] Box<tungstenite::Error>),
    /// The socket failed while reading the PROXY header.
    #[error("i/o error during connection setup: {0}")]
    Io(#[from] io::Error),
    /// A certificate or key file could not be read or holds bad PEM.
    #[error("cannot load {}: {source}", path.display())]
    Pem {
        /// The file that failed.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {}", .0.display())]
    NoCertificate(PathBuf),
    /// rustls refused the certificate chain or key (mismatch, unsupported algorithm...).
    #[error("invalid tls configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
}

/// Why a PROXY protocol header was refused (spec §4.3).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The bytes are neither a v1 nor a v2 header (including a client that sends no
    /// header at all).
    #[error("malformed header: {0}")]
    Malformed(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A LOCAL (v2) or UNKNOWN (v1) header, or a non-IP address family: there is no
    /// client address to report, and Go closes such connections.
    #[error("header carries no source address")]
    NoSourceAddress,
    /// The peer closed the connection before the header was complete.
    #[error("connection closed inside the header")]
    UnexpectedEof,
}

/// Why reading or writing packets on an established connection failed.
///
/// Every variant means the connection must be closed (spec §1.8); a clean close by the
/// peer is not an error but `Ok(None)` from [`PacketReader::read`](crate::PacketReader::read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// The peer sent bytes that are not a packet: unknown type, body over the limit, or a
    /// WebSocket message that is not exactly one packet.
    #[error("invalid packet: {0}")]
    Packet(#[from] PacketError),
    /// The stream ended inside a packet (spec §1.8: EOF in the middle of a packet closes).
    #[error("connection closed in the middle of a packet ({buffered} bytes buffered)")]
    UnexpectedEof {
        /// Bytes of the incomplete packet received before the end.
        buffered: usize,
    },
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The WebSocket layer failed: protocol violation or I/O below it (text messages are
    /// not UTF-8 checked, spec §4.2). Boxed to keep `Result`s small.
    #[error("websocket error: {0}")]
    WebSocket(#[source] Box<tungstenite::Error>),
    /// The buffer given to [`PacketWriter::write`](crate::PacketWriter::write) is not a
    /// sequence of whole encoded packets; nothing was sent. A bug in the caller.
    #[error("outgoing buffer is not a sequence of whole packets: {0}")]
    InvalidOutgoing(#[source] PacketError),
}

impl ConnError {
    /// Whether the connection was lost (reset, end of stream inside a packet, any other
    /// I/O failure, a WebSocket closed without its closing handshake) rather than ended
    /// for bad input: a lost connection's session may wait for its client to resume it
    /// (`docs/resume.md`), a misbehaving one's may not.
    pub fn is_lost_connection(&self) -> bool {
        match self {
            Self::Io(_) | Self::UnexpectedEof { .. } => true,
            Self::WebSocket(e) => matches!(
                **e,
                tungstenite::Error::ConnectionClosed
                    | tungstenite::Error::AlreadyClosed
                    | tungstenite::Error::Io(_)
                    | tungstenite::Error::Protocol(
                        tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
                    )
            ),
            Self::Packet(_) | Self::InvalidOutgoing(_) => false,
        }
    }
}

impl From<tungstenite::Error> for ConnError {
    fn from(error: tungstenite::Error) -> Self {
        match error {
            // Report oversized messages like an oversized TCP packet: one reaction for both.
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong {
                size,
                max_size,
            }) => Self::Packet(PacketError::BodyTooLarge {
                len: size.saturating_sub(pitaya_codec::packet::HEADER_LEN),
                max: max_size.saturating_sub(pitaya_codec::packet::HEADER_LEN),
            }),
            tungstenite::Error::Io(io) => Self::Io(io),
            other => Self::WebSocket(Box::new(other)),
        }
    }
}
