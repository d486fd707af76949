//! Go duration strings (`"300ms"`, `"1m30s"`), parsed and printed as Go's `time` package does.
//!
//! Pitaya writes durations as Go strings in its configuration and on the wire: the `reqTimeout`
//! key of the propagated RPC context is `Duration.String()` output (spec §6.3, §6.5), and a peer
//! that cannot parse it answers `time: invalid duration "..."`. [`parse`] and [`format()`] follow
//! `time.ParseDuration` and `Duration.String()` so that both directions agree with Go byte for
//! byte, including the error texts.
//!
//! `std::time::Duration` cannot be negative, so a negative Go duration is an error here
//! ([`ParseDurationError::Negative`]). Nothing in Pitaya's configuration or wire format uses one.

use std::fmt::Write as _;
use std::time::Duration;

/// Go's largest duration, `math.MaxInt64` nanoseconds (about 292 years).
pub const MAX: Duration = Duration::from_nanos(i64::MAX as u64);

/// Why a string is not a Go duration.
///
/// Display texts are Go's own (`time: invalid duration "abc"`), so they can be sent back to Go
/// peers unchanged; only [`ParseDurationError::Negative`] has no Go counterpart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseDurationError {
    /// The text does not follow the `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` grammar.
    #[error("time: invalid duration {}", quote(.input))]
    Invalid {
        /// The rejected text.
        input: String,
    },
    /// A number is not followed by a unit (`"10"`); Go accepts a bare `"0"` only.
    #[error("time: missing unit in duration {}", quote(.input))]
    MissingUnit {
        /// The rejected text.
        input: String,
    },
    /// A unit other than ns, us, µs, μs, ms, s, m or h.
    #[error("time: unknown unit {} in duration {}", quote(.unit), quote(.input))]
    UnknownUnit {
        /// The unrecognised unit.
        unit: String,
        /// The rejected text.
        input: String,
    },
    /// The value exceeds [`MAX`]. Go reports this as an invalid duration, and so does Display.
    #[error("time: invalid duration {}", quote(.input))]
    Overflow {
        /// The rejected text.
        input: String,
    },
    /// A valid Go duration below zero, which `std::time::Duration` cannot hold.
    #[error("negative duration {} is not supported", quote(.input))]
    Negative {
        /// The rejected text.
        input: String,
    },
}

/// Parses a Go duration string exactly as `time.ParseDuration` does.
///
/// Accepts an optional sign, then one or more `<number><unit>` parts with decimal fractions
/// (`"1.5h"`, `"1h30m"`, `".5s"`), units ns, us, µs (U+00B5), μs (U+03BC), ms, s, m and h, and
/// the bare `"0"`. Fractions below one nanosecond are truncated, as in Go.
///
/// # Errors
/// [`ParseDurationError`] for text Go rejects, for values above [`MAX`], and for negative
/// values (`"-0s"` is zero and accepted).
pub fn parse(input: &str) -> Result<Duration, ParseDurationError> {
    let (negative, body) = match input.as_bytes().first() {
        Some(b'-') => (true, input.get(1..).unwrap_or_default()),
        Some(b'+') => (false, input.get(1..).unwrap_or_default()),
        _ => (false, input),
    };
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() {
        return Err(ParseDurationError::Invalid { input: input.to_owned() });
    }
    let invalid = || ParseDurationError::Invalid { input: input.to_owned() };
    let overflow = || ParseDurationError::Overflow { input: input.to_owned() };

    let mut total: u64 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, after_whole) = leading_int(rest).ok_or_else(invalid)?;
        let had_whole = after_whole.len() != rest.len();
        rest = after_whole;

        let mut fraction = Fraction { digits: 0, scale: 1.0 };
        let mut had_fraction = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (parsed, after_fraction) = leading_fraction(after_dot);
            had_fraction = after_fraction.len() != after_dot.len();
            fraction = parsed;
            rest = after_fraction;
        }
        if !had_whole && !had_fraction {
            return Err(invalid());
        }

        // The unit runs up to the next number; '.' and digits are ASCII, so the split index
        // is a char boundary.
        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(ParseDurationError::MissingUnit { input: input.to_owned() });
        }
        let (unit, after_unit) = rest.split_at_checked(unit_len).ok_or_else(invalid)?;
        rest = after_unit;
        let nanos_per_unit = unit_nanos(unit).ok_or_else(|| ParseDurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;

        if whole > GO_LIMIT / nanos_per_unit {
            return Err(overflow());
        }
        let mut part = whole * nanos_per_unit;
        if fraction.digits > 0 {
            // Go scales the fraction in float64; doing the same keeps sub-nanosecond
            // truncation identical (e.g. "1.0000000005s").
            let extra = (fraction.digits as f64 * (nanos_per_unit as f64 / fraction.scale)) as u64;
            part = part.checked_add(extra).ok_or_else(overflow)?;
            if part > GO_LIMIT {
                return Err(overflow());
            }
        }
        // Go adds in uint64 and can wrap at 2^64; checked addition reports that as overflow.
        total = total.checked_add(part).filter(|t| *t <= GO_LIMIT).ok_or_else(overflow)?;
    }

    if negative {
        return if total == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(ParseDurationError::Negative { input: input.to_owned() })
        };
    }
    if total > GO_LIMIT - 1 {
        return Err(overflow());
    }
    Ok(Duration::from_nanos(total))
}

