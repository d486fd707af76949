//! Wire conformance across the codec and the serializers: literal bytes from the protocol
//! spec (handshake, §1.4; error responses, §2.5; e2e vectors, §14.3) built and read back.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pitaya_codec::{
    HandshakeRequest, HandshakeResponse, Message, MessageCodec, MessageType, PacketType,
};
use pitaya_serialize::{ErrorPayload, Json, Protobuf, Serializer};
use pitaya_tests::packets;

#[test]
fn bare_handshake_response_is_65_bytes_uncompressed() {
    let json = HandshakeResponse::new(200, Duration::from_secs(30), BTreeMap::new(), "json");
    let mut wire = BytesMut::new();
    pitaya_codec::encode_packet(PacketType::Handshake, &json.encode(), &mut wire).unwrap();
    let mut expected = vec![0x01, 0x00, 0x00, 0x41];
    expected
        .extend_from_slice(br#"{"code":200,"sys":{"dict":{},"heartbeat":30,"serializer":"json"}}"#);
    assert_eq!(&wire[..], &expected[..]);
}

#[test]
fn libpitaya_handshake_and_ack() {
    let mut wire = Vec::new();
    let body = br#"{"sys":{"platform":"android","libVersion":"4.6.3","clientBuildNumber":"1","clientVersion":"1.0"}}"#;
    wire.extend_from_slice(&[0x01, 0x00, 0x00, body.len() as u8]);
    wire.extend_from_slice(body);
    wire.extend_from_slice(&[0x02, 0x00, 0x00, 0x00]);
    let got = packets(&wire);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].kind, PacketType::Handshake);
    let req = HandshakeRequest::decode(&got[0].body).unwrap();
    assert_eq!(req.sys.platform, "android");
    assert_eq!(req.sys.client_version, "1.0");
    assert_eq!(got[1].kind, PacketType::HandshakeAck);
}

/// Encodes an error response to request `id` as a full packet.
fn error_packet(serializer: &dyn Serializer, id: u64, error: &ErrorPayload) -> Vec<u8> {
    let mut wire = BytesMut::new();
    MessageCodec::new()
        .encode_packet(&Message::error_response(id, serializer.encode_error(error)), &mut wire)
        .unwrap();
    wire.to_vec()
}

#[test]
fn json_error_response_bytes() {
    let error = ErrorPayload::new(
        "PIT-404",
        "pitaya/handler: connector.testsvc.nonexistenthandler not found",
    );
    let wire = error_packet(&Json, 5, &error);
    let body = br#"{"code":"PIT-404","msg":"pitaya/handler: connector.testsvc.nonexistenthandler not found"}"#;
    let mut expected = vec![0x04, 0x00, 0x00, (body.len() + 2) as u8, 0x24, 0x05];
    expected.extend_from_slice(body);
    assert_eq!(wire, expected);
}

#[test]
fn protobuf_error_response_bytes() {
    let error = ErrorPayload::new("PIT-555", "somerror");
    let wire = error_packet(&Protobuf, 300, &error);
    // flag + 2-byte id + 9 bytes of code + 10 bytes of msg.
    let mut expected = vec![0x04, 0x00, 0x00, 22, 0x24, 0xAC, 0x02];
    expected.extend_from_slice(&[0x0a, 0x07]);
    expected.extend_from_slice(b"PIT-555");
    expected.extend_from_slice(&[0x12, 0x08]);
    expected.extend_from_slice(b"somerror");
    assert_eq!(wire, expected);
    let packet = packets(&wire).remove(0);
    let msg = MessageCodec::new().decode(packet.body).unwrap();
    assert_eq!((msg.kind, msg.id, msg.error), (MessageType::Response, 300, true));
    assert_eq!(Protobuf.decode_error(&msg.data), Ok(error));
}

#[test]
fn e2e_error_bodies() {
    let cases = [
        (
            ErrorPayload::new("PIT-000", "reply must not be null"),
            r#"{"code":"PIT-000","msg":"reply must not be null"}"#,
        ),
        (ErrorPayload::new("PIT-555", "somerror"), r#"{"code":"PIT-555","msg":"somerror"}"#),
        (
            ErrorPayload::new("PIT-404", "route not found")
                .with_metadata("route", "testremotesvc.rpctestnotfound"),
            r#"{"code":"PIT-404","msg":"route not found","metadata":{"route":"testremotesvc.rpctestnotfound"}}"#,
        ),
        (
            ErrorPayload::new("PIT-433", "test error").with_metadata("some", "meta"),
            r#"{"code":"PIT-433","msg":"test error","metadata":{"some":"meta"}}"#,
        ),
    ];
    for (error, json) in cases {
        assert_eq!(Json.encode_error(&error), json.as_bytes());
        assert_eq!(Json.decode_error(json.as_bytes()), Ok(error));
    }
}

#[test]
fn compressed_response_from_a_go_server_is_read() {
    // The golden `test_must_gzip` body, framed as a Data packet: Go's zlib bytes inflate.
    let message = [
        0x34, 0x00, 0x78, 0x9c, 0x4a, 0xca, 0x49, 0x24, 0x06, 0x01, 0x02, 0x00, 0x00, 0xff, 0xff,
        0x33, 0xff, 0x0f, 0x64,
    ];
    let msg = MessageCodec::new().decode(Bytes::copy_from_slice(&message)).unwrap();
    assert!(msg.error);
    assert_eq!(&msg.data[..], "bla".repeat(13).as_bytes());
}
