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

/// The top-level entries of an object, in the order written.
pub(super) struct Entries<'a> {
    bytes: &'a [u8],
    /// Where to read on; `None` once the end was reached.
    at: Option<usize>,
}

impl<'a> Entries<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        let at = skip_ws(bytes, 0);
        let at = (bytes.get(at) == Some(&b'{')).then_some(at + 1);
        Self { bytes, at }
    }

    /// Where the object's closing brace is, once every entry was read.
    fn closing(&self) -> Option<usize> {
        let at = skip_ws(self.bytes, self.at?);
        (self.bytes.get(at) == Some(&b'}')).then_some(at)
    }

    fn read(&mut self) -> Option<Entry> {
        let b = self.bytes;
        let mut at = skip_ws(b, self.at?);
        if b.get(at) == Some(&b',') {
            at = skip_ws(b, at + 1);
        }
        if b.get(at) != Some(&b'"') {
            return None;
        }
        let (key_end, key_escaped) = string_end(b, at)?;
        let colon = skip_ws(b, key_end);
        if b.get(colon) != Some(&b':') {
            return None;
        }
        let value_start = skip_ws(b, colon + 1);
        let value_end = value_end(b, value_start)?;
        self.at = Some(value_end);
        Some(Entry {
            start: at,
            key: at + 1..key_end - 1,
            key_escaped,
            value: value_start..value_end,
        })
    }
}

impl Iterator for Entries<'_> {
    type Item = Entry;

    /// The next entry; `at` stays just past the last one, where `closing` looks.
    fn next(&mut self) -> Option<Entry> {
        self.read()
    }
}

fn skip_ws(b: &[u8], mut at: usize) -> usize {
    while matches!(b.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The index just past the string opening at `at`, and whether it holds an escape.
///
/// A plain loop: the strings of a context are short, and memchr's set-up per call cost
/// more than it saved.
fn string_end(b: &[u8], at: usize) -> Option<(usize, bool)> {
    let mut i = at + 1;
    let mut escaped = false;
    loop {
        match *b.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            // A backslash and the character it escapes (the quote of `\"` included).
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
}

/// The index just past the value starting at `at`.
fn value_end(b: &[u8], at: usize) -> Option<usize> {
    match b.get(at)? {
        b'"' => string_end(b, at).map(|(end, _)| end),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match b.get(i)? {
                    b'"' => {
                        i = string_end(b, i)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = b
                .get(at..)?
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))?;
            Some(at + len)
        }
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

/// The entries of an object and where its closing brace is; `None` if it could not be
/// read to its end (never for bytes checked by [`check_and_index`]).
pub(super) fn index(bytes: &[u8]) -> Option<(Vec<Entry>, usize)> {
    let mut entries = Entries::new(bytes);
    let found: Vec<Entry> = entries.by_ref().collect();
    Some((found, entries.closing()?))
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
    let start = out.len();
    write_str(&mut out, key);
    let key_end = out.len();
    out.push(b':');
    let value_start = out.len();
    write_value(&mut out, value)?;
    let value_end = out.len();
    if before.is_some() {
        out.push(b',');
    }
    let shift = out.len() - at;
    out.extend_from_slice(bytes.get(at..)?);
    let added = Entry {
        start,
        key: start + 1..key_end - 1,
        key_escaped: out.get(start + 1..key_end - 1)?.contains(&b'\\'),
        value: value_start..value_end,
    };
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
