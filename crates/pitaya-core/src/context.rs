//! [`Context`]: the context that travels with every RPC between servers (spec §6.5).

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Map, Value};

mod raw;

/// Key of the sender's server id.
pub const PEER_ID: &str = "peer.id";
/// Key of the sender's server type.
pub const PEER_SERVICE: &str = "peer.service";
/// Key of the request timeout, a Go duration string such as `"5s"`.
pub const REQ_TIMEOUT: &str = "reqTimeout";
/// Key of the request id (a 22-character nuid set by the frontend).
pub const REQUEST_ID: &str = "request.id";
/// Key of the route being served when the RPC was made.
pub const REQ_ROUTE: &str = "req-route";
/// Key of the Unix time in nanoseconds at which the frontend received the request.
pub const REQ_START_TIME: &str = "req-start-time";
/// Key of the OpenTracing span carrier; Go v2 sends `{}` in every RPC.
pub const OPENTRACING_SPAN: &str = "opentracing-span";

/// The propagated context: a JSON object carried in `Request.metadata`.
///
/// A server handling an RPC forwards the whole incoming context on the RPCs it makes,
/// replacing only the peer keys, so application keys ([`Context::insert`], Go's
/// `AddToPropagateCtx`), the request id and the caller's timeout reach every hop.
/// Numbers come back as JSON numbers (Go decodes them as float64).
///
/// A context decoded from a peer (or started by [`Context::for_request`]) stays in its
/// encoded form until something needs it whole: looking up a string ([`Context::get_str`],
/// [`Context::contains`]) reads the bytes in place, adding a key that is not there
/// writes it into the bytes at its sorted place, and encoding an unchanged context hands
/// its bytes back. Every forwarded client message crosses a frontend and a backend this
/// way, and a map of owned JSON values built and encoded on each hop was most of what
/// the context cost. [`Context::get`], [`Context::as_map`], replacing or removing a key
/// parse it once.
#[derive(Clone, Default)]
pub struct Context(Repr);

#[derive(Clone)]
enum Repr {
    Map(Map<String, Value>),
    Encoded(Encoded),
}

impl Default for Repr {
    fn default() -> Self {
        Self::Map(Map::new())
    }
}

/// A JSON object known to be well formed, where its entries are, and its entries parsed
/// once someone needed them.
#[derive(Clone)]
struct Encoded {
    bytes: Bytes,
    /// Each top-level entry's place in `bytes`, in the order written.
    entries: Vec<raw::Entry>,
    /// Where the closing brace is.
    closing: usize,
    parsed: OnceLock<Map<String, Value>>,
}

impl Encoded {
    fn map(&self) -> &Map<String, Value> {
        self.parsed.get_or_init(|| parse(&self.bytes))
    }

    /// The last entry under `key` (JSON decoders, Go's and serde_json's, keep the last).
    fn find(&self, key: &str) -> Option<&raw::Entry> {
        self.entries.iter().rev().find(|e| e.key_is(&self.bytes, key))
    }
}

/// The entries of bytes checked when they came in (or written by this module): parsing
/// cannot fail, and an empty map is the safe answer if it ever did.
fn parse(bytes: &[u8]) -> Map<String, Value> {
    serde_json::from_slice::<Option<Map<String, Value>>>(bytes).ok().flatten().unwrap_or_default()
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Context").field(self.as_map()).finish()
    }
}

