//! Bad input of every kind in spec §1.8 and more. After each one, a fresh client on the
//! same server must still be served.

use std::time::Duration;

use pitaya::codec::{Message, MessageCodec, PacketType};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::support::{
    ACK, FAST_HEARTBEAT, HANDSHAKE, HEARTBEAT, Server, config, echo_args, echo_builder, encode,
    json, packet, wait, within,
};

/// A Data packet around `body`.
fn data(body: &[u8]) -> Vec<u8> {
    packet(0x04, body)
}

/// Inputs after which a working session (handshake and ack done) must be closed with
/// nothing sent.
fn closing_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut overflowing_id = vec![0x00];
    // Ten groups of seven bits with 0x7f last: more than 64 bits.
    overflowing_id.extend_from_slice(&[0xff; 9]);
    overflowing_id.extend_from_slice(&[0x7f, 0x01, 0x01, b'x']);
    let mut bad_zlib = vec![0x10, 0x01, 9];
    bad_zlib.extend_from_slice(b"room.echo");
    bad_zlib.extend_from_slice(&[0x78, 0x9c, 0xde, 0xad, 0xbe, 0xef]);
    vec![
        ("packet type 0", packet(0x00, &[])),
        ("packet type 6", packet(0x06, &[])),
        ("packet type 0xff with a body", packet(0xff, &[1, 2])),
        ("empty data packet", data(&[])),
        ("one-byte message", data(&[0x00])),
        // Go panics here and takes the whole process down (spec §1.8).
        ("request cut after its id", data(&[0x00, 0x05])),
        ("notify cut after its flag", data(&[0x02, 0x09])),
        ("route longer than the data", data(&[0x00, 0x01, 0x20, b'r', b'o', b'o'])),
        ("id varint that never ends", data(&[0x00, 0xff, 0xff])),
        ("id varint over 64 bits", data(&overflowing_id)),
        ("message type 4", data(&[0x08, 0x01, 0x01, b'x'])),
        ("message type 7", data(&[0x0e, 0x01, 0x01, b'x'])),
        ("zlib flag over garbage", data(&bad_zlib)),
        ("unknown route code", data(&[0x01, 0x01, 0xff, 0xff, b'x'])),
        ("route code cut short", data(&[0x01, 0x01, 0x00])),
        ("route that is not UTF-8", data(&[0x00, 0x01, 0x03, 0xff, 0xfe, 0xfd])),
    ]
}

