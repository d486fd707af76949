//! One packet per WebSocket message: binary and text messages, bad message sizes, the
//! writer's one-message-per-packet split, control frames and upgrades on any path.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pitaya_acceptor::{AcceptError, Acceptor, AcceptorOptions, ConnError, Transport};
use pitaya_codec::{Packet, PacketError, PacketType};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{packet, within, ws_pair};

#[tokio::test]
async fn binary_and_text_messages_each_carry_one_packet() {
    let (mut client, mut conn) = ws_pair(AcceptorOptions::default(), "/").await;
    assert_eq!(conn.transport, Transport::Ws);

    client.send(Message::Binary(packet(4, b"bin").into())).await.unwrap();
    client.send(Message::Text("\u{4}\0\0\u{4}text".into())).await.unwrap();
    client.send(Message::Binary(packet(3, b"").into())).await.unwrap();
    assert_eq!(
        within(conn.reader.read()).await.unwrap(),
        Some(Packet::new(PacketType::Data, &b"bin"[..]))
    );
    assert_eq!(
        within(conn.reader.read()).await.unwrap(),
        Some(Packet::new(PacketType::Data, &b"text"[..]))
    );
    assert_eq!(
        within(conn.reader.read()).await.unwrap(),
        Some(Packet::empty(PacketType::Heartbeat))
    );
}

#[tokio::test]
async fn any_path_is_upgraded() {
    for path in ["/", "/pitaya", "/a/b/c?token=1&x=y"] {
        let (mut client, mut conn) = ws_pair(AcceptorOptions::default(), path).await;
        client.send(Message::Binary(packet(3, b"").into())).await.unwrap();
        assert!(within(conn.reader.read()).await.unwrap().is_some(), "{path}");
    }
}

#[tokio::test]
async fn message_with_trailing_bytes_is_an_error() {
    let (mut client, mut conn) = ws_pair(AcceptorOptions::default(), "/").await;
    let mut two = packet(3, b"");
    two.extend(packet(3, b""));
    client.send(Message::Binary(two.into())).await.unwrap();
    let err = within(conn.reader.read()).await.unwrap_err();
    assert!(
        matches!(err, ConnError::Packet(PacketError::LengthMismatch { declared: 0, actual: 4 })),
        "{err:?}"
    );

    // Shorter than its header says is refused too: no splitting across messages.
    let (mut client, mut conn) = ws_pair(AcceptorOptions::default(), "/").await;
    client.send(Message::Binary(vec![4, 0, 0, 5, 1].into())).await.unwrap();
    let err = within(conn.reader.read()).await.unwrap_err();
    assert!(matches!(err, ConnError::Packet(PacketError::LengthMismatch { .. })), "{err:?}");
}

#[tokio::test]
async fn message_shorter_than_a_header_is_an_error() {
    let (mut client, mut conn) = ws_pair(AcceptorOptions::default(), "/").await;
    client.send(Message::Binary(vec![3, 0, 0].into())).await.unwrap();
    let err = within(conn.reader.read()).await.unwrap_err();
    assert!(matches!(err, ConnError::Packet(PacketError::FrameTooShort(3))), "{err:?}");
}

