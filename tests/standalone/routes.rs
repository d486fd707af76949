//! Every echo route over TCP, WS, TLS and WSS, for each serializer, compression and
//! dictionary setting; then the raw bytes those settings put on the wire.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use pitaya::SerializerKind;
use pitaya::codec::PacketType;
use pitaya_examples::echo::{EchoArgs, ROUTES};
use prost::Message as _;

use crate::support::{
    Server, TlsFiles, config, echo_args, json, next_push, packet, server_error, within,
};

#[derive(Clone, Copy, Debug)]
struct Variant {
    serializer: SerializerKind,
    compression: bool,
    dict: bool,
}

impl Variant {
    const PLAIN_JSON: Self =
        Self { serializer: SerializerKind::Json, compression: false, dict: false };

    fn all() -> Vec<Self> {
        let mut all = Vec::new();
        for serializer in [SerializerKind::Json, SerializerKind::Protobuf] {
            for compression in [false, true] {
                for dict in [false, true] {
                    all.push(Self { serializer, compression, dict });
                }
            }
        }
        all
    }

    /// The echo server in this variant, TLS on both acceptors when `tls` is given.
    async fn start(self, tls: Option<&TlsFiles>) -> Server {
        let args = EchoArgs {
            compression: self.compression,
            dict: self.dict,
            serializer: Some(self.serializer),
            tls_cert: tls.map(|t| t.cert.clone()),
            tls_key: tls.map(|t| t.key.clone()),
            ..echo_args()
        };
        // `start_with_config` takes compression from the configuration, not the flag.
        let compression = if self.compression { "true" } else { "false" };
        let config = config(&[("pitaya.handler.messages.compression", compression)]);
        Server::echo(&args, config, tls.map(|t| t.client.clone())).await
    }

    fn join_reply(self) -> &'static [u8] {
        match self.serializer {
            SerializerKind::Json => br#"{"code":200}"#,
            // Field 1, varint 200.
            _ => &[0x08, 0xc8, 0x01],
        }
    }
}

/// Drives all six routes with two clients, so that the broadcast has a second member.
async fn every_route(server: &Server, websocket: bool, v: Variant) {
    let (a, mut a_pushes) = server.connect(websocket).await;
    let (b, mut b_pushes) = server.connect(websocket).await;
    assert_eq!(a.serializer(), Some(v.serializer));
    assert_eq!(a.handshake_response().sys.dict.is_empty(), !v.dict);

    // room.echo: the raw body comes back unchanged, below and above the 128-byte
    // threshold under which nothing is compressed.
    let small = Bytes::from_static(b"\x00\x01 raw \xff bytes");
    let large: Bytes = (0..4096u32).map(|i| (i % 7) as u8).collect::<Vec<_>>().into();
    for body in [small, large.clone()] {
        assert_eq!(a.request("room.echo", body.clone()).await.expect("room.echo"), body);
    }

    let value = serde_json::json!({
        "name": "ana",
        "scores": [1, 2.5, null],
        "ok": true,
        "nested": {"k": "v"},
    });
    let reply = a.request("room.echojson", serde_json::to_vec(&value).unwrap()).await;
    assert_eq!(json(&reply.expect("room.echojson")), value);

    for body in [Bytes::from_static(b"ping me back"), large] {
        a.notify("room.notify", body.clone()).await.expect("room.notify");
        let push = next_push(&mut a_pushes).await;
        assert_eq!((push.route.as_str(), &push.data), ("onNotify", &body));
    }

    let error = server_error(a.request("room.fail", "").await);
    assert_eq!((error.code.as_str(), error.msg.as_str()), ("PIT-499", "fail"));

    // Joining twice is harmless.
    for client in [&a, &a, &b] {
        assert_eq!(client.request("room.join", "").await.expect("room.join"), v.join_reply());
    }

    // The sender is a member too.
    a.notify("room.message", "hello room").await.expect("room.message");
    for pushes in [&mut a_pushes, &mut b_pushes] {
        let push = next_push(pushes).await;
        assert_eq!((push.route.as_str(), &push.data[..]), ("onMessage", &b"hello room"[..]));
    }
    a.close().await;
    b.close().await;
}

async fn every_variant(websocket: bool, tls: bool) {
    let files = tls.then(TlsFiles::new);
    for v in Variant::all() {
        // Shown only when the test fails.
        eprintln!("variant {v:?}, websocket {websocket}, tls {tls}");
        let server = v.start(files.as_ref()).await;
        every_route(&server, websocket, v).await;
        server.shutdown().await;
    }
}

#[tokio::test]
async fn every_route_over_tcp() {
    within(every_variant(false, false)).await;
}

#[tokio::test]
async fn every_route_over_websocket() {
    within(every_variant(true, false)).await;
}

#[tokio::test]
async fn every_route_over_tls() {
    within(every_variant(false, true)).await;
}

