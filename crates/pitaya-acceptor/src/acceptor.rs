//! Bound listeners: [`Acceptor`], over [`TcpAcceptor`] and [`WsAcceptor`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::rate_limit::PacketRateLimiter;
use crate::{AcceptorOptions, Incoming, Transport};

/// A bound listener of either kind. Several may run at once, each with its own options.
#[derive(Debug)]
pub enum Acceptor {
    /// Packets on a TCP (or TLS) stream.
    Tcp(TcpAcceptor),
    /// One packet per WebSocket message (WS or WSS).
    Ws(WsAcceptor),
}

impl Acceptor {
    /// Binds a TCP acceptor; see [`TcpAcceptor::bind`].
    ///
    /// # Errors
    /// The address does not resolve or cannot be bound.
    pub async fn bind_tcp(addr: impl ToSocketAddrs, opts: AcceptorOptions) -> io::Result<Self> {
        TcpAcceptor::bind(addr, opts).await.map(Self::Tcp)
    }

    /// Binds a WebSocket acceptor; see [`WsAcceptor::bind`].
    ///
    /// # Errors
    /// The address does not resolve or cannot be bound.
    pub async fn bind_ws(addr: impl ToSocketAddrs, opts: AcceptorOptions) -> io::Result<Self> {
        WsAcceptor::bind(addr, opts).await.map(Self::Ws)
    }

    /// The bound address (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener().local_addr
    }

    /// The transport of every connection from this acceptor.
    pub fn transport(&self) -> Transport {
        self.listener().setup.transport()
    }

    /// Accepts one TCP connection; see [`TcpAcceptor::accept`].
    ///
    /// # Errors
    /// As [`tokio::net::TcpListener::accept`]; usually transient (too many open files, a
    /// connection reset before it was accepted): log, back off briefly, accept again.
    pub async fn accept(&self) -> io::Result<Incoming> {
        self.listener().accept().await
    }

    fn listener(&self) -> &Listener {
        match self {
            Self::Tcp(a) => &a.0,
            Self::Ws(a) => &a.0,
        }
    }
}

/// A listener whose connections carry packets on a byte stream, optionally behind a
/// PROXY header and TLS (spec §4.1).
#[derive(Debug)]
pub struct TcpAcceptor(Listener);

impl TcpAcceptor {
    /// Binds `addr`. Nothing is read from clients until [`Incoming::establish`].
    ///
    /// # Errors
    /// The address does not resolve or cannot be bound.
    pub async fn bind(addr: impl ToSocketAddrs, opts: AcceptorOptions) -> io::Result<Self> {
        Listener::bind(addr, opts, Kind::Tcp).await.map(Self)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr
    }

    /// Accepts one connection. Cheap, and never waits on the peer: the PROXY header and
    /// TLS handshake happen in [`Incoming::establish`] (Go reads the PROXY header inside
    /// `Accept`, so one slow client stalls its accept loop; this one does not).
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call accepts nothing.
    ///
    /// # Errors
    /// As [`Acceptor::accept`].
    pub async fn accept(&self) -> io::Result<Incoming> {
        self.0.accept().await
    }
}

/// A listener whose connections are upgraded to WebSocket on any path, one packet per
/// message (spec §4.2). The PROXY protocol option is ignored, as in Go.
#[derive(Debug)]
pub struct WsAcceptor(Listener);

impl WsAcceptor {
    /// Binds `addr`. Nothing is read from clients until [`Incoming::establish`].
    ///
    /// # Errors
    /// The address does not resolve or cannot be bound.
    pub async fn bind(addr: impl ToSocketAddrs, opts: AcceptorOptions) -> io::Result<Self> {
        Listener::bind(addr, opts, Kind::Ws).await.map(Self)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr
    }

    /// Accepts one connection. Cheap, and never waits on the peer: the TLS handshake and
    /// HTTP upgrade happen in [`Incoming::establish`].
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped call accepts nothing.
    ///
    /// # Errors
    /// As [`Acceptor::accept`].
    pub async fn accept(&self) -> io::Result<Incoming> {
        self.0.accept().await
    }
}

/// Which protocol runs on accepted sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Tcp,
    Ws,
}

/// Everything a connection needs from its acceptor, shared by all its connections.
pub(crate) struct Setup {
    pub(crate) kind: Kind,
    pub(crate) opts: AcceptorOptions,
    pub(crate) tls: Option<TlsAcceptor>,
}

impl Setup {
    pub(crate) fn transport(&self) -> Transport {
        match (self.kind, self.tls.is_some()) {
            (Kind::Tcp, false) => Transport::Tcp,
            (Kind::Tcp, true) => Transport::Tls,
            (Kind::Ws, false) => Transport::Ws,
            (Kind::Ws, true) => Transport::Wss,
        }
    }
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setup")
            .field("transport", &self.transport())
            .field("proxy_protocol", &self.opts.proxy_protocol)
            .field("rate_limit", &self.opts.rate_limit)
            .field("max_body_len", &self.opts.max_body_len)
            .field("handshake_timeout", &self.opts.handshake_timeout)
            .finish()
    }
}

#[derive(Debug)]
struct Listener {
    listener: TcpListener,
    local_addr: SocketAddr,
    setup: Arc<Setup>,
}

impl Listener {
    async fn bind(addr: impl ToSocketAddrs, opts: AcceptorOptions, kind: Kind) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        if kind == Kind::Ws && opts.proxy_protocol {
            debug!(%local_addr, "proxy protocol is ignored by websocket acceptors");
        }
        if let Some(limit) = opts.rate_limit {
            if PacketRateLimiter::new(limit).is_none() {
                warn!(%local_addr, ?limit, "rate limit cannot be enforced, limiting is off");
            }
        }
        let tls = opts.tls.clone().map(TlsAcceptor::from);
        let setup = Arc::new(Setup { kind, opts, tls });
        debug!(%local_addr, transport = %setup.transport(), "acceptor listening");
        Ok(Self { listener, local_addr, setup })
    }

    async fn accept(&self) -> io::Result<Incoming> {
        let (stream, peer_addr) = self.listener.accept().await?;
        // Go enables TCP_NODELAY on every connection; the writer batches packets itself.
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%peer_addr, %error, "cannot set TCP_NODELAY");
        }
        Ok(Incoming::new(stream, peer_addr, Arc::clone(&self.setup)))
    }
}
