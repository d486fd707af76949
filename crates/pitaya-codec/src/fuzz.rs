//! Fuzz entry points, shared by the `cargo fuzz` targets in `fuzz/` and the stable
//! harness that `cargo test` runs (feature `fuzzing`; not a stable API).
//!
//! Each function feeds arbitrary bytes to a decoder and checks invariants that must hold
//! for any input: no panic, and anything that decodes re-encodes to something that
//! decodes to the same value.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::{HandshakeRequest, HandshakeResponse, MessageCodec, PacketDecoder, RouteDict};

/// Splits `data` at an arbitrary point and decodes packets from both halves in turn, as a
/// stream that arrives in two reads.
pub fn packet_stream(data: &[u8]) {
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let (a, b) = data.split_at(split);
    let decoder = PacketDecoder::with_max_body_len(1 << 16);
    let mut buf = BytesMut::new();
    for chunk in [a, b] {
        buf.extend_from_slice(chunk);
        while let Ok(Some(packet)) = decoder.decode(&mut buf) {
            let mut out = BytesMut::new();
            assert!(packet.encode(&mut out).is_ok(), "decoded packets re-encode");
            let again = decoder.decode(&mut out);
            assert_eq!(again, Ok(Some(packet)), "packet round trip");
        }
    }
}

/// Decodes `data` as a message body with a small dictionary, both with and without data
/// compression on the re-encode side.
pub fn message(data: &[u8]) {
    let dict = RouteDict::from_entries([("a", 1), ("room.join", 0x0102), ("onMessage", 0xFFFF)]);
    let Ok(dict) = dict else { return };
    let codec = MessageCodec::new().with_dict(Arc::new(dict)).with_max_inflated_len(1 << 16);
    if let Ok(msg) = codec.decode(Bytes::copy_from_slice(data)) {
        for compress in [false, true] {
            let codec = codec.clone().with_data_compression(compress);
            let mut out = BytesMut::new();
            if codec.encode(&msg, &mut out).is_ok() {
                assert_eq!(codec.decode(out.freeze()).as_ref(), Ok(&msg), "message round trip");
            }
        }
    }
}

/// Decodes `data` as a handshake request and as a handshake response.
pub fn handshake(data: &[u8]) {
    if let Ok(req) = HandshakeRequest::decode(data) {
        assert_eq!(HandshakeRequest::decode(&req.encode()).ok(), Some(req));
    }
    let _ = HandshakeResponse::decode(data, 1 << 16);
}

#[cfg(test)]
mod tests {
    //! The stable fuzz harness: arbtest drives the same entry points as `cargo fuzz`
    //! with random inputs for a bounded time budget on every `cargo test`.

    use super::*;

    const BUDGET_MS: u64 = 400;

    fn run(target: fn(&[u8])) {
        arbtest::arbtest(|u| {
            let len = u.arbitrary_len::<u8>()?;
            target(u.bytes(len)?);
            Ok(())
        })
        .budget_ms(BUDGET_MS);
    }

    #[test]
    fn fuzz_packet_stream() {
        run(packet_stream);
    }

    #[test]
    fn fuzz_message() {
        run(message);
    }

    #[test]
    fn fuzz_handshake() {
        run(handshake);
    }

    #[test]
    fn known_tricky_inputs() {
        for input in [
            &[][..],
            &[0x00, 0x05],
            &[0x01, 0x01],
            &[0x14, 0x01, 0x78, 0x9C],
            &[0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            &[4, 0xFF, 0xFF, 0xFF],
        ] {
            packet_stream(input);
            message(input);
            handshake(input);
        }
    }
}