#[tokio::test]
async fn every_route_over_wss() {
    within(every_variant(true, true)).await;
}

#[tokio::test]
async fn compression_flag_only_on_large_payloads_and_only_when_on() {
    within(async {
        for compression in [true, false] {
            let server = Variant { compression, ..Variant::PLAIN_JSON }.start(None).await;
            let mut raw = server.raw().await;
            raw.handshake().await;
            let large = vec![b'a'; 1000];
            // Under 128 bytes: deliberately never compressed.
            let small = vec![b'a'; 127];
            raw.request(1, "room.echo", &large).await;
            raw.request(2, "room.echo", &small).await;
            raw.notify("room.notify", &large).await;
            let zlib = if compression { 0x10 } else { 0 };

            let (flag, msg) = raw.flagged_message().await;
            assert_eq!(
                (flag, msg.id),
                (0x04 | zlib, 1),
                "large response, compression {compression}"
            );
            assert_eq!(msg.data, large);
            let (flag, msg) = raw.flagged_message().await;
            assert_eq!((flag, msg.id), (0x04, 2), "small response, compression {compression}");
            assert_eq!(msg.data, small);
            let (flag, msg) = raw.flagged_message().await;
            assert_eq!(flag, 0x06 | zlib, "large push, compression {compression}");
            assert_eq!((msg.route.as_str(), &msg.data[..]), ("onNotify", &large[..]));
            server.shutdown().await;
        }
    })
    .await;
}

#[tokio::test]
async fn dictionary_is_announced_and_compresses_push_routes() {
    within(async {
        for dict in [true, false] {
            let server = Variant { dict, ..Variant::PLAIN_JSON }.start(None).await;
            let mut raw = server.raw().await;
            let response = raw.handshake().await;
            let announced: BTreeMap<String, u16> =
                serde_json::from_value(json(&response.body)["sys"]["dict"].clone()).unwrap();
            if !dict {
                assert!(announced.is_empty());
            } else {
                let expected: BTreeSet<&str> =
                    ROUTES.iter().copied().chain(["onNotify", "onMessage"]).collect();
                assert_eq!(announced.keys().map(String::as_str).collect::<BTreeSet<_>>(), expected);
                let codes: BTreeSet<u16> = announced.values().copied().collect();
                assert_eq!(codes.len(), announced.len(), "codes are unique");

                // The server also reads a request whose route is a code (flag 0x01).
                let [hi, lo] = announced["room.echo"].to_be_bytes();
                raw.send(&packet(0x04, &[0x01, 0x07, hi, lo, b'x'])).await;
                let msg = raw.message().await;
                assert_eq!((msg.id, &msg.data[..]), (7, &b"x"[..]));
            }

            raw.request(1, "room.join", b"").await;
            assert_eq!(raw.message().await.id, 1);
            raw.notify("room.message", b"hi").await;
            let push = raw.frame().await.expect("the onMessage push");
            assert_eq!(push.kind, PacketType::Data);
            if dict {
                let [hi, lo] = announced["onMessage"].to_be_bytes();
                assert_eq!(push.body[..], [0x07, hi, lo, b'h', b'i']);
            } else {
                assert_eq!(push.body[..], *b"\x06\x09onMessagehi");
            }
            server.shutdown().await;
        }
    })
    .await;
}

#[tokio::test]
async fn protobuf_errors_and_replies_are_protobuf() {
    within(async {
        let v = Variant { serializer: SerializerKind::Protobuf, ..Variant::PLAIN_JSON };
        let server = v.start(None).await;
        let mut raw = server.raw().await;
        let response = raw.handshake().await;
        assert_eq!(
            response.body[..],
            *br#"{"code":200,"sys":{"dict":{},"heartbeat":30,"serializer":"protobuf"}}"#
        );

        raw.request(1, "room.fail", b"").await;
        let (flag, msg) = raw.flagged_message().await;
        assert_eq!((flag, msg.id), (0x24, 1));
        let error = pitaya_protos::protos::Error::decode(&msg.data[..]).expect("a protos.Error");
        assert_eq!((error.code.as_str(), error.msg.as_str()), ("PIT-499", "fail"));
        assert!(error.metadata.is_empty());

        raw.request(2, "room.join", b"").await;
        let (flag, msg) = raw.flagged_message().await;
        assert_eq!((flag, msg.id, &msg.data[..]), (0x04, 2, &[0x08, 0xc8, 0x01][..]));

        // Errors the framework produces are protobuf too.
        raw.request(3, "room.nope", b"").await;
        let (flag, msg) = raw.flagged_message().await;
        assert_eq!((flag, msg.id), (0x24, 3));
        let error = pitaya_protos::protos::Error::decode(&msg.data[..]).expect("a protos.Error");
        assert_eq!(error.code, "PIT-404");
        assert_eq!(error.msg, "pitaya/handler: connector.room.nope not found");
        server.shutdown().await;
    })
    .await;
}