/// Parses a duration the way viper's `cast.ToDuration` reads a string.
///
/// When the text contains none of the letters `n s u µ m h`, cast appends `"ns"` before calling
/// `time.ParseDuration`, so `"1500"` is 1500 ns and `"1.9"` is 1 ns. Anything else goes to
/// [`parse`] unchanged. This is how `GetDuration` and Pitaya v2 read environment variables.
///
/// # Errors
/// As [`parse`]; the reported input includes the appended `"ns"`, as in Go.
pub fn parse_viper(input: &str) -> Result<Duration, ParseDurationError> {
    if input.contains(['n', 's', 'u', 'µ', 'm', 'h']) {
        parse(input)
    } else {
        parse(&format!("{input}ns"))
    }
}

/// Formats a duration as Go's `Duration.String()`: `"0s"`, `"100ns"`, `"1.5µs"`, `"300ms"`,
/// `"1.5s"`, `"1m30s"`, `"1h0m0s"`.
///
/// Sub-second values use the largest unit below one second, with µ as U+00B5; longer values
/// are `[<h>h][<m>m]<s>[.<frac>]s` with trailing fraction zeros dropped. Values above [`MAX`],
/// which Go cannot represent, are written with the same rules (and [`parse`] rejects them).
pub fn format(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    let mut out = String::new();
    if nanos == 0 {
        out.push_str("0s");
    } else if nanos < 1_000 {
        let _ = write!(out, "{nanos}ns");
    } else if nanos < 1_000_000 {
        push_fraction(&mut out, nanos, 3);
        out.push_str("µs");
    } else if nanos < 1_000_000_000 {
        push_fraction(&mut out, nanos, 6);
        out.push_str("ms");
    } else {
        let seconds = nanos / 1_000_000_000;
        let (minutes, hours) = (seconds / 60 % 60, seconds / 3600);
        if hours > 0 {
            let _ = write!(out, "{hours}h{minutes}m");
        } else if minutes > 0 {
            let _ = write!(out, "{minutes}m");
        }
        push_fraction(&mut out, nanos % 60_000_000_000, 9);
        out.push('s');
    }
    out
}

/// Go's bound on intermediate sums, `1 << 63`; final values must stay below it.
const GO_LIMIT: u64 = 1 << 63;

/// Digits after the decimal point, scaled as `digits / scale`.
struct Fraction {
    digits: u64,
    scale: f64,
}

/// Consumes leading ASCII digits; `None` when the number exceeds `1 << 63`.
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at_checked(end)?;
    let mut value: u64 = 0;
    for digit in digits.bytes() {
        value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
        if value > GO_LIMIT {
            return None;
        }
    }
    Some((value, rest))
}

/// Consumes leading ASCII digits of a fraction; digits past 63 bits of precision are read but
/// ignored, as in Go.
fn leading_fraction(s: &str) -> (Fraction, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, rest) = s.split_at_checked(end).unwrap_or((s, ""));
    let mut fraction = Fraction { digits: 0, scale: 1.0 };
    let mut saturated = false;
    for digit in digits.bytes() {
        if saturated {
            continue;
        }
        match fraction.digits.checked_mul(10).map(|v| v + u64::from(digit - b'0')) {
            Some(next) if next <= GO_LIMIT && fraction.digits <= (GO_LIMIT - 1) / 10 => {
                fraction.digits = next;
                fraction.scale *= 10.0;
            }
            _ => saturated = true,
        }
    }
    (fraction, rest)
}