impl PartialEq for Context {
    fn eq(&self, other: &Self) -> bool {
        self.as_map() == other.as_map()
    }
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `Request.metadata`.
    ///
    /// # Errors
    /// When the bytes are not a JSON object (or `null`, taken as empty).
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        Self::decode_bytes(Bytes::copy_from_slice(bytes))
    }

    /// As [`Context::decode`], keeping `bytes` (no copy) as the context's encoded form.
    ///
    /// # Errors
    /// When the bytes are not a JSON object (or `null`, taken as empty).
    pub fn decode_bytes(bytes: Bytes) -> Result<Self, serde_json::Error> {
        // Checks the whole document without building anything; the entries are read in
        // place when asked for.
        let Some(indexed) = raw::check_and_index(&bytes)? else { return Ok(Self::new()) };
        let closing = raw::closing_brace(&bytes);
        Ok(Self(match (indexed, closing) {
            (Some(entries), Some(closing)) => {
                Repr::Encoded(Encoded { bytes, entries, closing, parsed: OnceLock::new() })
            }
            // An escaped key: rare enough to be parsed whole.
            _ => Repr::Map(parse(&bytes)),
        }))
    }

    /// Encodes as Go does: compact, keys sorted, HTML characters escaped. A context
    /// decoded from a peer and only added to keeps the peer's bytes for its entries.
    pub fn encode(&self) -> Vec<u8> {
        self.to_bytes().into()
    }

    /// As [`Context::encode`], without a copy when the context is in its encoded form.
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Encoded(e) => e.bytes.clone(),
            // A map of JSON values always encodes.
            Repr::Map(m) => {
                pitaya_serialize::gojson::to_vec(m).unwrap_or_else(|_| b"{}".to_vec()).into()
            }
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map().get(key)
    }

    /// The string under `key`, if it is one.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match &self.0 {
            Repr::Map(m) => m.get(key).and_then(Value::as_str),
            Repr::Encoded(e) => {
                let entry = e.find(key)?;
                match entry.plain_str(&e.bytes) {
                    raw::Str::Plain(s) => Some(s),
                    raw::Str::Escaped => e.map().get(key).and_then(Value::as_str),
                    raw::Str::NotString => None,
                }
            }
        }
    }

    /// Sets `key`, replacing any value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        if let Repr::Encoded(e) = &self.0 {
            if e.find(&key).is_none() {
                if let Some((bytes, entries, closing)) =
                    raw::with_entry(&e.bytes, &e.entries, e.closing, &key, &value)
                {
                    let bytes = bytes.into();
                    self.0 =
                        Repr::Encoded(Encoded { bytes, entries, closing, parsed: OnceLock::new() });
                    return;
                }
            }
        }
        self.map_mut().insert(key, value);
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        if let Repr::Encoded(e) = &self.0 {
            e.find(key)?;
        }
        self.map_mut().remove(key)
    }

    /// Whether `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        match &self.0 {
            Repr::Map(m) => m.contains_key(key),
            Repr::Encoded(e) => e.find(key).is_some(),
        }
    }

    /// The entries.
    pub fn as_map(&self) -> &Map<String, Value> {
        match &self.0 {
            Repr::Map(m) => m,
            Repr::Encoded(e) => e.map(),
        }
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        match &self.0 {
            Repr::Map(m) => m.is_empty(),
            Repr::Encoded(e) => e.entries.is_empty(),
        }
    }

    /// The entries as a map, parsed if they were still encoded.
    fn map_mut(&mut self) -> &mut Map<String, Value> {
        if let Repr::Encoded(e) = &mut self.0 {
            let map = e.parsed.take().unwrap_or_else(|| parse(&e.bytes));
            self.0 = Repr::Map(map);
        }
        match &mut self.0 {
            Repr::Map(m) => m,
            // Replaced just above.
            Repr::Encoded(_) => unreachable!("context converted to a map"),
        }
    }

    /// The context a frontend starts for a client message on `route` (spec §6.5): a new
    /// request id, the route, the start time in Unix nanoseconds, and the empty
    /// `opentracing-span` Go v2 always sends.
    pub fn for_request(route: &str) -> Self {
        Self::request_context(route, None)
    }

    /// As [`Context::for_request`], for a message this server sends on to another as the
    /// peer `peer_id` of type `peer_service`: the peer keys are written with the others at
    /// once (what [`Context::insert`]ing them afterwards gives, byte for byte).
    pub fn for_request_from(route: &str, peer_id: &str, peer_service: &str) -> Self {
        Self::request_context(route, Some((peer_id, peer_service)))
    }

    fn request_context(route: &str, peer: Option<(&str, &str)>) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        // Written directly, keys in Go's (sorted) order: what inserting the keys into a
        // map and encoding it gives, byte for byte (tested). Where each entry is is known
        // as it is written.
        let mut out = Vec::with_capacity(200 + route.len());
        let mut entries = Vec::with_capacity(8);
        let (o, e) = (&mut out, &mut entries);
        push_entry(o, e, OPENTRACING_SPAN, |o| o.extend_from_slice(b"{}"));
        if let Some((id, service)) = peer {
            push_entry(o, e, PEER_ID, |o| raw::write_str(o, id));
            push_entry(o, e, PEER_SERVICE, |o| raw::write_str(o, service));
        }
        push_entry(o, e, REQ_ROUTE, |o| raw::write_str(o, route));
        push_entry(o, e, REQ_START_TIME, |o| o.extend_from_slice(now.to_string().as_bytes()));
        push_entry(o, e, REQUEST_ID, |o| raw::write_str(o, &new_request_id()));
        let closing = out.len();
        out.push(b'}');
        let bytes = Bytes::from(out);
        Self(Repr::Encoded(Encoded { bytes, entries, closing, parsed: OnceLock::new() }))
    }
}

