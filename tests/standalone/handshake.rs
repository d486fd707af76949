//! The handshake (spec §1.3 to §1.5): exact response bytes, rejections with code 400,
//! validators, and the order of handshake, ack and data.

use pitaya::Error;
use pitaya::client::{Client, ClientError, ClientOptions};
use pitaya::codec::compression::deflate;
use pitaya::codec::{Message, PacketType};

use crate::support::{
    ACK, HANDSHAKE, Server, config, echo_args, echo_builder, encode, json, packet, within,
};

const DEFAULT_RESPONSE: &[u8] =
    br#"{"code":200,"sys":{"dict":{},"heartbeat":30,"serializer":"json"}}"#;
const REJECTED: &[u8] = br#"{"code":400,"sys":{"dict":{},"heartbeat":30,"serializer":"json"}}"#;

#[tokio::test]
async fn default_handshake_response_bytes_over_tcp_and_websocket() {
    within(async {
        // Go's defaults, compression included: the bare response compresses to more bytes
        // than it has, and we never compress it anyway.
        let config = config(&[]);
        assert!(config.handler.messages.compression);
        let server = Server::start(echo_builder(config)).await;
        let expected = packet(0x01, DEFAULT_RESPONSE);
        assert_eq!(expected[..4], [0x01, 0x00, 0x00, 0x41]);

        let mut raw = server.raw().await;
        raw.send(&packet(0x01, HANDSHAKE)).await;
        assert_eq!(raw.read_exact(expected.len()).await, expected);

        let mut ws = server.raw_ws().await;
        ws.send_binary(&packet(0x01, HANDSHAKE)).await;
        assert_eq!(ws.frame().await.expect("the handshake response")[..], expected[..]);
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn handshake_response_is_never_compressed() {
    within(async {
        let args = pitaya_examples::echo::EchoArgs { dict: true, ..echo_args() };
        let config = config(&[("pitaya.handler.messages.compression", "true")]);
        let server = Server::echo(&args, config, None).await;
        let mut raw = server.raw().await;
        let response = raw.handshake().await;
        assert_eq!(response.body.first(), Some(&b'{'), "plain JSON, no zlib magic");
        assert_eq!(json(&response.body)["sys"]["dict"].as_object().map(|d| d.len()), Some(8));
        // With eight routes zlib would shorten it, so Go would have compressed it.
        assert!(deflate(&response.body).len() < response.body.len());
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn invalid_handshake_gets_code_400_then_close() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let bodies: [&[u8]; 6] = [
            b"not json",
            b"",
            br#"{"sys":"#,
            br#"{"sys":{"platform":1}}"#,
            br#"{"sys":{},"user":[1]}"#,
            b"[1,2,3]",
        ];
        for body in bodies {
            let case = String::from_utf8_lossy(body);
            let mut raw = server.raw().await;
            raw.send(&packet(0x01, body)).await;
            let seen = raw.closed().await;
            assert_eq!(seen.len(), 1, "{case}: one response, then close; got {seen:?}");
            assert_eq!(seen[0].kind, PacketType::Handshake, "{case}");
            assert_eq!(seen[0].body[..], *REJECTED, "{case}");
            server.assert_healthy().await;
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn failing_handshake_validator_gets_code_400_then_close() {
    within(async {
        let builder = echo_builder(config(&[]));
        builder.sessions().add_handshake_validator("version", |_, hs| {
            if hs.sys.client_version == "0.0.0" {
                Err(Error::bad_request("client too old"))
            } else {
                Ok(())
            }
        });
        let server = Server::start(builder).await;

        let mut raw = server.raw().await;
        let old = br#"{"sys":{"platform":"test","libVersion":"1","clientBuildNumber":"1","clientVersion":"0.0.0"}}"#;
        raw.send(&packet(0x01, old)).await;
        let seen = raw.closed().await;
        assert_eq!(seen.len(), 1, "one response, then close; got {seen:?}");
        assert_eq!(seen[0].body[..], *REJECTED);

        let mut opts = ClientOptions::default();
        opts.handshake.sys.client_version = "0.0.0".to_owned();
        let refused = Client::connect(&server.url(false), opts).await;
        assert!(matches!(refused, Err(ClientError::HandshakeRejected { code: 400 })), "{refused:?}");

        // The default client version passes the validator.
        server.assert_healthy().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn data_before_the_ack_closes_the_connection() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let request = encode(&Message::request(1, "room.echo", "x"));

        // Handshake done, ack missing.
        let mut raw = server.raw().await;
        raw.send(&packet(0x01, HANDSHAKE)).await;
        assert_eq!(raw.frame().await.expect("handshake response").kind, PacketType::Handshake);
        raw.send(&request).await;
        raw.expect_silent_close("data after handshake, before ack").await;
        server.assert_healthy().await;

        // No handshake at all.
        let mut raw = server.raw().await;
        raw.send(&request).await;
        raw.expect_silent_close("data before handshake").await;
        server.assert_healthy().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn ack_before_the_handshake_is_ignored() {
    within(async {
        let server = Server::start(echo_builder(config(&[]))).await;
        let request = encode(&Message::request(1, "room.echo", "x"));

        // Go would let this data through and skip the validators (spec §1.5); the early
        // ack counts for nothing here, so the data comes before any ack.
        let mut raw = server.raw().await;
        raw.send(ACK).await;
        raw.send(&request).await;
        raw.expect_silent_close("ack, then data").await;
        server.assert_healthy().await;

        // An early ack does not spoil a proper handshake that follows.
        let mut raw = server.raw().await;
        raw.send(ACK).await;
        raw.handshake().await;
        raw.send(&request).await;
        let msg = raw.message().await;
        assert_eq!((msg.id, &msg.data[..]), (1, &b"x"[..]));
        server.shutdown().await;
    })
    .await;
}
