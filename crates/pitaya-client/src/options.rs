//! [`ClientOptions`]: everything a connection can be tuned with.

use std::time::Duration;

use pitaya_codec::{ClientInfo, HandshakeRequest, MAX_BODY_LEN};

use crate::{ResumeOptions, TlsOptions};

/// Settings for [`Client::connect`](crate::Client::connect).
///
/// Build with struct-update syntax:
/// ```
/// # use std::time::Duration;
/// let opts = pitaya_client::ClientOptions {
///     request_timeout: Duration::from_secs(1),
///     ..Default::default()
/// };
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Sent as the handshake body. Default: `sys.platform = "rust"`, `sys.libVersion` =
    /// this crate's version, no `user` data.
    pub handshake: HandshakeRequest,
    /// How long [`Client::request`](crate::Client::request) waits for its response, and
    /// how long a request or notify may wait for room in the send queue. Default 5 s.
    pub request_timeout: Duration,
    /// Bound on TCP connect + TLS + WebSocket upgrade + handshake response. Default 5 s.
    pub connect_timeout: Duration,
    /// TLS settings. Required for `tls://` and `wss://` addresses; when set, plain
    /// `host:port` and `ws://` addresses use TLS too.
    pub tls: Option<TlsOptions>,
    /// Deflate outgoing request and notify data when that makes it shorter (flag 0x10).
    /// Pitaya servers inflate zlib data (spec §2.4). Default false.
    pub compress_requests: bool,
    /// Use the handshake's `sys.dict` to send routes as 2-byte codes and to read coded
    /// routes in pushes, as the pomelo JS client does. Default true. With false (as
    /// libpitaya), a push whose route the server compresses cannot be decoded and ends the
    /// connection.
    pub use_dict: bool,
    /// Capacity of the push channel (at least 1). Default 1024. Pushes that arrive while
    /// it is full are dropped and counted, see [`Pushes`](crate::Pushes).
    pub push_buffer: usize,
    /// Largest packet body accepted from the server, and largest inflated message data.
    /// Default and maximum 16 MiB − 1 (the 24-bit length field).
    pub max_body_len: usize,
    /// Session resume (`docs/resume.md`), off by default: without it the client sends and
    /// does exactly what a plain Pitaya client does. With it the handshake carries
    /// `sys.resume` (overriding [`handshake`](Self::handshake)'s), and a session the
    /// server grants a token to survives dropped connections: see [`ResumeOptions`].
    pub resume: Option<ResumeOptions>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            handshake: HandshakeRequest {
                sys: ClientInfo {
                    platform: "rust".to_owned(),
                    lib_version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..ClientInfo::default()
                },
                user: None,
            },
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            tls: None,
            compress_requests: false,
            use_dict: true,
            push_buffer: 1024,
            max_body_len: MAX_BODY_LEN,
            resume: None,
        }
    }
}
