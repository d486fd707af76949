//! Acceptor settings ([`AcceptorOptions`], [`RateLimit`]) and the [`Transport`] a connection uses.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Options shared by every acceptor (spec §4, §13.2).
#[derive(Clone, Debug)]
pub struct AcceptorOptions {
    /// Server TLS configuration; `Some` turns TCP into TLS and WS into WSS.
    /// Build one with [`load_tls_config`](crate::load_tls_config).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// `pitaya.acceptor.proxyprotocol`: every TCP connection starts with a PROXY v1 or v2
    /// header, read before TLS (spec §4.3). Ignored by WebSocket acceptors, as in Go.
    pub proxy_protocol: bool,
    /// `pitaya.conn.ratelimiting.*`: packets over the limit are dropped by
    /// [`PacketReader::read`](crate::PacketReader::read). `None` turns limiting off.
    pub rate_limit: Option<RateLimit>,
    /// Largest packet body accepted, capped at [`pitaya_codec::MAX_BODY_LEN`]. A longer
    /// packet is refused from its header, before its body is buffered.
    pub max_body_len: usize,
    /// Bound on everything [`Incoming::establish`](crate::Incoming::establish) does: PROXY
    /// header, TLS handshake and WebSocket upgrade together.
    pub handshake_timeout: Duration,
}

impl Default for AcceptorOptions {
    /// No TLS, no PROXY protocol, no rate limit, [`pitaya_codec::MAX_BODY_LEN`], 10 s.
    fn default() -> Self {
        Self {
            tls: None,
            proxy_protocol: false,
            rate_limit: None,
            max_body_len: pitaya_codec::MAX_BODY_LEN,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl AcceptorOptions {
    /// The body limit actually enforced: the 24-bit length field caps any configuration.
    pub(crate) fn effective_max_body_len(&self) -> usize {
        self.max_body_len.min(pitaya_codec::MAX_BODY_LEN)
    }
}

/// Per-connection packet rate limit: at most `limit` packets per `interval`, with bursts
/// of up to `limit` packets (spec §4.4).
///
/// A `limit` of zero, or an interval too short to split into `limit` steps, disables
/// limiting: a quota that admits nothing would make every connection useless.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// `pitaya.conn.ratelimiting.limit`: packets allowed per interval.
    pub limit: u32,
    /// `pitaya.conn.ratelimiting.interval`: the window the limit applies to.
    pub interval: Duration,
}

impl Default for RateLimit {
    /// Pitaya's defaults: 20 packets per second.
    fn default() -> Self {
        Self { limit: 20, interval: Duration::from_secs(1) }
    }
}

/// How a client is connected: the transport and whether TLS is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Packets on a plain TCP stream.
    Tcp,
    /// Packets on a TLS stream over TCP.
    Tls,
    /// One packet per WebSocket message.
    Ws,
    /// One packet per WebSocket message, over TLS.
    Wss,
}

impl Transport {
    /// `"tcp"`, `"tls"`, `"ws"` or `"wss"`, for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Whether the transport runs over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Self::Tls | Self::Wss)
    }

    /// Whether packets travel in WebSocket messages.
    pub fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
