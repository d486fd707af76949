//! [`ClientError`]: why connecting, a request or a notify failed.

use std::io;

use pitaya_codec::MessageError;
use pitaya_serialize::ErrorPayload;

/// Why a client operation failed.
///
/// Connection-level variants ([`Connect`](Self::Connect) through
/// [`HandshakeRejected`](Self::HandshakeRejected)) come from [`Client::connect`]; the others
/// from requests and notifies. Once a connection has ended, every call fails with
/// [`Closed`](Self::Closed) and [`Client::close_reason`] tells why it ended.
///
/// [`Client::connect`]: crate::Client::connect
/// [`Client::close_reason`]: crate::Client::close_reason
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The address string could not be parsed.
    #[error("invalid address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The TCP connection could not be established.
    #[error("connect failed: {0}")]
    Connect(#[source] io::Error),
    /// The TLS settings are unusable: no [`TlsOptions`](crate::TlsOptions) for a `tls://` or
    /// `wss://` address, a bad root certificate or a bad server name.
    #[error("tls configuration: {0}")]
    TlsConfig(String),
    /// The TLS handshake failed (for instance the server certificate is not trusted).
    #[error("tls handshake failed: {0}")]
    Tls(#[source] io::Error),
    /// The WebSocket upgrade failed. Boxed: the tungstenite error embeds an HTTP response.
    #[error("websocket upgrade failed: {0}")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The Pitaya handshake went wrong before a response code was read: the server closed,
    /// kicked, sent something else, or sent a response that does not parse.
    #[error("pitaya handshake failed: {0}")]
    Handshake(String),
    /// The server answered the handshake with a code other than 200 (Pitaya sends 400 for
    /// bad handshake data or a failed validator, then closes).
    #[error("pitaya handshake rejected with code {code}")]
    HandshakeRejected {
        /// The code from the handshake response.
        code: u16,
    },
    /// No answer within the request timeout, or the connection was not established within
    /// the connect timeout. Client-side only, like Go's `PIT-504`.
    #[error("timed out")]
    Timeout,
    /// The connection has ended (closed locally, closed by the server, kicked, or broken);
    /// the request, if any, may or may not have reached the server.
    #[error("connection closed")]
    Closed,
    /// With [`ClientOptions::resume`](crate::ClientOptions::resume): the connection
    /// dropped while the request was in flight (or queued) and the server started a fresh
    /// session instead of resuming the old one, which took the request with it. The
    /// application must log in again (see [`ResumeEvent::FreshSession`](crate::ResumeEvent)).
    #[error("session lost: the server started a fresh session after a reconnect")]
    SessionLost,
    /// The server answered with an error response (flag 0x20, spec §2.5).
    #[error("server error {}: {}", .0.code, .0.msg)]
    Server(ErrorPayload),
    /// The server broke the protocol in a way that concerns this call only, e.g. an error
    /// response whose payload does not decode with the announced serializer.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The request could not be encoded: a route over 255 bytes or a body over the packet
    /// limit. Nothing was sent.
    #[error("cannot encode message: {0}")]
    Encode(#[source] MessageError),
}

impl ClientError {
    /// The server's error code (`PIT-...`) when this is a [`Server`](Self::Server) error.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            Self::Server(payload) => Some(&payload.code),
            _ => None,
        }
    }
}
