//! PROXY protocol v1 and v2 on the TCP acceptor: the client address, bytes that follow
//! the header in the same segment, refused headers, and PROXY before TLS.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use pitaya_acceptor::{AcceptError, Acceptor, AcceptorOptions, Connection, ProxyHeaderError};
use pitaya_codec::{Packet, PacketType};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::common::{localhost, packet, test_cert, within};

/// Connects to a PROXY-protocol TCP acceptor, sends `wire` in one write, closes, and
/// establishes the server side.
async fn establish_after(wire: &[u8]) -> Result<Connection, AcceptError> {
    let opts = AcceptorOptions { proxy_protocol: true, ..AcceptorOptions::default() };
    let acceptor = Acceptor::bind_tcp("127.0.0.1:0", opts).await.unwrap();
    let mut client = within(TcpStream::connect(acceptor.local_addr())).await.unwrap();
    client.write_all(wire).await.unwrap();
    // The bytes stay readable after the close; the close itself tests the EOF case.
    drop(client);
    within(acceptor.accept().await.unwrap().establish()).await
}

#[tokio::test]
async fn v1_header_sets_remote_addr_and_the_packet_after_it_decodes() {
    let mut wire = b"PROXY TCP4 203.0.113.7 127.0.0.1 4567 3250\r\n".to_vec();
    wire.extend(packet(4, b"first"));
    let mut conn = establish_after(&wire).await.unwrap();
    assert_eq!(conn.remote_addr, "203.0.113.7:4567".parse().unwrap());
    assert_eq!(
        within(conn.reader.read()).await.unwrap(),
        Some(Packet::new(PacketType::Data, &b"first"[..]))
    );
    assert_eq!(within(conn.reader.read()).await.unwrap(), None);
}

#[tokio::test]
async fn v2_header_sets_remote_addr_and_the_packet_after_it_decodes() {
    let mut wire = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    // v2 PROXY, TCP over IPv6, 36 address bytes.
    wire.extend([0x21, 0x21, 0x00, 0x24]);
    wire.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42]);
    wire.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    wire.extend([0x30, 0x39, 0x0C, 0xB2]);
    wire.extend(packet(3, b""));
    let mut conn = establish_after(&wire).await.unwrap();
    assert_eq!(conn.remote_addr, "[2001:db8::42]:12345".parse().unwrap());
    assert_eq!(
        within(conn.reader.read()).await.unwrap(),
        Some(Packet::empty(PacketType::Heartbeat))
    );
}

/// Whether an error is the expected one.
type Check = fn(&ProxyHeaderError) -> bool;

#[tokio::test]
async fn bad_headers_close_the_connection() {
    let cases: [(&[u8], Check); 4] = [
        // A client talking to the port directly, without a load balancer.
        (&[1, 0, 0, 2, b'{', b'}'], |e| matches!(e, ProxyHeaderError::Malformed(_))),
        (b"PROXY TCP4 nonsense\r\n", |e| matches!(e, ProxyHeaderError::Malformed(_))),
        (b"PROXY UNKNOWN\r\n", |e| matches!(e, ProxyHeaderError::NoSourceAddress)),
        // v2 LOCAL: a health check from the balancer itself.
        (b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", |e| {
            matches!(e, ProxyHeaderError::NoSourceAddress)
        }),
    ];
    for (wire, expected) in cases {
        match establish_after(wire).await {
            Err(AcceptError::ProxyHeader(e)) => assert!(expected(&e), "{wire:?}: {e:?}"),
            other => panic!("{wire:?}: {other:?}"),
        }
    }
    let err = establish_after(b"PROXY TCP4 203.0.").await.unwrap_err();
    assert!(matches!(err, AcceptError::ProxyHeader(ProxyHeaderError::UnexpectedEof)), "{err:?}");
}

/// A client stream whose first write carries `prefix` too, so the PROXY header and the
/// TLS client hello leave in a single segment.
struct PrefixFirstWrite {
    inner: TcpStream,
    prefix: Option<Vec<u8>>,
}

impl AsyncRead for PrefixFirstWrite {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PrefixFirstWrite {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(mut all) = self.prefix.take() {
            all.extend_from_slice(buf);
            // A fresh loopback socket takes a few hundred bytes at once.
            assert_eq!(self.inner.try_write(&all).unwrap(), all.len());
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn header_comes_before_tls_even_in_the_same_segment() {
    let cert = test_cert();
    let opts = AcceptorOptions {
        proxy_protocol: true,
        tls: Some(cert.server),
        ..AcceptorOptions::default()
    };
    let acceptor = Acceptor::bind_tcp("127.0.0.1:0", opts).await.unwrap();
    let tcp = within(TcpStream::connect(acceptor.local_addr())).await.unwrap();
    let io = PrefixFirstWrite {
        inner: tcp,
        prefix: Some(b"PROXY TCP4 198.51.100.1 127.0.0.1 1111 3250\r\n".to_vec()),
    };
    let client = TlsConnector::from(cert.client).connect(localhost(), io);
    let server = async { acceptor.accept().await.unwrap().establish().await };
    let (client, server) = within(async { tokio::join!(client, server) }).await;
    let (mut client, mut conn) = (client.unwrap(), server.unwrap());
    assert_eq!(conn.remote_addr, "198.51.100.1:1111".parse().unwrap());

    client.write_all(&packet(3, b"")).await.unwrap();
    client.flush().await.unwrap();
    assert_eq!(
        within(conn.reader.read()).await.unwrap(),
        Some(Packet::empty(PacketType::Heartbeat))
    );
}
