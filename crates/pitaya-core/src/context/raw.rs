//! Reading and extending an encoded context in place: the top-level entries of a JSON
//! object that serde_json has already found well formed.
//!
//! Nothing here checks the grammar: [`ObjectOrNull`] does that once, when the bytes come
//! in. Reading stays within bounds on any input all the same (a malformed document gives
//! fewer entries, never a panic).

use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// Deserializes a JSON object (`true`) or `null` (`false`) without building anything;
/// any other document is an error.
pub(super) struct ObjectOrNull(pub(super) bool);

impl<'de> Deserialize<'de> for ObjectOrNull {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ObjectOrNull;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object or null")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ObjectOrNull(false))
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ObjectOrNull(false))
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_map(V)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<KeyOnly, IgnoredAny>()?.is_some() {}
                Ok(ObjectOrNull(true))
            }
        }
        deserializer.deserialize_option(V)
    }
}

/// A key, checked to be a string and otherwise ignored.
struct KeyOnly;

impl<'de> Deserialize<'de> for KeyOnly {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_ignored_any(IgnoredAny).map(|_| KeyOnly)
    }
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

    /// The key, decoded.
    fn key<'a>(&self, bytes: &'a [u8]) -> std::borrow::Cow<'a, str> {
        let written = bytes.get(self.key.clone()).unwrap_or_default();
        if !self.key_escaped {
            if let Ok(s) = std::str::from_utf8(written) {
                return s.into();
            }
        }
        bytes
            .get(self.start..self.key.end + 1)
            .and_then(|quoted| serde_json::from_slice::<String>(quoted).ok())
            .unwrap_or_default()
            .into()
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
    // A string always encodes.
    match pitaya_serialize::gojson::to_vec(s) {
        Ok(quoted) => out.extend_from_slice(&quoted),
        Err(_) => out.extend_from_slice(b"\"\""),
    }
}

/// The entries of an object and where its closing brace is; `None` if it could not be
/// read to its end (never for bytes checked by [`ObjectOrNull`]).
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
    let before = entries.iter().position(|e| *e.key(bytes) > *key);
    let encoded = pitaya_serialize::gojson::to_vec(value).ok()?;
    let at = before.map_or(closing, |i| entries[i].start);
    let mut out = Vec::with_capacity(bytes.len() + key.len() + encoded.len() + 8);
    out.extend_from_slice(bytes.get(..at)?);
    if before.is_none() && !entries.is_empty() {
        out.push(b',');
    }
    let start = out.len();
    write_str(&mut out, key);
    let key_end = out.len();
    out.push(b':');
    let value_start = out.len();
    out.extend_from_slice(&encoded);
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
