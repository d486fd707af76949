//! JSON written the way Go's `encoding/json` writes it, so that bytes we send match what a
//! Go Pitaya server would send for the same value.
//!
//! Two differences from serde_json's defaults matter on the wire:
//! - Go escapes `<`, `>`, `&`, U+2028 and U+2029 in strings (`\u003c`, ...), for HTML safety;
//! - Go prints floats in their shortest form without a trailing `.0` (`1`, not `1.0`), and
//!   with an exponent (`1e+21`, `1e-7`) below 1e-6 or from 1e21 on.
//!
//! Map keys come out sorted as in Go as long as maps are `BTreeMap`s or serde_json's
//! default (sorted) `Map`.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// Encodes `value` as compact JSON with Go's escaping and float format.
///
/// # Errors
/// Whatever serde_json reports for values JSON cannot hold (non-string map keys, ...).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, GoFormatter))?;
    Ok(out)
}

/// Bytes that may start something [`GoFormatter::write_string_fragment`] escapes: `<`,
/// `>`, `&`, and `E2`, the first byte of U+2028 and U+2029.
static HTML_SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[b'&' as usize] = true;
    table[0xE2] = true;
    table
};

/// A serde_json formatter that reproduces Go's `encoding/json` output.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoFormatter;

impl Formatter for GoFormatter {
    /// serde_json hands over the runs between what it escapes itself (quote, backslash and the
    /// control characters, which it writes as Go does); this adds Go's HTML-safety
    /// escapes. It scans bytes and copies untouched runs whole: the escaped characters are
    /// the ASCII `<`, `>`, `&` and the three-byte `E2 80 A8` / `E2 80 A9`, and in UTF-8 no
    /// byte of another character can look like either (a `&str` is always valid UTF-8).
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let bytes = fragment.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while let Some(&b) = bytes.get(i) {
            if !HTML_SPECIAL[usize::from(b)] {
                i += 1;
                continue;
            }
            let (escape, len): (&[u8], usize) = match (b, bytes.get(i + 1..i + 3)) {
                (b'<', _) => (b"\\u003c", 1),
                (b'>', _) => (b"\\u003e", 1),
                (b'&', _) => (b"\\u0026", 1),
                (0xE2, Some([0x80, 0xA8])) => (b"\\u2028", 3),
                (0xE2, Some([0x80, 0xA9])) => (b"\\u2029", 3),
                // Another character starting with E2 (U+2000..U+2FFF): left as it is.
                _ => {
                    i += 1;
                    continue;
                }
            };
            writer.write_all(bytes.get(start..i).unwrap_or_default())?;
            writer.write_all(escape)?;
            i += len;
            start = i;
        }
        writer.write_all(bytes.get(start..).unwrap_or_default())
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        write_go_float(writer, value, value != 0.0 && !(1e-6..1e21).contains(&value.abs()))
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        // Go formats float32 with 32-bit shortest digits and the same thresholds.
        write_go_float(writer, value, value != 0.0 && !(1e-6..1e21).contains(&value.abs()))
    }
}

/// Rust's `Display` is the shortest round-trip form and never uses an exponent; its
/// `LowerExp` writes `1e21` / `1e-7` where Go writes `1e+21` / `1e-7`.
fn write_go_float<W, F>(writer: &mut W, value: F, exponent: bool) -> io::Result<()>
where
    W: ?Sized + io::Write,
    F: std::fmt::Display + std::fmt::LowerExp,
{
    if !exponent {
        return write!(writer, "{value}");
    }
    let formatted = format!("{value:e}");
    match formatted.split_once('e') {
        Some((mantissa, exp)) if !exp.starts_with('-') => write!(writer, "{mantissa}e+{exp}"),
        _ => writer.write_all(formatted.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn go(v: &serde_json::Value) -> String {
        String::from_utf8(to_vec(v).unwrap()).unwrap()
    }

    #[test]
    fn html_characters_are_escaped_like_go() {
        let v = serde_json::json!({"msg": "a<b>&c\u{2028}\u{2029}\"\n"});
        assert_eq!(go(&v), r#"{"msg":"a\u003cb\u003e\u0026c\u2028\u2029\"\n"}"#);
    }

    /// The per-character implementation this one replaced, kept as the oracle.
    struct CharByChar;

    impl Formatter for CharByChar {
        fn write_string_fragment<W: ?Sized + io::Write>(
            &mut self,
            writer: &mut W,
            fragment: &str,
        ) -> io::Result<()> {
            let mut start = 0;
            for (i, c) in fragment.char_indices() {
                let escape = match c {
                    '<' => "\\u003c",
                    '>' => "\\u003e",
                    '&' => "\\u0026",
                    '\u{2028}' => "\\u2028",
                    '\u{2029}' => "\\u2029",
                    _ => continue,
                };
                writer.write_all(fragment.get(start..i).unwrap_or_default().as_bytes())?;
                writer.write_all(escape.as_bytes())?;
                start = i + c.len_utf8();
            }
            writer.write_all(fragment.get(start..).unwrap_or_default().as_bytes())
        }
    }

    /// Characters next to the interesting cases: what Go escapes, what serde_json escapes,
    /// and neighbours sharing UTF-8 bytes with U+2028/U+2029 (E2 lead byte, 80/A8/A9
    /// continuation bytes, U+00E2 whose UTF-8 is C3 A2).
    fn tricky_string() -> impl Strategy<Value = String> {
        let tricky = prop::sample::select(
            "<>&\"\\/\0\u{8}\u{c}\n\r\t\u{1f}\u{7f}\u{80}\u{a8}\u{e2}\u{2000}\u{2027}\u{2028}\u{2029}\u{202a}\u{20ac}\u{2fff}\u{fffd}\u{10ffff}a"
                .chars()
                .collect::<Vec<_>>(),
        );
        prop::collection::vec(prop_oneof![tricky, any::<char>()], 0..48)
            .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn byte_scan_matches_char_by_char(s in tricky_string()) {
            let (mut new, mut old) = (Vec::new(), Vec::new());
            GoFormatter.write_string_fragment(&mut new, &s).unwrap();
            CharByChar.write_string_fragment(&mut old, &s).unwrap();
            prop_assert_eq!(&new, &old);

            // The whole string as serde_json writes it, escapes of its own included.
            let value = serde_json::json!({ "k": s.clone(), "n": [s] });
            let mut old = Vec::new();
            value
                .serialize(&mut serde_json::Serializer::with_formatter(&mut old, CharByChar))
                .unwrap();
            prop_assert_eq!(to_vec(&value).unwrap(), old);
        }
    }

    #[test]
    fn floats_like_go() {
        let cases = [
            (1.0, "1"),
            (1.5, "1.5"),
            (0.1, "0.1"),
            (-2.0, "-2"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (0.0, "0"),
            (1795611866118637000.0, "1795611866118637000"),
        ];
        for (value, expected) in cases {
            assert_eq!(go(&serde_json::json!(value)), expected, "{value}");
        }
    }

    #[test]
    fn integers_and_sorted_keys() {
        let m: BTreeMap<&str, i64> = [("b", 2), ("a", -1)].into();
        assert_eq!(String::from_utf8(to_vec(&m).unwrap()).unwrap(), r#"{"a":-1,"b":2}"#);
    }
}
