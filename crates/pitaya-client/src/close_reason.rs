//! [`CloseReason`]: why a connection ended.

use std::fmt;

/// Why a connection ended, from [`Client::close_reason`](crate::Client::close_reason).
///
/// Pending and later calls all fail with [`ClientError::Closed`](crate::ClientError::Closed)
/// whatever the reason; this value is for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// [`Client::close`](crate::Client::close) was called, or every `Client` clone was dropped.
    Local,
    /// The server sent a Kick packet (spec §1.7).
    Kicked,
    /// The server closed the connection (TCP EOF, WebSocket close).
    ServerClosed,
    /// Nothing arrived for three heartbeat intervals, although the server promised a
    /// heartbeat (Pitaya sends one every interval, spec §1.6).
    HeartbeatTimeout,
    /// The server sent bytes that break the protocol; the text says how.
    Protocol(String),
    /// Reading or writing the socket failed.
    Io(String),
    /// With [`ClientOptions::resume`](crate::ClientOptions::resume): the connection
    /// dropped and the session could not be continued (the ttl passed without a
    /// successful reconnect, the server refused the handshake, or a packet it needed was
    /// no longer kept); the text says which, and how the connection had dropped.
    ResumeFailed(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("closed locally"),
            Self::Kicked => f.write_str("kicked by the server"),
            Self::ServerClosed => f.write_str("closed by the server"),
            Self::HeartbeatTimeout => f.write_str("no heartbeat from the server"),
            Self::Protocol(why) => write!(f, "protocol violation: {why}"),
            Self::Io(why) => write!(f, "i/o error: {why}"),
            Self::ResumeFailed(why) => write!(f, "resume failed: {why}"),
        }
    }
}
