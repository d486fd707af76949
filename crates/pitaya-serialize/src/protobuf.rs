//! The protobuf serializer.

use pitaya_protos::protos;

use crate::{ErrorPayload, Marshal, SerializeError, Serializer, SerializerKind, Unmarshal};

/// Protobuf through prost. Errors are `protos.Error` messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Protobuf;

impl Serializer for Protobuf {
    fn name(&self) -> &'static str {
        SerializerKind::Protobuf.name()
    }

    fn kind(&self) -> SerializerKind {
        SerializerKind::Protobuf
    }

    fn encode_error(&self, error: &ErrorPayload) -> Vec<u8> {
        prost::Message::encode_to_vec(&protos::Error::from(error.clone()))
    }

    fn decode_error(&self, data: &[u8]) -> Result<ErrorPayload, SerializeError> {
        <Self as Unmarshal<protos::Error>>::unmarshal(self, data).map(ErrorPayload::from)
    }
}

impl<T: prost::Message> Marshal<T> for Protobuf {
    fn marshal(&self, value: &T) -> Result<Vec<u8>, SerializeError> {
        Ok(value.encode_to_vec())
    }
}

impl<T: prost::Message + Default> Unmarshal<T> for Protobuf {
    fn unmarshal(&self, data: &[u8]) -> Result<T, SerializeError> {
        T::decode(data).map_err(|e| SerializeError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_protos_error() {
        let e = ErrorPayload::new("PIT-433", "test error").with_metadata("some", "meta");
        let bytes = Protobuf.encode_error(&e);
        let mut expected = vec![0x0a, 0x07];
        expected.extend(b"PIT-433");
        expected.extend([0x12, 0x0a]);
        expected.extend(b"test error");
        expected.extend([0x1a, 0x0c, 0x0a, 0x04]);
        expected.extend(b"some");
        expected.extend([0x12, 0x04]);
        expected.extend(b"meta");
        assert_eq!(bytes, expected);
        assert_eq!(Protobuf.decode_error(&bytes), Ok(e));
        assert!(Protobuf.decode_error(&[0x0a, 0x05, b'x']).is_err());
    }
}
