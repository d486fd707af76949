//! Packets on plain TCP: framing across reads, clean and unclean ends, bad headers, and
//! an accept loop that a silent client cannot stall.

use std::time::Duration;

use bytes::Bytes;
use pitaya_acceptor::{AcceptError, Acceptor, AcceptorOptions, ConnError, Transport};
use pitaya_codec::{Packet, PacketError, PacketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{packet, tcp_pair, within};

#[tokio::test]
async fn packet_split_across_reads_arrives_whole() {
    let (mut client, mut conn) = tcp_pair(AcceptorOptions::default()).await;
    assert_eq!(conn.transport, Transport::Tcp);
    assert_eq!(conn.remote_addr, client.local_addr().unwrap());

    client.write_all(&[4, 0, 0, 5, b'h', b'e']).await.unwrap();
    // The read gives up mid-packet; being cancel safe, it must lose none of those bytes.
    let cut = tokio::time::timeout(Duration::from_millis(100), conn.reader.read()).await;
    assert!(cut.is_err(), "half a packet must not be returned: {cut:?}");

    client.write_all(b"llo").await.unwrap();
    client.write_all(&[3, 0]).await.unwrap();
    let first = within(conn.reader.read()).await.unwrap();
    assert_eq!(first, Some(Packet::new(PacketType::Data, &b"hello"[..])));
    client.write_all(&[0, 0]).await.unwrap();
    let second = within(conn.reader.read()).await.unwrap();
    assert_eq!(second, Some(Packet::empty(PacketType::Heartbeat)));
}

#[tokio::test]
async fn several_packets_in_one_write_all_arrive() {
    let (mut client, mut conn) = tcp_pair(AcceptorOptions::default()).await;
    let mut wire = packet(1, br#"{"sys":{}}"#);
    wire.extend(packet(2, b""));
    wire.extend(packet(4, b"\x00\x01\x05a.b.c{}"));
    wire.extend(packet(3, b""));
    client.write_all(&wire).await.unwrap();

    let mut kinds = Vec::new();
    for _ in 0..4 {
        kinds.push(within(conn.reader.read()).await.unwrap().unwrap().kind);
    }
    use PacketType::*;
    assert_eq!(kinds, [Handshake, HandshakeAck, Data, Heartbeat]);
}

#[tokio::test]
async fn eof_between_packets_is_a_clean_close() {
    let (mut client, mut conn) = tcp_pair(AcceptorOptions::default()).await;
    client.write_all(&packet(3, b"")).await.unwrap();
    client.shutdown().await.unwrap();
    assert!(within(conn.reader.read()).await.unwrap().is_some());
    assert!(within(conn.reader.read()).await.unwrap().is_none());
}

#[tokio::test]
async fn eof_mid_packet_is_an_error() {
    let (mut client, mut conn) = tcp_pair(AcceptorOptions::default()).await;
    client.write_all(&[4, 0, 0, 9, 1, 2]).await.unwrap();
    client.shutdown().await.unwrap();
    let err = within(conn.reader.read()).await.unwrap_err();
    assert!(matches!(err, ConnError::UnexpectedEof { buffered: 6 }), "{err:?}");

    // A header cut short is an error too.
    let (mut client, mut conn) = tcp_pair(AcceptorOptions::default()).await;
    client.write_all(&[4, 0]).await.unwrap();
    drop(client);
    let err = within(conn.reader.read()).await.unwrap_err();
    assert!(matches!(err, ConnError::UnexpectedEof { buffered: 2 }), "{err:?}");
}

#[tokio::test]
async fn bad_type_byte_is_an_error() {
    let (mut client, mut conn) = tcp_pair(AcceptorOptions::default()).await;
    client.write_all(&[6, 0, 0, 0]).await.unwrap();
    let err = within(conn.reader.read()).await.unwrap_err();
    assert!(matches!(err, ConnError::Packet(PacketError::UnknownType(6))), "{err:?}");
}

#[tokio::test]
async fn oversized_length_is_refused_before_the_body() {
    let opts = AcceptorOptions { max_body_len: 16, ..AcceptorOptions::default() };
    let (mut client, mut conn) = tcp_pair(opts).await;
    // Only the header is sent and the socket stays open: the error cannot come from
    // reading (or waiting for) the body.
    client.write_all(&[4, 0, 0, 17]).await.unwrap();
    let err = within(conn.reader.read()).await.unwrap_err();
    assert!(
        matches!(err, ConnError::Packet(PacketError::BodyTooLarge { len: 17, max: 16 })),
        "{err:?}"
    );

    // Exactly the limit is fine.
    let opts = AcceptorOptions { max_body_len: 16, ..AcceptorOptions::default() };
    let (mut client, mut conn) = tcp_pair(opts).await;
    client.write_all(&packet(4, &[7; 16])).await.unwrap();
    assert_eq!(within(conn.reader.read()).await.unwrap().unwrap().body.len(), 16);
}

#[tokio::test]
async fn writer_sends_the_buffer_as_is_then_closes() {
    let (mut client, mut conn) = tcp_pair(AcceptorOptions::default()).await;
    let mut wire = packet(3, b"");
    wire.extend(packet(4, b"\x04\x00\x05push"));
    wire.extend(packet(5, b""));
    within(conn.writer.write(Bytes::from(wire.clone()))).await.unwrap();
    within(conn.writer.close()).await;

    let mut received = Vec::new();
    within(client.read_to_end(&mut received)).await.unwrap();
    assert_eq!(received, wire);
}

#[tokio::test]
async fn reader_and_writer_work_from_two_tasks() {
    let (mut client, conn) = tcp_pair(AcceptorOptions::default()).await;
    let (mut reader, mut writer) = (conn.reader, conn.writer);
    let echo = tokio::spawn(async move {
        let mut count = 0;
        while let Some(p) = reader.read().await.unwrap() {
            count += 1;
            assert_eq!(p.kind, PacketType::Heartbeat);
        }
        count
    });
    let write = tokio::spawn(async move {
        for _ in 0..3 {
            writer.write(Bytes::from(packet(3, b""))).await.unwrap();
        }
        writer.close().await;
    });
    for _ in 0..5 {
        client.write_all(&packet(3, b"")).await.unwrap();
    }
    let mut received = Vec::new();
    within(client.read_to_end(&mut received)).await.unwrap();
    assert_eq!(received, packet(3, b"").repeat(3));
    client.shutdown().await.unwrap();
    assert_eq!(within(echo).await.unwrap(), 5);
    within(write).await.unwrap();
}

#[tokio::test]
async fn silent_client_does_not_stall_accept() {
    // With the PROXY protocol on, establish has to wait for client bytes.
    let opts = AcceptorOptions {
        proxy_protocol: true,
        handshake_timeout: Duration::from_millis(300),
        ..AcceptorOptions::default()
    };
    let acceptor = Acceptor::bind_tcp("127.0.0.1:0", opts).await.unwrap();
    let addr = acceptor.local_addr();

    let _silent = within(TcpStream::connect(addr)).await.unwrap();
    let slow = within(acceptor.accept()).await.unwrap();
    let slow = tokio::spawn(slow.establish());

    let mut fast = within(TcpStream::connect(addr)).await.unwrap();
    let mut wire = b"PROXY TCP4 192.0.2.10 127.0.0.1 4000 3250\r\n".to_vec();
    wire.extend(packet(3, b""));
    fast.write_all(&wire).await.unwrap();
    let mut conn =
        within(async { acceptor.accept().await.unwrap().establish().await }).await.unwrap();
    assert_eq!(conn.remote_addr, "192.0.2.10:4000".parse().unwrap());
    assert!(within(conn.reader.read()).await.unwrap().is_some());

    let err = within(slow).await.unwrap().unwrap_err();
    assert!(matches!(err, AcceptError::HandshakeTimeout(_)), "{err:?}");
}