#[tokio::test]
async fn undecodable_packets_close_the_connection() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        for (case, bytes) in closing_inputs() {
            let mut raw = server.raw().await;
            raw.handshake().await;
            raw.send(&bytes).await;
            raw.expect_silent_close(case).await;
            server.assert_healthy().await;
        }
        // Before the handshake: a bad type, and data.
        for (case, bytes) in [
            ("bad type first", packet(0x07, b"junk")),
            ("data first", data(&[0x00, 0x01, 0x01, b'x'])),
        ] {
            let mut raw = server.raw().await;
            raw.send(&bytes).await;
            raw.expect_silent_close(case).await;
            server.assert_healthy().await;
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_route_code_closes_with_a_dictionary_too() {
    within(async {
        let args = pitaya_examples::echo::EchoArgs { dict: true, ..echo_args() };
        let server = Server::echo(&args, config(&[]), None).await;
        let mut raw = server.raw().await;
        raw.handshake().await;
        raw.send(&data(&[0x01, 0x01, 0x03, 0xe7, b'x'])).await;
        raw.expect_silent_close("route code 999").await;
        server.assert_healthy().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn truncated_packet_then_eof_closes() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        for (case, working, bytes) in [
            ("half a header", false, vec![0x01, 0x00]),
            ("half a handshake", false, packet(0x01, HANDSHAKE)[..20].to_vec()),
            ("half a request", true, data(&[0x00, 0x01, 0x09, b'r', b'o'])[..6].to_vec()),
        ] {
            let mut raw = server.raw().await;
            if working {
                raw.handshake().await;
            }
            raw.send(&bytes).await;
            raw.shutdown_write().await;
            raw.expect_silent_close(case).await;
            server.assert_healthy().await;
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn ignored_packets_leave_the_connection_usable() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let mut raw = server.raw().await;
        raw.handshake().await;
        let mut push = vec![0x06, 9];
        push.extend_from_slice(b"onMessage");
        for (case, bytes) in [
            ("kick from the client", packet(0x05, &[])),
            ("heartbeat with a body", packet(0x03, &[0xaa, 0xbb])),
            ("second ack", ACK.to_vec()),
            ("response from the client", data(&[0x04, 0x01, b'x'])),
            ("push from the client", data(&push)),
        ] {
            raw.send(&bytes).await;
            raw.request(1, "room.echo", case.as_bytes()).await;
            let msg = raw.message().await;
            assert_eq!((msg.id, &msg.data[..]), (1, case.as_bytes()), "{case}");
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn bad_routes_get_coded_errors_and_notifies_get_nothing() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let mut raw = server.raw().await;
        raw.handshake().await;
        let not_found = |route: &str| format!("pitaya/handler: {route} not found");
        let cases = [
            ("a.b.c.d", "PIT-400", "invalid route".to_owned()),
            ("room", "PIT-400", "invalid route".to_owned()),
            ("", "PIT-400", "route field can not be empty".to_owned()),
            ("room.", "PIT-400", "route field can not be empty".to_owned()),
            (".echo", "PIT-400", "route field can not be empty".to_owned()),
            ("room. ", "PIT-400", "route field can not be empty".to_owned()),
            ("connector..echo", "PIT-400", "route field can not be empty".to_owned()),
            ("room.nope", "PIT-404", not_found("connector.room.nope")),
            ("connector.room.nope", "PIT-404", not_found("connector.room.nope")),
            // Routes are case-sensitive.
            ("Room.Echo", "PIT-404", not_found("connector.Room.Echo")),
            // Go stays silent here and the client waits forever; we answer.
            ("chat.room.echo", "PIT-404", not_found("chat.room.echo")),
        ];
        for (id, (route, code, msg)) in (1..).zip(&cases) {
            raw.request(id, route, b"{}").await;
            // The same route as a notify must produce nothing: the next message has to be
            // the answer to the echo that follows.
            raw.notify(route, b"{}").await;
            raw.request(1000 + id, "room.echo", b"after").await;
            let (flag, error) = raw.flagged_message().await;
            assert_eq!((flag, error.id), (0x24, id), "{route:?}");
            let body = json(&error.data);
            assert_eq!(
                (body["code"].as_str(), body["msg"].as_str()),
                (Some(*code), Some(msg.as_str())),
                "{route:?}"
            );
            assert_eq!(raw.message().await.id, 1000 + id, "{route:?}: the notify got an answer");
        }

        // Exact bytes of one, as Go's encoding/json writes it (spec §2.5).
        raw.request(99, "room.nope", b"").await;
        assert_eq!(
            raw.message().await.data,
            r#"{"code":"PIT-404","msg":"pitaya/handler: connector.room.nope not found"}"#
        );

        for (id, route) in (200..).zip(["room.notify", "room.message"]) {
            raw.request(id, route, b"x").await;
            let error = raw.message().await;
            assert_eq!(error.id, id);
            assert!(error.error);
            let body = json(&error.data);
            assert_eq!(body["code"], "PIT-400", "{route}");
            assert_eq!(body["msg"], "tried to request a notify route", "{route}");
        }

        // A notify to a request handler runs it and sends nothing back.
        raw.notify("room.echo", b"dropped").await;
        raw.request(300, "room.echojson", b"{not json").await;
        let error = raw.message().await;
        assert_eq!((error.id, error.error), (300, true), "the echo notify got an answer");
        let body = json(&error.data);
        assert_eq!(body["code"], "PIT-400");
        assert!(!body["msg"].as_str().unwrap_or_default().is_empty(), "the serializer's text");

        // The session survived all of it.
        raw.request(301, "room.echojson", br#"{"ok":true}"#).await;
        assert_eq!(json(&raw.message().await.data), serde_json::json!({"ok": true}));
        server.assert_healthy().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn websocket_messages_must_hold_exactly_one_packet() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let handshake = packet(0x01, HANDSHAKE);
        let mut two_packets = handshake.clone();
        two_packets.extend_from_slice(ACK);
        let mut trailing_byte = HEARTBEAT.to_vec();
        trailing_byte.push(0x00);
        let request = encode(&Message::request(1, "room.echo", "x"));
        let mut request_and_heartbeat = request.clone();
        request_and_heartbeat.extend_from_slice(HEARTBEAT);
        for (case, working, frame) in [
            ("empty message", false, Vec::new()),
            ("3 bytes", false, vec![0x03, 0x00, 0x00]),
            ("body shorter than its length", false, handshake[..handshake.len() - 1].to_vec()),
            ("a byte past the body", false, trailing_byte),
            ("handshake and ack in one message", false, two_packets),
            ("request and heartbeat in one message", true, request_and_heartbeat),
            ("bad type in a message", true, packet(0x09, &[])),
        ] {
            let mut ws = server.raw_ws().await;
            if working {
                ws.send_binary(&handshake).await;
                assert_eq!(ws.frame().await.expect("handshake response")[0], 0x01);
                ws.send_binary(ACK).await;
            }
            ws.send_binary(&frame).await;
            ws.expect_silent_close(case).await;
            let (client, _pushes) = server.connect(true).await;
            assert_eq!(client.request("room.echo", "ws ok").await.expect(case), "ws ok");
            client.close().await;
        }

        // Text messages are read like binary ones (spec §4.2).
        let mut ws = server.raw_ws().await;
        let text = String::from_utf8(handshake.clone()).expect("the handshake is ASCII");
        ws.send(WsMessage::text(text)).await;
        assert_eq!(ws.frame().await.expect("handshake response")[0], 0x01);
        ws.send_binary(ACK).await;
        ws.send_binary(&request).await;
        let answer = ws.frame().await.expect("the echo response");
        assert_eq!(answer[..], encode(&Message::response(1, "x"))[..]);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn slow_clients_are_closed_after_the_handshake_timeout() {
    within(async {
        let builder = echo_builder(config(&[])).handshake_timeout(Duration::from_millis(800));
        let server = Server::start(builder).await;
        for (case, answered, bytes) in [
            ("nothing sent", false, Vec::new()),
            ("half a handshake", false, packet(0x01, HANDSHAKE)[..30].to_vec()),
            // 16 MiB announced, 10 bytes sent.
            (
                "huge length, few bytes",
                false,
                [&[0x01, 0xff, 0xff, 0xff][..], &[b'{'; 10]].concat(),
            ),
            ("handshake without ack", true, packet(0x01, HANDSHAKE)),
        ] {
            let mut raw = server.raw().await;
            raw.send(&bytes).await;
            let seen = raw.closed().await;
            let kinds: Vec<_> = seen.iter().map(|p| p.kind).collect();
            let expected = if answered { vec![PacketType::Handshake] } else { Vec::new() };
            assert_eq!(kinds, expected, "{case}");
            server.assert_healthy().await;
        }
        // Over WebSocket: upgraded, then silent.
        let mut ws = server.raw_ws().await;
        ws.expect_silent_close("silent websocket").await;
        server.assert_healthy().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn stalled_packet_after_the_handshake_is_closed_by_the_heartbeat() {
    within(async {
        let server = Server::start(echo_builder(config(&[FAST_HEARTBEAT]))).await;
        let mut raw = server.raw().await;
        raw.handshake().await;
        // A request header announcing 16 MiB, then silence mid-packet.
        raw.send(&[0x04, 0xff, 0xff, 0xff, 0x00, 0x01]).await;
        raw.expect_silent_close("stalled packet").await;
        server.assert_healthy().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn flood_past_the_rate_limit_is_dropped_and_the_connection_survives() {
    within(async {
        let config = config(&[
            ("pitaya.conn.ratelimiting.limit", "5"),
            ("pitaya.conn.ratelimiting.interval", "1s"),
        ]);
        let server = Server::start(echo_builder(config).rate_limiting(true)).await;
        let dropped_before = pitaya::acceptor::exceeded_rate_limiting_total();
        let mut raw = server.raw().await;
        raw.handshake().await;

        const FLOOD: u64 = 40;
        let flood: Vec<u8> =
            (1..=FLOOD).flat_map(|id| encode(&Message::request(id, "room.echo", "f"))).collect();
        raw.send(&flood).await;
        let mut answered = Vec::new();
        // Answers come at once; a quiet second means the rest were dropped.
        while let Ok(Some(packet)) = raw.frame_within(Duration::from_secs(1)).await {
            let msg = MessageCodec::new().decode(packet.body).expect("a response");
            answered.push(msg.id);
            assert!(answered.len() <= FLOOD as usize);
        }

        // Once the quota refills, the same connection is served again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        raw.request(100, "room.echo", b"after the flood").await;
        loop {
            let msg = wait("the answer after the flood", raw.message()).await;
            if msg.id == 100 {
                assert_eq!(msg.data, "after the flood");
                break;
            }
            // A straggler from the flood, if this machine paused for a second.
            answered.push(msg.id);
            assert!(answered.len() <= FLOOD as usize);
        }

        assert!(!answered.is_empty(), "the burst allowance admits some");
        assert!(answered.len() < FLOOD as usize, "all {FLOOD} were answered: nothing was limited");
        assert!(answered.windows(2).all(|w| w[0] < w[1]), "admitted ones answered in order");
        let dropped = pitaya::acceptor::exceeded_rate_limiting_total() - dropped_before;
        assert!(dropped >= FLOOD - answered.len() as u64, "dropped {dropped}");
        server.assert_healthy().await;
        server.shutdown().await;
    })
    .await;
}
