//! [`AcceptorSpec`]: where and how a server accepts connections.

use std::sync::Arc;

/// Where and how to accept connections.
#[derive(Clone, Debug)]
pub struct AcceptorSpec {
    pub(crate) websocket: bool,
    pub(crate) addr: String,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
}

impl AcceptorSpec {
    /// A TCP acceptor on `addr` (`host:port`; port 0 picks a free port).
    pub fn tcp(addr: impl Into<String>) -> Self {
        Self { websocket: false, addr: addr.into(), tls: None }
    }

    /// A WebSocket acceptor on `addr`, upgrading any path.
    pub fn ws(addr: impl Into<String>) -> Self {
        Self { websocket: true, addr: addr.into(), tls: None }
    }

    /// Serves TLS on this acceptor (see `pitaya_acceptor::load_tls_config`).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}