/// Nanoseconds per Go unit name.
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // Go accepts both micro sign U+00B5 and Greek mu U+03BC.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Writes `value / 10^precision` with the fraction's trailing zeros (and a bare '.') removed.
fn push_fraction(out: &mut String, value: u128, precision: u32) {
    let divisor = 10u128.pow(precision);
    let _ = write!(out, "{}", value / divisor);
    let fraction = value % divisor;
    if fraction != 0 {
        let digits = format!("{fraction:0width$}", width = precision as usize);
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// Quotes as Go's `time` package does in its errors: printable ASCII verbatim with `"` and `\`
/// escaped, every byte of other characters as `\xNN`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c.is_ascii() && c >= ' ' {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn parses_go_examples() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("-0s", Duration::ZERO),
            ("300ms", ms(300)),
            ("1.5s", ms(1500)),
            ("1m30s", Duration::from_secs(90)),
            ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
            ("1h0m0s", Duration::from_secs(3600)),
            ("5s", Duration::from_secs(5)),
            ("+5s", Duration::from_secs(5)),
            ("100ns", Duration::from_nanos(100)),
            ("1us", Duration::from_micros(1)),
            ("1\u{b5}s", Duration::from_micros(1)),
            ("1\u{3bc}s", Duration::from_micros(1)),
            ("1.5\u{b5}s", Duration::from_nanos(1500)),
            (".5s", ms(500)),
            ("5.s", Duration::from_secs(5)),
            ("1.0000000005s", Duration::from_nanos(1_000_000_000)),
            ("0.3333333333333333333h", Duration::from_nanos(1_200_000_000_000)),
            ("3h30m10s", Duration::from_secs(3 * 3600 + 30 * 60 + 10)),
            ("1h1h", Duration::from_secs(7200)),
            ("9223372036854775807ns", MAX),
            ("9223372036.854775807s", MAX),
            ("2562047h47m16.854775807s", MAX),
            ("0.100000000000000000000h", Duration::from_secs(360)),
            ("0.830103483285477580700h", Duration::from_nanos(2_988_372_539_827)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_what_go_rejects_with_go_messages() {
        let cases: &[(&str, &str)] = &[
            ("", r#"time: invalid duration """#),
            ("abc", r#"time: invalid duration "abc""#),
            ("3", r#"time: missing unit in duration "3""#),
            ("-", r#"time: invalid duration "-""#),
            ("s", r#"time: invalid duration "s""#),
            (".", r#"time: invalid duration ".""#),
            ("-.", r#"time: invalid duration "-.""#),
            (".s", r#"time: invalid duration ".s""#),
            ("+.s", r#"time: invalid duration "+.s""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("3000000h", r#"time: invalid duration "3000000h""#),
            ("9223372036854775808ns", r#"time: invalid duration "9223372036854775808ns""#),
            ("9223372036854775.808us", r#"time: invalid duration "9223372036854775.808us""#),
            ("1s ", r#"time: unknown unit "s " in duration "1s ""#),
            ("1\u{b5}", r#"time: unknown unit "\xc2\xb5" in duration "1\xc2\xb5""#),
            ("\"1s", r#"time: invalid duration "\"1s""#),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(err.to_string(), *want, "{text}");
        }
    }

    #[test]
    fn overflow_and_negative_are_distinct_variants() {
        assert!(matches!(parse("3000000h"), Err(ParseDurationError::Overflow { .. })));
        assert!(matches!(
            parse("9223372036854775808ns9223372036854775808ns"),
            Err(ParseDurationError::Overflow { .. })
        ));
        assert_eq!(parse("-1s"), Err(ParseDurationError::Negative { input: "-1s".to_owned() }));
        assert_eq!(
            parse("-1s").unwrap_err().to_string(),
            r#"negative duration "-1s" is not supported"#
        );
    }

    #[test]
    fn viper_reads_unitless_strings_as_nanoseconds() {
        assert_eq!(parse_viper("1500"), Ok(Duration::from_nanos(1500)));
        assert_eq!(parse_viper("1.9"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse_viper("0"), Ok(Duration::ZERO));
        assert_eq!(parse_viper("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(
            parse_viper("abc").unwrap_err().to_string(),
            r#"time: invalid duration "abcns""#
        );
        // Contains 'm', so it goes to ParseDuration unchanged, as in cast.
        assert!(parse_viper("1mb").is_err());
    }

    #[test]
    fn formats_like_go() {
        let cases: &[(Duration, &str)] = &[
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(100), "100ns"),
            (Duration::from_nanos(1100), "1.1\u{b5}s"),
            (Duration::from_nanos(1500), "1.5\u{b5}s"),
            (Duration::from_micros(2), "2\u{b5}s"),
            (Duration::from_nanos(2_200_000), "2.2ms"),
            (ms(300), "300ms"),
            (Duration::from_secs(5), "5s"),
            (ms(1500), "1.5s"),
            (Duration::from_nanos(3_300_000_000), "3.3s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(4 * 60 + 5) + ms(1), "4m5.001s"),
            (Duration::from_secs(5 * 3600 + 6 * 60 + 7) + ms(1), "5h6m7.001s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(6 * 3600), "6h0m0s"),
            (Duration::from_secs(8 * 3600) + Duration::from_nanos(1), "8h0m0.000000001s"),
            (MAX, "2562047h47m16.854775807s"),
        ];
        for (duration, want) in cases {
            assert_eq!(format(*duration), *want, "{duration:?}");
        }
    }

    #[test]
    fn formats_beyond_go_range_without_panicking() {
        assert_eq!(format(Duration::MAX), "5124095576030431h0m15.999999999s");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(nanos in 0..=i64::MAX as u64) {
            let duration = Duration::from_nanos(nanos);
            prop_assert_eq!(parse(&format(duration)), Ok(duration));
        }

        #[test]
        fn parse_then_format_is_canonical(hours in 0u64..1000, minutes in 0u64..60,
                                          seconds in 0u64..60, millis in 0u64..1000) {
            let text = format!("{hours}h{minutes}m{seconds}.{millis:03}s");
            let duration = parse(&text).expect("valid by construction");
            prop_assert_eq!(parse(&format(duration)), Ok(duration));
            let want = ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis;
            prop_assert_eq!(duration, ms(want));
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = parse(&text);
            let _ = parse_viper(&text);
        }

        #[test]
        fn grammar_like_text_never_panics(text in "[-+]?([0-9.]{0,25}(ns|us|µs|μs|ms|s|m|h|x)?){0,4}") {
            let _ = parse(&text);
        }
    }
}
