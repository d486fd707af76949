//! The JSON serializer.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ErrorPayload, Marshal, SerializeError, Serializer, SerializerKind, Unmarshal, gojson};

/// JSON through serde, written as Go's `encoding/json` writes it (see [`gojson`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json;

impl Serializer for Json {
    fn name(&self) -> &'static str {
        SerializerKind::Json.name()
    }

    fn kind(&self) -> SerializerKind {
        SerializerKind::Json
    }

    fn encode_error(&self, error: &ErrorPayload) -> Vec<u8> {
        // Strings and a string map always encode.
        gojson::to_vec(error).unwrap_or_default()
    }

    fn decode_error(&self, data: &[u8]) -> Result<ErrorPayload, SerializeError> {
        self.unmarshal(data)
    }
}

impl<T: Serialize + ?Sized> Marshal<T> for Json {
    fn marshal(&self, value: &T) -> Result<Vec<u8>, SerializeError> {
        gojson::to_vec(value).map_err(|e| SerializeError::Encode(e.to_string()))
    }
}

impl<T: DeserializeOwned> Unmarshal<T> for Json {
    fn unmarshal(&self, data: &[u8]) -> Result<T, SerializeError> {
        serde_json::from_slice(data).map_err(|e| SerializeError::Decode(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_match_go() {
        let e = ErrorPayload::new("PIT-404", "route not found")
            .with_metadata("route", "testremotesvc.rpctestnotfound");
        assert_eq!(
            Json.encode_error(&e),
            br#"{"code":"PIT-404","msg":"route not found","metadata":{"route":"testremotesvc.rpctestnotfound"}}"#
        );
        let e = ErrorPayload::new("PIT-000", "reply must not be null");
        assert_eq!(Json.encode_error(&e), br#"{"code":"PIT-000","msg":"reply must not be null"}"#);
        let e = ErrorPayload::new("PIT-433", "test error").with_metadata("some", "meta");
        assert_eq!(
            Json.encode_error(&e),
            br#"{"code":"PIT-433","msg":"test error","metadata":{"some":"meta"}}"#
        );
        assert_eq!(Json.encode_error(&ErrorPayload::default()), b"{}");
        let sorted = ErrorPayload::new("", "x").with_metadata("z", "1").with_metadata("a", "2");
        assert_eq!(Json.encode_error(&sorted), br#"{"msg":"x","metadata":{"a":"2","z":"1"}}"#);
    }

    #[test]
    fn error_bodies_decode() {
        let e = Json.decode_error(br#"{"code":"PIT-408","msg":"rpc client: request timeout","metadata":{"peer.id":"p","route":"r","server":"s","timeout":"5s"}}"#).unwrap();
        assert_eq!(e.code, "PIT-408");
        assert_eq!(e.metadata["timeout"], "5s");
        assert!(Json.decode_error(b"not json").is_err());
    }

    #[test]
    fn typed_round_trip() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct Reply {
            code: i32,
            msg: String,
        }
        let r = Reply { code: 200, msg: "hello".into() };
        let bytes = Json.marshal(&r).unwrap();
        assert_eq!(bytes, br#"{"code":200,"msg":"hello"}"#);
        assert_eq!(Json.unmarshal(&bytes), Ok(r));
        let err = <Json as Unmarshal<Reply>>::unmarshal(&Json, b"{\"code\":\"x\"}").unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }
}
