//! Property tests: round trips over arbitrary values, and arbitrary bytes never panic.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pitaya_codec::{
    HandshakeRequest, HandshakeResponse, Message, MessageCodec, MessageType, Packet, PacketDecoder,
    PacketType, Route, RouteDict,
};
use proptest::prelude::*;

const DICT_ROUTES: [&str; 3] = ["room.join", "onMessage", "connector.entry.enter"];

fn codec(compress: bool) -> MessageCodec {
    let dict =
        RouteDict::from_entries(DICT_ROUTES.iter().copied().zip([1, 0x0203, u16::MAX])).unwrap();
    MessageCodec::new().with_dict(Arc::new(dict)).with_data_compression(compress)
}

fn packet_type() -> impl Strategy<Value = PacketType> {
    prop_oneof![
        Just(PacketType::Handshake),
        Just(PacketType::HandshakeAck),
        Just(PacketType::Heartbeat),
        Just(PacketType::Data),
        Just(PacketType::Kick),
    ]
}

fn message_type() -> impl Strategy<Value = MessageType> {
    prop_oneof![
        Just(MessageType::Request),
        Just(MessageType::Notify),
        Just(MessageType::Response),
        Just(MessageType::Push),
    ]
}

fn route() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(DICT_ROUTES.to_vec()).prop_map(str::to_owned),
        // Any UTF-8 up to 255 bytes: the codec carries routes, it does not parse them.
        proptest::string::string_regex("(?s).{0,80}")
            .unwrap()
            .prop_filter("fits in one length byte", |r| r.len() <= 255),
    ]
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        // Repetitive data, so that compression actually kicks in.
        (any::<u8>(), 0usize..2048).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (message_type(), any::<u64>(), route(), data(), any::<bool>()).prop_map(
        |(kind, id, route, data, error)| Message {
            kind,
            id: if kind.has_id() { id } else { 0 },
            route: if kind.has_route() { route } else { String::new() },
            data: data.into(),
            error,
        },
    )
}

proptest! {
    #[test]
    fn packets_round_trip_across_any_split(
        packets in proptest::collection::vec((packet_type(), proptest::collection::vec(any::<u8>(), 0..300)), 1..5),
        split in any::<prop::sample::Index>(),
    ) {
        let mut wire = BytesMut::new();
        let packets: Vec<Packet> = packets.into_iter().map(|(k, b)| Packet::new(k, b)).collect();
        for p in &packets {
            p.encode(&mut wire).unwrap();
        }
        let at = split.index(wire.len() + 1);
        let (first, second) = wire.split_at(at);
        let decoder = PacketDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in [first, second] {
            buf.extend_from_slice(chunk);
            while let Some(p) = decoder.decode(&mut buf).unwrap() {
                out.push(p);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, packets);
    }

    #[test]
    fn messages_round_trip(msg in message(), compress in any::<bool>()) {
        let codec = codec(compress);
        let mut wire = BytesMut::new();
        codec.encode_packet(&msg, &mut wire).unwrap();
        let packet = PacketDecoder::default().decode(&mut wire).unwrap().unwrap();
        prop_assert_eq!(packet.kind, PacketType::Data);
        prop_assert_eq!(codec.decode(packet.body).unwrap(), msg);
    }

    #[test]
    fn routes_reparse_to_themselves(s in "[a-zA-Z. ]{0,20}") {
        if let Ok(route) = Route::parse(&s) {
            prop_assert_eq!(Route::parse(&route.to_string()).unwrap(), route.clone());
            prop_assert!(s.ends_with(&route.short()));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut buf = BytesMut::from(&bytes[..]);
        let decoder = PacketDecoder::with_max_body_len(4096);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        let _ = Packet::from_frame(Bytes::from(bytes.clone()), 4096);
        let _ = codec(false).decode(Bytes::from(bytes.clone()));
        let _ = HandshakeRequest::decode(&bytes);
        let _ = HandshakeResponse::decode(&bytes, 4096);
        let _ = Route::parse(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_message_bodies_never_panic(
        flag in any::<u8>(),
        rest in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        // Biased towards valid flag bytes, which reach deeper into the decoder than noise.
        let mut body = vec![flag & 0x37];
        body.extend(rest);
        let _ = codec(false).decode(Bytes::from(body));
    }
}
