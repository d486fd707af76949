//! Serde adapter for `std::time::Duration` written as a Go duration string.
//!
//! Use it as `#[serde(with = "pitaya_config::serde_go_duration")]`. Serializing writes
//! [`godur::format`] output (`"1m30s"`). Deserializing accepts what Pitaya's viper setup accepts:
//!
//! | input | result | Go reference |
//! |---|---|---|
//! | `"1m30s"`, `"300ms"`, `"0"` | [`godur::parse`] | `time.ParseDuration` |
//! | `"1500"` (no unit letter) | 1500 ns | `cast.ToDuration` appends `"ns"` |
//! | integer `1500` | 1500 ns | `time.Duration(int64)` |
//! | float `1.9` | 1 ns (truncated) | `time.Duration(float64)` |
//!
//! Pitaya v3's `UnmarshalKey` decodes strings with mapstructure's `StringToTimeDurationHookFunc`,
//! which is plain `time.ParseDuration` and rejects `"1500"`. We follow `cast.ToDuration` (v2's
//! `GetDuration`) because it accepts a superset and never changes the meaning of text v3 accepts.
//!
//! Negative values and values above [`godur::MAX`] are errors. The input must come from a
//! self-describing format (figment, JSON, TOML), since the value's type decides how it is read.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserializer, Serializer};

use crate::godur;

/// Writes `duration` as Go's `Duration.String()` text.
///
/// # Errors
/// Only those of the serializer itself.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&godur::format(*duration))
}

/// Reads a Go duration string or a number of nanoseconds (see the module table).
///
/// # Errors
/// A deserializer error carrying Go's text (`time: invalid duration "abc"`) for bad strings, or
/// an invalid-value error for negative, non-finite or out-of-range numbers.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(GoDurationVisitor)
}

struct GoDurationVisitor;

const EXPECTED: &str = "a Go duration such as \"1m30s\" or a non-negative number of nanoseconds";

impl Visitor<'_> for GoDurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        godur::parse_viper(text).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, nanos: u64) -> Result<Duration, E> {
        if u128::from(nanos) > godur::MAX.as_nanos() {
            return Err(E::invalid_value(Unexpected::Unsigned(nanos), &EXPECTED));
        }
        Ok(Duration::from_nanos(nanos))
    }

    fn visit_i64<E: de::Error>(self, nanos: i64) -> Result<Duration, E> {
        u64::try_from(nanos)
            .map_err(|_| E::invalid_value(Unexpected::Signed(nanos), &EXPECTED))
            .and_then(|n| self.visit_u64(n))
    }

    fn visit_u128<E: de::Error>(self, nanos: u128) -> Result<Duration, E> {
        u64::try_from(nanos)
            .map_err(|_| E::invalid_value(Unexpected::Other("a 128-bit integer"), &EXPECTED))
            .and_then(|n| self.visit_u64(n))
    }

    fn visit_i128<E: de::Error>(self, nanos: i128) -> Result<Duration, E> {
        u64::try_from(nanos)
            .map_err(|_| E::invalid_value(Unexpected::Other("a 128-bit integer"), &EXPECTED))
            .and_then(|n| self.visit_u64(n))
    }

    fn visit_f64<E: de::Error>(self, nanos: f64) -> Result<Duration, E> {
        // Go converts float64 to Duration by truncating toward zero.
        let whole = nanos.trunc();
        if !whole.is_finite() || whole < 0.0 || whole >= godur::MAX.as_nanos() as f64 {
            return Err(E::invalid_value(Unexpected::Float(nanos), &EXPECTED));
        }
        Ok(Duration::from_nanos(whole as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "crate::serde_go_duration")]
        d: Duration,
    }

    fn read(json: &str) -> Result<Duration, serde_json::Error> {
        serde_json::from_str::<Holder>(json).map(|h| h.d)
    }

    #[test]
    fn reads_strings_and_numbers() {
        assert_eq!(read(r#"{"d":"1m30s"}"#).unwrap(), Duration::from_secs(90));
        assert_eq!(read(r#"{"d":"0"}"#).unwrap(), Duration::ZERO);
        assert_eq!(read(r#"{"d":"1500"}"#).unwrap(), Duration::from_nanos(1500));
        assert_eq!(read(r#"{"d":1500}"#).unwrap(), Duration::from_nanos(1500));
        assert_eq!(read(r#"{"d":1.9}"#).unwrap(), Duration::from_nanos(1));
        assert_eq!(read(r#"{"d":9223372036854775807}"#).unwrap(), godur::MAX);
    }

    #[test]
    fn rejects_bad_values_with_go_text() {
        let err = read(r#"{"d":"abc"}"#).unwrap_err().to_string();
        assert!(err.starts_with(r#"time: invalid duration "abcns""#), "{err}");
        assert!(read(r#"{"d":"1d"}"#).unwrap_err().to_string().contains("unknown unit"));
        assert!(read(r#"{"d":"-1s"}"#).unwrap_err().to_string().contains("negative"));
        assert!(read(r#"{"d":-1}"#).is_err());
        assert!(read(r#"{"d":-1.5}"#).is_err());
        assert!(read(r#"{"d":9223372036854775808}"#).is_err());
        assert!(read(r#"{"d":1e300}"#).is_err());
        assert!(read(r#"{"d":true}"#).is_err());
    }

    #[test]
    fn writes_go_strings_and_round_trips() {
        for d in [Duration::ZERO, Duration::from_millis(300), Duration::from_secs(3600)] {
            let json = serde_json::to_string(&Holder { d }).unwrap();
            assert_eq!(read(&json).unwrap(), d);
        }
        let json = serde_json::to_string(&Holder { d: Duration::from_nanos(1500) }).unwrap();
        assert_eq!(json, "{\"d\":\"1.5\u{b5}s\"}");
    }
}
