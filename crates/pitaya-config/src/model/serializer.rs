//! `pitaya.serializertype`: which serializer encodes client message bodies.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The client-facing serializer, stored by Go as a `uint16` code.
///
/// Reads `1`/`2` as numbers or strings, and also `"json"`/`"protobuf"` in any case. Writes the
/// number, so a dump can be fed back to Go. Go panics at startup on any other code; we reject it
/// while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SerializerType {
    /// Code 1, Go's default.
    #[default]
    Json,
    /// Code 2.
    Protobuf,
}

impl SerializerType {
    /// Go's numeric code for this serializer.
    pub fn code(self) -> u16 {
        match self {
            Self::Json => 1,
            Self::Protobuf => 2,
        }
    }

    /// The serializer for a Go code, `None` for codes Go does not know.
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            1 => Some(Self::Json),
            2 => Some(Self::Protobuf),
            _ => None,
        }
    }
}

impl Serialize for SerializerType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.code())
    }
}

impl<'de> Deserialize<'de> for SerializerType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SerializerTypeVisitor)
    }
}

struct SerializerTypeVisitor;

const EXPECTED: &str = "1 (json) or 2 (protobuf)";

impl Visitor<'_> for SerializerTypeVisitor {
    type Value = SerializerType;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SerializerType, E> {
        SerializerType::from_code(v)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &EXPECTED))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<SerializerType, E> {
        u64::try_from(v)
            .ok()
            .and_then(SerializerType::from_code)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &EXPECTED))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SerializerType, E> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("json") {
            return Ok(SerializerType::Json);
        }
        if v.eq_ignore_ascii_case("protobuf") {
            return Ok(SerializerType::Protobuf);
        }
        v.parse::<u64>()
            .ok()
            .and_then(SerializerType::from_code)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &EXPECTED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<SerializerType, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn reads_codes_and_names() {
        assert_eq!(read("1").unwrap(), SerializerType::Json);
        assert_eq!(read("2").unwrap(), SerializerType::Protobuf);
        assert_eq!(read("\"2\"").unwrap(), SerializerType::Protobuf);
        assert_eq!(read("\"JSON\"").unwrap(), SerializerType::Json);
        assert_eq!(read("\"protobuf\"").unwrap(), SerializerType::Protobuf);
        assert!(read("3").is_err());
        assert!(read("-1").is_err());
        assert!(read("\"xml\"").is_err());
    }

    #[test]
    fn writes_the_go_code() {
        assert_eq!(serde_json::to_string(&SerializerType::Protobuf).unwrap(), "2");
    }
}