/// Appends the next entry of an object being written (its opening brace first), noting
/// where it is in `entries`.
fn push_entry(
    out: &mut Vec<u8>,
    entries: &mut Vec<raw::Entry>,
    key: &str,
    write: impl FnOnce(&mut Vec<u8>),
) {
    out.push(if entries.is_empty() { b'{' } else { b',' });
    entries.extend(raw::write_entry(out, key, |out| {
        write(out);
        Some(())
    }));
}

/// A random 22-character alphanumeric id, the shape of the nuid Go uses for
/// `request.id`.
pub fn new_request_id() -> String {
    request_id_from_bits((u128::from(random_u64()) << 64) | u128::from(random_u64()))
}

/// `bits` in base 62, least significant digit first, 22 digits (62^22 > 2^128, so they
/// hold all 128 bits). Two u128 divisions by 62^10 cut it into pieces of 10, 10 and 2
/// digits that fit in a u64, whose divisions by 62 the compiler turns into multiplies.
fn request_id_from_bits(bits: u128) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    const TEN_DIGITS: u128 = 62u128.pow(10);
    let high = bits / TEN_DIGITS;
    let top = high / TEN_DIGITS;
    // Each remainder is below 62^10 < 2^64, and top below 2^128 / 62^20 < 62^2.
    let pieces = [
        ((bits - high * TEN_DIGITS) as u64, 10),
        ((high - top * TEN_DIGITS) as u64, 10),
        (top as u64, 2),
    ];
    let mut id = String::with_capacity(22);
    for (mut piece, digits) in pieces {
        for _ in 0..digits {
            id.push(char::from(ALPHABET[(piece % 62) as usize]));
            piece /= 62;
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_go_fixture() {
        let mut c = Context::new();
        c.insert("key1", "val1");
        assert_eq!(c.encode(), br#"{"key1":"val1"}"#);
    }

    #[test]
    fn request_context_has_gos_keys() {
        let c = Context::for_request("connector.room.join");
        assert_eq!(c.get_str(REQ_ROUTE), Some("connector.room.join"));
        assert_eq!(c.get_str(REQUEST_ID).map(str::len), Some(22));
        assert!(c.get(REQ_START_TIME).and_then(Value::as_i64).is_some_and(|t| t > 0));
        assert_ne!(new_request_id(), new_request_id());
    }

    /// The digit-by-digit u128 conversion `request_id_from_bits` replaced.
    fn request_id_by_u128_division(mut bits: u128) -> String {
        const ALPHABET: &[u8; 62] =
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut id = String::with_capacity(22);
        for _ in 0..22 {
            id.push(char::from(ALPHABET[(bits % 62) as usize]));
            bits /= 62;
        }
        id
    }

    #[test]
    fn request_ids_are_22_base62_digits_of_128_random_bits() {
        assert_eq!(request_id_from_bits(0), "0".repeat(22));
        assert_eq!(request_id_from_bits(61), format!("z{}", "0".repeat(21)));
        assert_eq!(request_id_from_bits(62), format!("01{}", "0".repeat(20)));
        let ten = 62u128.pow(10);
        let mut edges = vec![u128::MAX, u128::MAX - 1, 1 << 64, (1 << 64) - 1];
        for k in [ten, ten * ten, 62u128.pow(21)] {
            edges.extend([k - 1, k, k + 1]);
        }
        let random = (0..2000).map(|_| (u128::from(random_u64()) << 64) | u128::from(random_u64()));
        for bits in edges.into_iter().chain(random) {
            assert_eq!(request_id_from_bits(bits), request_id_by_u128_division(bits), "{bits}");
        }
        for _ in 0..100 {
            let id = new_request_id();
            assert_eq!(id.len(), 22, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id}");
        }
    }

    /// What `for_request` wrote by hand, built the slow way.
    #[test]
    fn request_context_is_the_map_encoding() {
        for route in ["connector.room.join", "a<b>&\"\\\u{2028}.c.d"] {
            let c = Context::for_request(route);
            let mut m = Context::new();
            m.insert(OPENTRACING_SPAN, Value::Object(Map::new()));
            m.insert(REQ_ROUTE, route);
            m.insert(REQ_START_TIME, c.get(REQ_START_TIME).cloned().unwrap());
            m.insert(REQUEST_ID, c.get_str(REQUEST_ID).unwrap());
            assert_eq!(c.encode(), m.encode(), "{route}");
            assert_eq!(c, m);
            let from = Context::for_request_from(route, "id<1>", "connector");
            m.insert(PEER_ID, "id<1>");
            m.insert(PEER_SERVICE, "connector");
            m.insert(REQ_START_TIME, from.get(REQ_START_TIME).cloned().unwrap());
            m.insert(REQUEST_ID, from.get_str(REQUEST_ID).unwrap());
            assert_eq!(from.encode(), m.encode(), "{route}");
            // Where each entry is was noted while writing: reads and inserts use it.
            let mut from = from;
            for key in [OPENTRACING_SPAN, PEER_ID, PEER_SERVICE, REQ_ROUTE, REQUEST_ID] {
                assert_eq!(from.get_str(key), m.get_str(key), "{key}");
                assert!(from.contains(key), "{key}");
            }
            for (key, value) in [(OTEL_SPAN, "x"), (REQ_TIMEOUT, "5s"), ("zz", "last")] {
                from.insert(key, value);
                m.insert(key, value);
                assert_eq!(from.encode(), m.encode(), "{route} + {key}");
            }
        }
    }

    #[test]
    fn decoded_contexts_read_and_grow_in_place() {
        let bytes =
            br#" { "b" : "x\"y" , "d":{"e":[1,{"f":"}"}]},"a\u0041":1.5,"c":"plain","b":"last"} "#;
        let c = Context::decode(bytes).unwrap();
        assert_eq!(c.get_str("b"), Some("last"), "the last duplicate wins");
        assert_eq!(c.get_str("aA"), None);
        assert!(c.contains("aA") && c.contains("d") && !c.contains("e"));
        assert_eq!(c.get_str("c"), Some("plain"));
        let mut grown = c.clone();
        grown.insert("bb", "new");
        grown.insert("0", 7);
        grown.insert("z", true);
        let mut expected = c.as_map().clone();
        expected.insert("bb".into(), "new".into());
        expected.insert("0".into(), 7.into());
        expected.insert("z".into(), true.into());
        assert_eq!(grown.as_map(), &expected);
        let reread = Context::decode(&grown.encode()).unwrap();
        assert_eq!(reread.as_map(), &expected);
        assert!(Context::decode(b"{}").unwrap().is_empty());
        assert!(!c.is_empty());
        let mut empty = Context::decode(b" { } ").unwrap();
        empty.insert("k", "v");
        assert_eq!(empty.encode(), br#" { "k":"v"} "#);
        for bad in [&b"[1]"[..], b"1", b"\"s\"", b"{", b"{\"a\":1}x", b"{1:2}"] {
            assert!(Context::decode(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    fn key() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just(PEER_ID.to_owned()),
            Just(REQ_TIMEOUT.to_owned()),
            Just(OTEL_SPAN.to_owned()),
            "[a-z.\\\\-]{0,6}",
            "[a\"\\\\<\u{2028}\u{e9}\n]{0,4}",
        ]
    }

    fn value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            key().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(key(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever a peer sends: refused, or read in place as serde_json reads it whole.
        #[test]
        fn any_metadata_is_refused_or_read_like_serde_json(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            text in "[ {}\\[\\]\":,a-c0-9\\\\.e+-]{0,40}",
        ) {
            for input in [&bytes[..], text.as_bytes()] {
                let whole = serde_json::from_slice::<Option<Map<String, Value>>>(input);
                match Context::decode(input) {
                    Err(_) => proptest::prop_assert!(whole.is_err()),
                    Ok(c) => {
                        let whole = whole.unwrap().unwrap_or_default();
                        for (k, v) in &whole {
                            proptest::prop_assert_eq!(c.get_str(k), v.as_str());
                            proptest::prop_assert!(c.contains(k));
                        }
                        proptest::prop_assert_eq!(c.as_map(), &whole);
                    }
                }
            }
        }

        /// Read in place and extended in place, an encoded context answers as its map
        /// does and encodes to the same bytes.
        #[test]
        fn encoded_form_agrees_with_the_map(
            entries in proptest::collection::btree_map(key(), value(), 0..8),
            probes in proptest::collection::vec(key(), 1..6),
            added in proptest::collection::vec((key(), value()), 0..4),
        ) {
            let mut map = Context::new();
            for (k, v) in &entries {
                map.insert(k.clone(), v.clone());
            }
            let mut raw = Context::decode(&map.encode()).unwrap();
            for probe in &probes {
                proptest::prop_assert_eq!(raw.get_str(probe), map.get_str(probe));
                proptest::prop_assert_eq!(raw.contains(probe), map.contains(probe));
            }
            proptest::prop_assert_eq!(raw.is_empty(), map.is_empty());
            for (k, v) in added {
                raw.insert(k.clone(), v.clone());
                proptest::prop_assert_eq!(raw.get_str(&k), v.as_str());
                map.insert(k, v);
                proptest::prop_assert_eq!(raw.encode(), map.encode());
                for probe in &probes {
                    proptest::prop_assert_eq!(raw.get_str(probe), map.get_str(probe));
                    proptest::prop_assert_eq!(raw.contains(probe), map.contains(probe));
                }
            }
            if let Some(probe) = probes.first() {
                proptest::prop_assert_eq!(raw.remove(probe), map.remove(probe));
                proptest::prop_assert_eq!(raw.encode(), map.encode());
            }
        }
    }

    #[test]
    fn sorted_keys_and_null() {
        let mut c = Context::new();
        c.insert(PEER_SERVICE, "connector");
        c.insert(OPENTRACING_SPAN, Value::Object(Map::new()));
        c.insert(PEER_ID, "a<b");
        assert_eq!(
            c.encode(),
            br#"{"opentracing-span":{},"peer.id":"a\u003cb","peer.service":"connector"}"#
        );
        assert_eq!(Context::decode(b"null").unwrap(), Context::new());
        assert!(Context::decode(b"[1]").is_err());
        let back = Context::decode(&c.encode()).unwrap();
        assert_eq!(back, c);
    }
}

/// Key of the W3C trace context Pitaya v3 propagates: an object with `traceparent`
/// (and optionally `tracestate`, `baggage`).
pub const OTEL_SPAN: &str = "otel-span";

/// A W3C `traceparent` (version 00): the trace a request belongs to and the span that
/// sent it. Carried in [`OTEL_SPAN`] so that Pitaya v3 peers with OpenTelemetry join
/// the same trace, and so that logs of every hop share one `trace_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16 bytes, not all zero.
    pub trace_id: u128,
    /// 8 bytes, not all zero.
    pub span_id: u64,
    /// The W3C flags byte (01 = sampled).
    pub flags: u8,
}

impl TraceParent {
    /// A new trace with a random id, sampled.
    pub fn new_root() -> Self {
        let (hi, lo) = (random_u64(), random_u64());
        Self {
            trace_id: (u128::from(hi) << 64) | u128::from(lo) | 1,
            span_id: random_u64() | 1,
            flags: 1,
        }
    }

    /// A child of this span: same trace, new span id.
    pub fn child(&self) -> Self {
        Self { span_id: random_u64() | 1, ..*self }
    }

    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('-');
        let (v, t, p, f) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || v != "00" || t.len() != 32 || p.len() != 16 || f.len() != 2 {
            return None;
        }
        let trace_id = u128::from_str_radix(t, 16).ok().filter(|&t| t != 0)?;
        let span_id = u64::from_str_radix(p, 16).ok().filter(|&s| s != 0)?;
        Some(Self { trace_id, span_id, flags: u8::from_str_radix(f, 16).ok()? })
    }

    /// The trace id as 32 lowercase hex digits (what logs show).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // By hand: a frontend writes one for every message it forwards, and the
        // formatting machinery's padded hex cost several times this.
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        put_hex(&mut out[3..35], self.trace_id);
        out[35] = b'-';
        put_hex(&mut out[36..52], u128::from(self.span_id));
        out[52] = b'-';
        put_hex(&mut out[53..55], u128::from(self.flags));
        f.write_str(std::str::from_utf8(&out).map_err(|_| std::fmt::Error)?)
    }
}

/// The low `out.len()` hex digits of `value`, lowercase, most significant first.
fn put_hex(out: &mut [u8], mut value: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// 64 random bits, for ids, jitter and load spreading (not for cryptography).
///
/// Each `RandomState` is freshly keyed from the OS's randomness, so hashing nothing
/// with it gives unpredictable bits without a random-number crate.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

impl Context {
    /// The trace this context carries in [`OTEL_SPAN`], if any.
    pub fn trace_parent(&self) -> Option<TraceParent> {
        if !self.contains(OTEL_SPAN) {
            return None;
        }
        self.get(OTEL_SPAN)?.get("traceparent")?.as_str().and_then(TraceParent::parse)
    }

    /// Sets the `traceparent` of [`OTEL_SPAN`], keeping its other entries.
    pub fn set_trace_parent(&mut self, tp: TraceParent) {
        let mut obj = match self.remove(OTEL_SPAN) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        obj.insert("traceparent".to_owned(), Value::String(tp.to_string()));
        self.insert(OTEL_SPAN, Value::Object(obj));
    }

    /// Makes this context continue its trace on a new hop: a child span of the carried
    /// trace, or a new trace when there is none. Returns the hop's trace parent.
    pub fn next_hop(&mut self) -> TraceParent {
        let tp = self.trace_parent().map_or_else(TraceParent::new_root, |p| p.child());
        self.set_trace_parent(tp);
        tp
    }
}

#[cfg(test)]
mod trace_tests {
    use super::*;

    #[test]
    fn traceparent_text_is_the_padded_hex() {
        for _ in 0..200 {
            let tp = TraceParent { flags: (random_u64() & 0xff) as u8, ..TraceParent::new_root() };
            let expected = format!("00-{:032x}-{:016x}-{:02x}", tp.trace_id, tp.span_id, tp.flags);
            assert_eq!(tp.to_string(), expected);
        }
        let small = TraceParent { trace_id: 1, span_id: 2, flags: 1 };
        assert_eq!(small.to_string(), format!("00-{}1-{}2-01", "0".repeat(31), "0".repeat(15)));
    }

    #[test]
    fn traceparent_round_trip_and_hops() {
        let tp =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-xyz-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        let mut c = Context::new();
        c.insert(OTEL_SPAN, serde_json::json!({"tracestate": "k=v"}));
        let first = c.next_hop();
        let second = c.next_hop();
        assert_eq!(first.trace_id, second.trace_id);
        assert_ne!(first.span_id, second.span_id);
        assert_eq!(c.get(OTEL_SPAN).unwrap()["tracestate"], "k=v");
        assert_eq!(c.trace_parent(), Some(second));
    }
}
