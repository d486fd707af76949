//! Reading and extending an encoded context in place: the top-level entries of a JSON
//! object that serde_json has already found well formed.
//!
//! Only [`check_and_index`] checks the grammar (serde_json does), once, when the bytes
//! come in; the rest reads bytes so checked, or written here. Reading stays within bounds on any input all the same (a malformed document gives
//! fewer entries, never a panic).

use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// Checks that a document is a JSON object or `null` and, for an object, finds where its
/// entries are in the same pass (serde_json checks, nothing is built): `Ok(None)` for `null`; an object with an escaped key
/// comes back without an index (`Some(None)`), to be parsed instead.
pub(super) fn check_and_index(
    bytes: &[u8],
) -> Result<Option<Option<Vec<Entry>>>, serde_json::Error> {
    struct V<'b>(&'b [u8]);
    impl<'de> Visitor<'de> for V<'_> {
        type Value = Option<Option<Vec<Entry>>>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object or null")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let base = self.0.as_ptr() as usize;
            let offset = |s: &str| (s.as_ptr() as usize).wrapping_sub(base);
            let mut entries = Some(Vec::with_capacity(12));
            while let Some(key) = map.next_key::<BorrowedKey<'de>>()? {
                let value: &'de serde_json::value::RawValue = map.next_value()?;
                match (key.0, entries.as_mut()) {
                    (Some(key), Some(found)) => {
                        let key_start = offset(key);
                        let value_start = offset(value.get());
                        found.push(Entry {
                            start: key_start.wrapping_sub(1),
                            key: key_start..key_start + key.len(),
                            key_escaped: false,
                            value: value_start..value_start + value.get().len(),
                        });
                    }
                    _ => entries = None,
                }
            }
            Ok(Some(entries))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let indexed = de::Deserializer::deserialize_option(&mut de, V(bytes))?;
    de.end()?;
    Ok(indexed)
}

/// A key as written, when it has no escape sequence (`None` otherwise).
struct BorrowedKey<'de>(Option<&'de str>);

impl<'de> Deserialize<'de> for BorrowedKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct K;
        impl<'de> Visitor<'de> for K {
            type Value = BorrowedKey<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedKey(Some(v)))
            }

            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(BorrowedKey(None))
            }
        }
        deserializer.deserialize_str(K)
    }
}

/// Where the closing brace of a checked object is: its last byte but whitespace.
pub(super) fn closing_brace(bytes: &[u8]) -> Option<usize> {
    let at = bytes.iter().rposition(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\r'))?;
    (bytes.get(at) == Some(&b'}')).then_some(at)
}

/// One top-level entry: byte ranges into the object.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// From the key's opening quote to the end of its value.
    start: usize,
    /// The key between its quotes, as written.
    key: Range<usize>,
    /// Whether the key holds an escape sequence (then it must be decoded to compare).
    key_escaped: bool,
    /// The value, as written.
    value: Range<usize>,
}

/// A value read as a string.
pub(super) enum Str<'a> {
    /// A string without escape sequences: these bytes exactly.
    Plain(&'a str),
    /// A string that needs decoding.
    Escaped,
    /// Not a string.
    NotString,
}

impl Entry {
    /// Whether this entry's key is `key`.
    pub(super) fn key_is(&self, bytes: &[u8], key: &str) -> bool {
        let Some(written) = bytes.get(self.key.clone()) else { return false };
        if !self.key_escaped {
            return written == key.as_bytes();
        }
        bytes
            .get(self.start..self.key.end + 1)
            .and_then(|quoted| serde_json::from_slice::<String>(quoted).ok())
            .is_some_and(|decoded| decoded == key)
    }

    /// Whether this entry's key sorts after `key` (byte order, as Go and serde_json sort).
    fn key_after(&self, bytes: &[u8], key: &str) -> bool {
        let written = bytes.get(self.key.clone()).unwrap_or_default();
        if !self.key_escaped {
            return written > key.as_bytes();
        }
        bytes
            .get(self.start..self.key.end + 1)
            .and_then(|quoted| serde_json::from_slice::<String>(quoted).ok())
            .is_some_and(|decoded| *decoded > *key)
    }

    /// The value as a string.
    pub(super) fn plain_str<'a>(&self, bytes: &'a [u8]) -> Str<'a> {
        let Some(written) = bytes.get(self.value.clone()) else { return Str::NotString };
        let [b'"', inner @ .., b'"'] = written else { return Str::NotString };
        if inner.contains(&b'\\') {
            return Str::Escaped;
        }
        std::str::from_utf8(inner).map_or(Str::Escaped, Str::Plain)
    }
}

/// Writes `s` as a JSON string the way Go does.
pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    // Ids, routes and keys rarely hold anything Go escapes: those are copied as they are.
    let plain =
        s.bytes().all(|c| c >= 0x20 && !matches!(c, b'"' | b'\\' | b'<' | b'>' | b'&' | 0xE2));
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // A string always encodes.
    match pitaya_serialize::gojson::to_vec(s) {
        Ok(quoted) => out.extend_from_slice(&quoted),
        Err(_) => out.extend_from_slice(b"\"\""),
    }
}

/// Writes `value` the way Go does; `None` for what JSON cannot hold.
fn write_value(out: &mut Vec<u8>, value: &Value) -> Option<()> {
    match value {
        Value::String(s) => write_str(out, s),
        other => out.extend_from_slice(&pitaya_serialize::gojson::to_vec(other).ok()?),
    }
    Some(())
}

/// Writes the entry `key:` and then the value `write` writes at the end of `out`, and
/// returns where they are.
pub(super) fn write_entry(
    out: &mut Vec<u8>,
    key: &str,
    write: impl FnOnce(&mut Vec<u8>) -> Option<()>,
) -> Option<Entry> {
    let start = out.len();
    write_str(out, key);
    let key = start + 1..out.len() - 1;
    out.push(b':');
    let value_start = out.len();
    write(out)?;
    let key_escaped = out.get(key.clone())?.contains(&b'\\');
    Some(Entry { start, key, key_escaped, value: value_start..out.len() })
}

/// `bytes` (indexed as `entries`, closing brace at `closing`) with the entry `key: value`
/// added where sorted order puts it (before the first key greater than it), for a `key`
/// that is not there yet; with its index and closing brace.
pub(super) fn with_entry(
    bytes: &[u8],
    entries: &[Entry],
    closing: usize,
    key: &str,
    value: &Value,
) -> Option<(Vec<u8>, Vec<Entry>, usize)> {
    let before = entries.iter().position(|e| e.key_after(bytes, key));
    let at = before.map_or(closing, |i| entries[i].start);
    let mut out = Vec::with_capacity(bytes.len() + key.len() + 80);
    out.extend_from_slice(bytes.get(..at)?);
    if before.is_none() && !entries.is_empty() {
        out.push(b',');
    }
    let added = write_entry(&mut out, key, |out| write_value(out, value))?;
    if before.is_some() {
        out.push(b',');
    }
    let shift = out.len() - at;
    out.extend_from_slice(bytes.get(at..)?);
    let split = before.unwrap_or(entries.len());
    let moved = entries.get(split..)?.iter().map(|e| Entry {
        start: e.start + shift,
        key: e.key.start + shift..e.key.end + shift,
        key_escaped: e.key_escaped,
        value: e.value.start + shift..e.value.end + shift,
    });
    let mut index = Vec::with_capacity(entries.len() + 1);
    index.extend_from_slice(entries.get(..split)?);
    index.push(added);
    index.extend(moved);
    Some((out, index, closing + shift))
}