#[tokio::test]
async fn oversized_frame_is_refused_from_its_header() {
    let opts = AcceptorOptions { max_body_len: 16, ..AcceptorOptions::default() };
    let (mut client, mut conn) = ws_pair(opts, "/").await;
    // A masked binary frame header announcing 2^40 payload bytes, and no payload: the
    // error must come from the header alone.
    let header = [0x82, 0xFF, 0, 0, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    client.get_mut().write_all(&header).await.unwrap();
    let err = within(conn.reader.read()).await.unwrap_err();
    assert!(matches!(err, ConnError::Packet(PacketError::BodyTooLarge { max: 16, .. })), "{err:?}");

    // A real message one byte over the limit.
    let opts = AcceptorOptions { max_body_len: 16, ..AcceptorOptions::default() };
    let (mut client, mut conn) = ws_pair(opts, "/").await;
    client.send(Message::Binary(packet(4, &[0; 17]).into())).await.unwrap();
    let err = within(conn.reader.read()).await.unwrap_err();
    assert!(
        matches!(err, ConnError::Packet(PacketError::BodyTooLarge { len: 17, max: 16 })),
        "{err:?}"
    );
}

#[tokio::test]
async fn writer_sends_one_binary_message_per_packet() {
    let (mut client, mut conn) = ws_pair(AcceptorOptions::default(), "/").await;
    let packets = [packet(3, b""), packet(4, b"\x04\x00\x05hello"), packet(5, b"")];
    within(conn.writer.write(Bytes::from(packets.concat()))).await.unwrap();
    for expected in &packets {
        let message = within(client.next()).await.unwrap().unwrap();
        assert_eq!(message, Message::Binary(expected.clone().into()));
    }

    // A buffer that is not whole packets is refused, and nothing is sent.
    let mut bad = packet(3, b"");
    bad.extend([4, 0, 0, 9, 1]);
    let err = within(conn.writer.write(Bytes::from(bad))).await.unwrap_err();
    assert!(matches!(err, ConnError::InvalidOutgoing(_)), "{err:?}");
    within(conn.writer.write(Bytes::from(packet(5, b"")))).await.unwrap();
    let message = within(client.next()).await.unwrap().unwrap();
    assert_eq!(message, Message::Binary(packet(5, b"").into()));
}

#[tokio::test]
async fn close_frame_is_a_clean_close_and_is_answered() {
    let (mut client, mut conn) = ws_pair(AcceptorOptions::default(), "/").await;
    client.send(Message::Binary(packet(3, b"").into())).await.unwrap();
    client.send(Message::Close(None)).await.unwrap();
    assert!(within(conn.reader.read()).await.unwrap().is_some());
    assert!(within(conn.reader.read()).await.unwrap().is_none());
    // The reply to our close frame, then the end of the stream.
    let reply = within(client.next()).await.unwrap().unwrap();
    assert!(matches!(reply, Message::Close(_)), "{reply:?}");
}

#[tokio::test]
async fn writer_close_sends_a_close_frame() {
    let (mut client, mut conn) = ws_pair(AcceptorOptions::default(), "/").await;
    within(conn.writer.close()).await;
    let message = within(client.next()).await.unwrap().unwrap();
    assert!(matches!(message, Message::Close(_)), "{message:?}");
}

#[tokio::test]
async fn pings_are_answered_while_reading() {
    let (mut client, conn) = ws_pair(AcceptorOptions::default(), "/").await;
    let mut reader = conn.reader;
    let reading = tokio::spawn(async move { reader.read().await.map(|p| p.map(|p| p.kind)) });
    client.send(Message::Ping(Bytes::from_static(b"are you there"))).await.unwrap();
    let pong = within(client.next()).await.unwrap().unwrap();
    assert_eq!(pong, Message::Pong(Bytes::from_static(b"are you there")));
    client.send(Message::Binary(packet(3, b"").into())).await.unwrap();
    assert_eq!(within(reading).await.unwrap().unwrap(), Some(PacketType::Heartbeat));
}

#[tokio::test]
async fn proxy_protocol_option_is_ignored() {
    let opts = AcceptorOptions { proxy_protocol: true, ..AcceptorOptions::default() };
    let (mut client, mut conn) = ws_pair(opts, "/").await;
    assert_eq!(conn.remote_addr, client.get_ref().local_addr().unwrap());
    client.send(Message::Binary(packet(3, b"").into())).await.unwrap();
    assert!(within(conn.reader.read()).await.unwrap().is_some());
}

#[tokio::test]
async fn silent_client_does_not_stall_accept() {
    let opts = AcceptorOptions {
        handshake_timeout: Duration::from_millis(300),
        ..AcceptorOptions::default()
    };
    let acceptor = Acceptor::bind_ws("127.0.0.1:0", opts).await.unwrap();
    let addr = acceptor.local_addr();
    let _silent = within(TcpStream::connect(addr)).await.unwrap();
    let slow = tokio::spawn(within(acceptor.accept()).await.unwrap().establish());

    let tcp = within(TcpStream::connect(addr)).await.unwrap();
    let client = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp);
    let server = async { acceptor.accept().await.unwrap().establish().await };
    let (client, server) = within(async { tokio::join!(client, server) }).await;
    client.unwrap();
    server.unwrap();

    let err = within(slow).await.unwrap().unwrap_err();
    assert!(matches!(err, AcceptError::HandshakeTimeout(_)), "{err:?}");
}

#[tokio::test]
async fn plain_http_request_is_refused() {
    let acceptor = Acceptor::bind_ws("127.0.0.1:0", AcceptorOptions::default()).await.unwrap();
    let mut tcp = within(TcpStream::connect(acceptor.local_addr())).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let err = within(acceptor.accept().await.unwrap().establish()).await.unwrap_err();
    assert!(matches!(err, AcceptError::WebSocket(_)), "{err:?}");
}
