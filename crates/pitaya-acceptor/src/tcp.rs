//! TCP connection setup (spec §4.1, §4.3): optional PROXY header, then optional TLS.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::acceptor::Setup;
use crate::prefixed::Prefixed;
use crate::rate_limit::PacketRateLimiter;
use crate::reader::StreamIo;
use crate::writer::BoxedWrite;
use crate::{AcceptError, Connection, PacketReader, PacketWriter, proxy};

/// Reads the PROXY header and runs the TLS handshake, as configured.
pub(crate) async fn establish(
    mut stream: TcpStream,
    peer_addr: SocketAddr,
    setup: &Setup,
) -> Result<Connection, AcceptError> {
    // spec §4.1: the PROXY header comes first, in clear, and TLS runs after it.
    let (remote_addr, after_header) = if setup.opts.proxy_protocol {
        proxy::read_header(&mut stream).await?
    } else {
        (peer_addr, BytesMut::new())
    };
    let (read, write, buffered): (StreamIo, BoxedWrite, BytesMut) = match &setup.tls {
        None => {
            let (read, write) = stream.into_split();
            (StreamIo::Tcp(read), Box::new(write), after_header)
        }
        Some(tls) => {
            // Bytes read past the PROXY header belong to the client hello.
            let io = Prefixed::new(after_header, stream);
            let tls_stream = tls.accept(io).await.map_err(AcceptError::Tls)?;
            let (read, write) = tokio::io::split(tls_stream);
            (StreamIo::Other(Box::new(read)), Box::new(write), BytesMut::new())
        }
    };
    let limiter = setup.opts.rate_limit.and_then(PacketRateLimiter::new);
    let max_body_len = setup.opts.effective_max_body_len();
    Ok(Connection {
        reader: PacketReader::stream(read, buffered, max_body_len, limiter, remote_addr),
        writer: PacketWriter::stream(write, remote_addr),
        remote_addr,
        transport: setup.transport(),
    })
}
