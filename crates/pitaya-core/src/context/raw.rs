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
        if memchr::memchr(b'\\', inner).is_some() {
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
fn string_end(b: &[u8], at: usize) -> Option<(usize, bool)> {
    let mut from = at + 1;
    let mut escaped = false;
    loop {
        let found = from + memchr::memchr2(b'"', b'\\', b.get(from..)?)?;
        if b.get(found) == Some(&b'"') {
            return Some((found + 1, escaped));
        }
        // A backslash and the character it escapes (the quote of `\\"` included).
        escaped = true;
        from = found + 2;
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

/// `bytes` with the entry `key: value` added where sorted order puts it (before the first
/// key greater than it), for a `key` that is not there yet. `None` if the object could
/// not be read to its end (never for bytes checked by [`ObjectOrNull`]).
pub(super) fn with_entry(bytes: &[u8], key: &str, value: &Value) -> Option<Vec<u8>> {
    let mut entries = Entries::new(bytes);
    let mut any = false;
    let mut before = None;
    for entry in entries.by_ref() {
        any = true;
        if before.is_none() && *entry.key(bytes) > *key {
            before = Some(entry.start);
        }
    }
    let closing = entries.closing()?;
    let encoded = pitaya_serialize::gojson::to_vec(value).ok()?;
    let mut out = Vec::with_capacity(bytes.len() + key.len() + encoded.len() + 4);
    let (head, tail) = bytes.split_at(before.unwrap_or(closing));
    out.extend_from_slice(head);
    if before.is_none() && any {
        out.push(b',');
    }
    write_str(&mut out, key);
    out.push(b':');
    out.extend_from_slice(&encoded);
    if before.is_some() {
        out.push(b',');
    }
    out.extend_from_slice(tail);
    Some(out)
}
