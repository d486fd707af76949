//! Session data as it travels between servers (spec §8.2): a JSON object with sorted
//! keys, always JSON whatever the client serializer.
//!
//! Go encodes `map[string]interface{}`: byte slices become base64 strings, structs become
//! objects of their exported fields, and receivers decode numbers as float64. The literal
//! `null` is a valid encoding of an empty map (a session whose data was pushed as nil).

use base64::Engine;
use serde_json::{Map, Value};

use crate::{SerializeError, gojson};

/// Session data: a JSON object whose keys iterate (and encode) in sorted order.
pub type SessionData = Map<String, Value>;

/// Encodes session data as Go does: compact, sorted keys, Go's escaping.
pub fn encode(data: &SessionData) -> Vec<u8> {
    // A map of JSON values always encodes.
    gojson::to_vec(data).unwrap_or_default()
}

/// Decodes session data; `null` and an empty input mean no data.
///
/// # Errors
/// [`SerializeError::Decode`] for invalid JSON or JSON that is not an object.
pub fn decode(bytes: &[u8]) -> Result<SessionData, SerializeError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(SessionData::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(SessionData::new()),
        Ok(other) => Err(SerializeError::Decode(format!(
            "session data must be a json object, got {}",
            kind_of(&other)
        ))),
        Err(e) => Err(SerializeError::Decode(e.to_string())),
    }
}

/// A byte string as Go stores it in session data: standard base64.
pub fn bytes_value(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Reads back a value stored with [`bytes_value`] (or by a Go server from a `[]byte`).
pub fn value_bytes(value: &Value) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(value.as_str()?).ok()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_empty_are_no_data() {
        assert_eq!(decode(b"null"), Ok(SessionData::new()));
        assert_eq!(decode(b""), Ok(SessionData::new()));
        assert_eq!(decode(b"{}"), Ok(SessionData::new()));
        assert!(decode(b"[1]").is_err());
        assert!(decode(b"{").is_err());
    }

    #[test]
    fn keys_are_sorted_on_encode() {
        let mut d = SessionData::new();
        d.insert("z".into(), Value::from(1));
        d.insert("ipversion".into(), Value::from("ipv4"));
        assert_eq!(encode(&d), br#"{"ipversion":"ipv4","z":1}"#);
    }

    #[test]
    fn bytes_round_trip() {
        let v = bytes_value(&[1, 2, 255]);
        assert_eq!(value_bytes(&v), Some(vec![1, 2, 255]));
        assert_eq!(value_bytes(&Value::from(3)), None);
    }
}
