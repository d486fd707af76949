//! [`Context`]: the context that travels with every RPC between servers (spec §6.5).

use serde_json::{Map, Value};

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
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context(Map<String, Value>);

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `Request.metadata`.
    ///
    /// # Errors
    /// When the bytes are not a JSON object.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let map: Option<Map<String, Value>> = serde_json::from_slice(bytes)?;
        Ok(Self(map.unwrap_or_default()))
    }

    /// Encodes as Go does: compact, keys sorted, HTML characters escaped.
    pub fn encode(&self) -> Vec<u8> {
        // A map of JSON values always encodes.
        pitaya_serialize::gojson::to_vec(&self.0).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The string under `key`, if it is one.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// Sets `key`, replacing any value.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.0.insert(key.into(), value.into());
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    /// Whether `key` is set.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The entries.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The context a frontend starts for a client message on `route` (spec §6.5): a new
    /// request id, the route, the start time in Unix nanoseconds, and the empty
    /// `opentracing-span` Go v2 always sends.
    pub fn for_request(route: &str) -> Self {
        let mut c = Self::new();
        c.insert(OPENTRACING_SPAN, Value::Object(Map::new()));
        c.insert(REQ_ROUTE, route);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        c.insert(REQ_START_TIME, now);
        c.insert(REQUEST_ID, new_request_id());
        c
    }
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
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
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
        self.get(OTEL_SPAN)?.get("traceparent")?.as_str().and_then(TraceParent::parse)
    }

    /// Sets the `traceparent` of [`OTEL_SPAN`], keeping its other entries.
    pub fn set_trace_parent(&mut self, tp: TraceParent) {
        let mut obj = match self.0.remove(OTEL_SPAN) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        obj.insert("traceparent".to_owned(), Value::String(tp.to_string()));
        self.0.insert(OTEL_SPAN.to_owned(), Value::Object(obj));
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
