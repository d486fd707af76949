//! Serializers for Pitaya payloads: JSON and protobuf, named as Pitaya names them in the
//! handshake (`"json"`, `"protobuf"`).
//!
//! **Layer:** serialization (the table in `xtask/src/layers.rs`): may depend on crates of
//! the foundation layer.
//!
//! # Layout
//! - [`Serializer`]: the object-safe part every serializer offers (name, error payloads);
//!   [`Marshal`] / [`Unmarshal`] add typed encoding for the types a serializer supports.
//! - [`Json`]: serde types, written byte for byte as Go's `encoding/json` writes them
//!   ([`gojson`]).
//! - [`Protobuf`]: prost messages.
//! - [`ErrorPayload`]: the body of an error response (spec §2.5).
//! - [`session_data`]: the JSON of session data carried between servers (spec §8.2).
//!
//! Handlers pick their payload type statically (`Json<T>`, `Proto<T>`, raw bytes); the
//! app-wide [`SerializerKind`] decides what the handshake announces and how errors are
//! encoded.

pub mod error_payload;
pub mod gojson;
mod json;
mod protobuf;
pub mod session_data;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use error_payload::ErrorPayload;
pub use json::Json;
pub use protobuf::Protobuf;

/// What every serializer offers, whatever the payload types.
pub trait Serializer: fmt::Debug + Send + Sync + 'static {
    /// The name sent in the handshake's `sys.serializer`.
    fn name(&self) -> &'static str;

    /// Which serializer this is.
    fn kind(&self) -> SerializerKind;

    /// Encodes the body of an error response (spec §2.5).
    fn encode_error(&self, error: &ErrorPayload) -> Vec<u8>;

    /// Decodes the body of an error response.
    ///
    /// # Errors
    /// [`SerializeError::Decode`] when `data` is not an error payload of this format.
    fn decode_error(&self, data: &[u8]) -> Result<ErrorPayload, SerializeError>;
}

/// Typed encoding of `T` by a serializer that supports it.
pub trait Marshal<T: ?Sized>: Serializer {
    /// Encodes `value`.
    ///
    /// # Errors
    /// [`SerializeError::Encode`] when the value cannot be represented (for JSON, a map
    /// with non-string keys, say).
    fn marshal(&self, value: &T) -> Result<Vec<u8>, SerializeError>;
}

/// Typed decoding of `T` by a serializer that supports it.
pub trait Unmarshal<T>: Serializer {
    /// Decodes a value.
    ///
    /// # Errors
    /// [`SerializeError::Decode`] with the decoder's own text, which Pitaya sends to the
    /// client with `PIT-400`.
    fn unmarshal(&self, data: &[u8]) -> Result<T, SerializeError>;
}

/// The serializers Pitaya knows, as chosen by `pitaya.serializertype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializerKind {
    /// `"json"`, config value 1 (the default).
    #[default]
    Json,
    /// `"protobuf"`, config value 2.
    Protobuf,
}

impl SerializerKind {
    /// The handshake name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Protobuf => "protobuf",
        }
    }

    /// From Go Pitaya's numeric config value (1 = JSON, 2 = protobuf).
    pub fn from_config_number(value: u32) -> Option<Self> {
        match value {
            1 => Some(Self::Json),
            2 => Some(Self::Protobuf),
            _ => None,
        }
    }

    /// A shared instance of the serializer.
    pub fn serializer(self) -> Arc<dyn Serializer> {
        match self {
            Self::Json => Arc::new(Json),
            Self::Protobuf => Arc::new(Protobuf),
        }
    }
}

impl fmt::Display for SerializerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SerializerKind {
    type Err = SerializeError;

    /// Accepts the names (`json`, `protobuf`) and Go's config numbers (`1`, `2`).
    fn from_str(s: &str) -> Result<Self, SerializeError> {
        match s.trim() {
            "json" | "1" => Ok(Self::Json),
            "protobuf" | "2" => Ok(Self::Protobuf),
            other => Err(SerializeError::UnknownSerializer(other.to_owned())),
        }
    }
}

/// Why a value could not be serialized or deserialized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerializeError {
    /// The value could not be encoded.
    #[error("{0}")]
    Encode(String),
    /// The bytes could not be decoded; the text is the decoder's.
    #[error("{0}")]
    Decode(String),
    /// A serializer name or number that Pitaya does not know.
    #[error("unknown serializer {0:?}: expected json (1) or protobuf (2)")]
    UnknownSerializer(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_name_and_number() {
        assert_eq!("json".parse(), Ok(SerializerKind::Json));
        assert_eq!("2".parse(), Ok(SerializerKind::Protobuf));
        assert!("xml".parse::<SerializerKind>().is_err());
        assert_eq!(SerializerKind::from_config_number(1), Some(SerializerKind::Json));
        assert_eq!(SerializerKind::from_config_number(3), None);
        assert_eq!(SerializerKind::Protobuf.serializer().name(), "protobuf");
        assert_eq!(SerializerKind::Json.serializer().kind(), SerializerKind::Json);
    }
}
