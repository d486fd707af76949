//! Durations written with a unit, as specs and flags take them: `250ms`, `2s`, `1.5m`.

use std::time::Duration;

/// Parses `NUMBER UNIT` with unit `us`, `ms`, `s`, `m` or `h` (spaces allowed between).
///
/// A bare number is refused: `wait: 5` could mean seconds or milliseconds (Go's
/// pitaya-bot took milliseconds), so specs must say which.
///
/// # Errors
/// A description of what is wrong, for the spec error message.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 =
        number.parse().map_err(|_| format!("{text:?} is not a duration like 500ms or 2s"))?;
    let seconds_per_unit = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("{text:?} needs a unit: us, ms, s, m or h")),
        other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(number * seconds_per_unit)
        .map_err(|_| format!("{text:?} is out of range"))
}

/// Serde adapter for optional duration strings.
pub(crate) mod opt_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => super::parse_duration(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration(" 1.5 m "), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn rejections() {
        for bad in ["", "5", "s", "1x", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
