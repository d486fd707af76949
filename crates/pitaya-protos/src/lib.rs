//! Protobuf messages of the Pitaya cluster protocol, generated from `proto/` at build time
//! with protox and prost (no system `protoc` needed).
//!
//! **Layer:** foundation (the table in `xtask/src/layers.rs`): may depend on no other
//! workspace crate.
//!
//! - [`protos`]: package `protos`, the messages servers exchange over NATS and gRPC
//!   (`Request`, `Response`, `Error`, `Push`, ...), with Go Pitaya's field numbers.
//! - [`mod@test`]: package `test`, the messages of Go Pitaya's fixtures and conformance server.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of both, for tools that speak
//!   protobuf by reflection.

/// Package `protos` (spec §6.4).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod protos {
    include!(concat!(env!("OUT_DIR"), "/protos.rs"));
}

/// Package `test` of Go Pitaya's tests.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod test {
    include!(concat!(env!("OUT_DIR"), "/test.rs"));
}

/// Encoded `google.protobuf.FileDescriptorSet` of every file in `proto/`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::protos::{Error, Response};

    #[test]
    fn error_metadata_uses_the_map_encoding() {
        let e = Error {
            code: String::new(),
            msg: String::new(),
            metadata: [("some".to_owned(), "meta".to_owned())].into(),
        };
        assert_eq!(
            e.encode_to_vec(),
            [0x1a, 0x0c, 0x0a, 0x04, b's', b'o', b'm', b'e', 0x12, 0x04, b'm', b'e', b't', b'a']
        );
    }

    #[test]
    fn notify_ack_reply() {
        let r = Response { data: prost::bytes::Bytes::from_static(b"ack"), error: None };
        assert_eq!(r.encode_to_vec(), [0x0a, 0x03, b'a', b'c', b'k']);
    }

    #[test]
    fn descriptor_set_decodes() {
        let fds = prost_types_free_check(super::FILE_DESCRIPTOR_SET);
        assert!(fds > 0);
    }

    /// Counts the `file` entries (field 1) of the descriptor set without prost-types.
    fn prost_types_free_check(bytes: &[u8]) -> usize {
        #[derive(Clone, PartialEq, prost::Message)]
        struct Set {
            #[prost(bytes = "vec", repeated, tag = "1")]
            file: Vec<Vec<u8>>,
        }
        Set::decode(bytes).unwrap().file.len()
    }
}
