//! [`Incoming`] (an accepted socket) and [`Connection`] (what it becomes once set up).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::acceptor::{Kind, Setup};
use crate::{AcceptError, PacketReader, PacketWriter, Transport, tcp, ws};

/// An accepted socket on which nothing has been read yet.
pub struct Incoming {
    stream: TcpStream,
    peer_addr: SocketAddr,
    setup: Arc<Setup>,
}

impl Incoming {
    pub(crate) fn new(stream: TcpStream, peer_addr: SocketAddr, setup: Arc<Setup>) -> Self {
        Self { stream, peer_addr, setup }
    }

    /// The socket's peer: the load balancer when the PROXY protocol is on.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// The transport the connection will use.
    pub fn transport(&self) -> Transport {
        self.setup.transport()
    }

    /// Reads the PROXY header, runs the TLS handshake and the WebSocket upgrade, as
    /// configured, all within
    /// [`handshake_timeout`](crate::AcceptorOptions::handshake_timeout). Run it in the
    /// connection's own task, so a slow client delays nobody else.
    ///
    /// Failures are logged at warn level; success at debug level.
    ///
    /// # Errors
    /// [`AcceptError::HandshakeTimeout`], [`AcceptError::ProxyHeader`],
    /// [`AcceptError::Tls`], [`AcceptError::WebSocket`] or [`AcceptError::Io`]. The socket
    /// is closed when the error is returned.
    pub async fn establish(self) -> Result<Connection, AcceptError> {
        let Self { stream, peer_addr, setup } = self;
        let limit = setup.opts.handshake_timeout;
        let work = async {
            match setup.kind {
                Kind::Tcp => tcp::establish(stream, peer_addr, &setup).await,
                Kind::Ws => ws::establish(stream, peer_addr, &setup).await,
            }
        };
        let result = tokio::time::timeout(limit, work)
            .await
            .unwrap_or(Err(AcceptError::HandshakeTimeout(limit)));
        let transport = setup.transport();
        match &result {
            Ok(conn) => {
                debug!(%peer_addr, remote = %conn.remote_addr, %transport, "connection established");
            }
            Err(error) => warn!(%peer_addr, %transport, %error, "connection handshake failed"),
        }
        result
    }
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("peer_addr", &self.peer_addr)
            .field("transport", &self.setup.transport())
            .finish_non_exhaustive()
    }
}

/// An established client connection, ready for packets.
///
/// The reader and writer are independent: move them into two tasks, or use both from
/// one task with `tokio::select!` ([`PacketReader::read`] is cancel safe).
#[derive(Debug)]
pub struct Connection {
    /// Incoming packets.
    pub reader: PacketReader,
    /// Outgoing packets.
    pub writer: PacketWriter,
    /// The client's address: from the PROXY header when that protocol is on, otherwise
    /// the socket peer.
    pub remote_addr: SocketAddr,
    /// How the client is connected.
    pub transport: Transport,
}
