//! One packet per WebSocket message: binary and text messages (UTF-8 or not), bad
//! message sizes, the writer's one-message-per-packet split, control frames and upgrades
//! on any path.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use pitaya_acceptor::{AcceptError, Acceptor, AcceptorOptions, ConnError, Transport};
use pitaya_codec::{Packet, PacketError, PacketType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// A masked client frame (RFC 6455 §5.2) with the given first byte, built by hand so
/// that a text frame can carry any bytes.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];
    let mut out = vec![first];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | u8::try_from(len).unwrap());
    } else {
        out.push(0x80 | 126);
        out.extend(u16::try_from(len).unwrap().to_be_bytes());
    }
    out.extend(KEY);
    out.extend(payload.iter().zip(KEY.iter().cycle()).map(|(b, k)| b ^ k));
    out
}

/// Reads one unmasked, unfragmented server frame: its first byte and its payload.
async fn read_server_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0; 2];
    within(tcp.read_exact(&mut head)).await.unwrap();
    let len = match head[1] {
        126 => {
            let mut ext = [0; 2];
            within(tcp.read_exact(&mut ext)).await.unwrap();
            usize::from(u16::from_be_bytes(ext))
        }
        n => {
            assert!(n < 126, "unexpected length byte {n}");
            usize::from(n)
        }
    };
    let mut payload = vec![0; len];
    within(tcp.read_exact(&mut payload)).await.unwrap();
    (head[0], payload)
}

#[tokio::test]
async fn text_frames_that_are_not_utf8_are_read_as_binary() {
    let acceptor = Acceptor::bind_ws("127.0.0.1:0", AcceptorOptions::default()).await.unwrap();
    let mut tcp = within(TcpStream::connect(acceptor.local_addr())).await.unwrap();
    let server = tokio::spawn(async move { acceptor.accept().await.unwrap().establish().await });

    // Frames only after the 101: tungstenite, like gorilla, refuses bytes sent behind
    // the upgrade request before it is answered.
    let request = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(request).await.unwrap();
    let mut conn = within(server).await.unwrap().unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        response.push(within(tcp.read_u8()).await.unwrap());
        assert!(response.len() < 4096, "no end to the upgrade response");
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&response));

    let handshake = packet(
        1,
        br#"{"sys":{"platform":"mac","libVersion":"0.3.5-release","libVersionName":"pitaya-rs"}}"#,
    );
    tcp.write_all(&client_frame(0x81, &handshake)).await.unwrap();

    // Handshake in, handshake response out.
    let packet_in = within(conn.reader.read()).await.unwrap().unwrap();
    assert_eq!(packet_in.kind, PacketType::Handshake);
    assert_eq!(packet_in.body[..], handshake[4..]);
    let reply = packet(1, br#"{"code":200,"sys":{"heartbeat":30}}"#);
    within(conn.writer.write(Bytes::from(reply.clone()))).await.unwrap();
    assert_eq!(read_server_frame(&mut tcp).await, (0x82, reply));

    // A request (flag 0x00, id 1, route "a.b") whose payload is not UTF-8, in one text
    // frame: gorilla hands it over as is, and so must we.
    let body = b"\x00\x01\x03a.b\xFF\xFE\xC3\x28";
    tcp.write_all(&client_frame(0x81, &packet(4, body))).await.unwrap();
    let data = within(conn.reader.read()).await.unwrap().unwrap();
    assert_eq!(data, Packet::new(PacketType::Data, &body[..]));
    let answer = packet(4, b"\x02\x01\xC3\x28");
    within(conn.writer.write(Bytes::from(answer.clone()))).await.unwrap();
    assert_eq!(read_server_frame(&mut tcp).await, (0x82, answer));

    // Still open: a fragmented text message, not UTF-8 either, a ping and a heartbeat
    // all go through.
    let split = packet(4, b"\x00\x02\x03a.b\xC3\x28\xFF");
    let (head, tail) = split.split_at(split.len() - 2);
    tcp.write_all(&client_frame(0x01, head)).await.unwrap();
    tcp.write_all(&client_frame(0x80, tail)).await.unwrap();
    tcp.write_all(&client_frame(0x89, b"ping")).await.unwrap();
    tcp.write_all(&client_frame(0x81, &packet(3, b""))).await.unwrap();
    let data = within(conn.reader.read()).await.unwrap().unwrap();
    assert_eq!(data, Packet::new(PacketType::Data, Bytes::copy_from_slice(&split[4..])));
    assert_eq!(
        within(conn.reader.read()).await.unwrap(),
        Some(Packet::empty(PacketType::Heartbeat))
    );
    // The pong went out while the reader was at it.
    assert_eq!(read_server_frame(&mut tcp).await, (0x8A, b"ping".to_vec()));
}
