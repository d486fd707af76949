//! The message layer carried in Data packets (spec §2).
//!
//! ```text
//! flag:1 | [id: varint] (request, response) | [route] (request, notify, push) | data...
//! ```

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::compression::{self, CompressionError};
use crate::dict::RouteDict;
use crate::packet::{HEADER_LEN, MAX_BODY_LEN, PacketError, PacketType, header_bytes};
use crate::varint::{self, VarintError};

const ROUTE_COMPRESSED: u8 = 0x01;
const DATA_COMPRESSED: u8 = 0x10;
const ERROR: u8 = 0x20;
const TYPE_SHIFT: u8 = 1;
const TYPE_MASK: u8 = 0x07;
/// Longest uncompressed route: its length is one byte on the wire.
pub const MAX_ROUTE_LEN: usize = 255;

/// The four message types (spec §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Client → server, expects a response; has an id and a route.
    Request = 0,
    /// Client → server, no response; has a route.
    Notify = 1,
    /// Server → client answer to a request; has an id.
    Response = 2,
    /// Server → client unsolicited message; has a route.
    Push = 3,
}

impl MessageType {
    /// Whether messages of this type carry an id.
    pub fn has_id(self) -> bool {
        matches!(self, Self::Request | Self::Response)
    }

    /// Whether messages of this type carry a route.
    pub fn has_route(self) -> bool {
        !matches!(self, Self::Response)
    }
}

impl TryFrom<u8> for MessageType {
    type Error = MessageError;

    fn try_from(value: u8) -> Result<Self, MessageError> {
        Ok(match value {
            0 => Self::Request,
            1 => Self::Notify,
            2 => Self::Response,
            3 => Self::Push,
            other => return Err(MessageError::WrongType(other)),
        })
    }
}

/// One message, with its data already inflated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message type.
    pub kind: MessageType,
    /// The id of a request or response; 0 for notify and push (and for a request whose
    /// response is suppressed, spec §2.2).
    pub id: u64,
    /// The route of a request, notify or push; empty for a response.
    pub route: String,
    /// The payload, uncompressed.
    pub data: Bytes,
    /// Whether the data is an error payload (flag 0x20, spec §2.5).
    pub error: bool,
}

impl Message {
    /// A request with `id` for `route`.
    pub fn request(id: u64, route: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self {
            kind: MessageType::Request,
            id,
            route: route.into(),
            data: data.into(),
            error: false,
        }
    }

    /// A notify for `route`.
    pub fn notify(route: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self {
            kind: MessageType::Notify,
            id: 0,
            route: route.into(),
            data: data.into(),
            error: false,
        }
    }

    /// A successful response to request `id`.
    pub fn response(id: u64, data: impl Into<Bytes>) -> Self {
        Self {
            kind: MessageType::Response,
            id,
            route: String::new(),
            data: data.into(),
            error: false,
        }
    }

    /// An error response to request `id`; `data` is an encoded error payload.
    pub fn error_response(id: u64, data: impl Into<Bytes>) -> Self {
        Self {
            kind: MessageType::Response,
            id,
            route: String::new(),
            data: data.into(),
            error: true,
        }
    }

    /// A push on `route`.
    pub fn push(route: impl Into<String>, data: impl Into<Bytes>) -> Self {
        Self {
            kind: MessageType::Push,
            id: 0,
            route: route.into(),
            data: data.into(),
            error: false,
        }
    }
}

/// Encodes and decodes messages with a route dictionary and a data-compression setting.
///
/// Cheap to clone (the dictionary is shared). One codec serves every connection of a server.
#[derive(Debug, Clone)]
pub struct MessageCodec {
    dict: Arc<RouteDict>,
    compress_data: bool,
    compression_level: u32,
    min_compress_len: usize,
    max_inflated_len: usize,
}

/// Default for [`MessageCodec::with_compression_level`]: zlib level 4, not Go's 6.
///
/// The least CPU whose output stays within 5 % of level 6's on the bench's JSON-like
/// payloads of 1 and 4 KiB (`cargo xtask bench --part compression` prints the table):
/// with zlib-rs, level 4's output was no larger than level 6's (297 and 845 bytes against
/// 298 and 848) for 5 % and 9 % fewer instructions, while levels 1 to 3 were 7 to 63 %
/// larger on 4 KiB. Peers inflate any level alike (spec §2.4).
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 4;

/// Default for [`MessageCodec::with_min_compress_len`].
///
/// Setting up a zlib stream costs about 60,000 instructions whatever the input size
/// (`cargo xtask bench`), while deflate saves a few bytes at most on payloads this short.
pub const DEFAULT_MIN_COMPRESS_LEN: usize = 128;

impl Default for MessageCodec {
    /// No dictionary, no data compression, inflate limit [`MAX_BODY_LEN`].
    fn default() -> Self {
        Self {
            dict: Arc::default(),
            compress_data: false,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            min_compress_len: DEFAULT_MIN_COMPRESS_LEN,
            max_inflated_len: MAX_BODY_LEN,
        }
    }
}

impl MessageCodec {
    /// A codec without dictionary or compression.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `dict` to compress routes on encode and to resolve codes on decode.
    pub fn with_dict(mut self, dict: Arc<RouteDict>) -> Self {
        self.dict = dict;
        self
    }

    /// Deflates outgoing data when that makes it strictly shorter, setting flag 0x10
    /// (`pitaya.handler.messages.compression`, spec §2.4).
    pub fn with_data_compression(mut self, enabled: bool) -> Self {
        self.compress_data = enabled;
        self
    }

    /// With data compression on, deflates at zlib `level` (0 to 9, above 9 counts as 9;
    /// default [`DEFAULT_COMPRESSION_LEVEL`]). Peers inflate any level alike (spec §2.4),
    /// so this trades CPU against bytes on the wire only.
    pub fn with_compression_level(mut self, level: u32) -> Self {
        self.compression_level = level.min(9);
        self
    }

    /// The zlib level outgoing data is deflated at.
    pub fn compression_level(&self) -> u32 {
        self.compression_level
    }

    /// With data compression on, payloads shorter than `len` bytes are sent as they are
    /// (default [`DEFAULT_MIN_COMPRESS_LEN`]; 0 tries every payload, as Go does). Clients
    /// must already accept uncompressed data, since Go also skips compression whenever it
    /// does not shrink the payload, so no peer can tell.
    pub fn with_min_compress_len(mut self, len: usize) -> Self {
        self.min_compress_len = len;
        self
    }

    /// Caps the size of inflated incoming data (default [`MAX_BODY_LEN`]).
    pub fn with_max_inflated_len(mut self, limit: usize) -> Self {
        self.max_inflated_len = limit;
        self
    }

    /// The route dictionary in use.
    pub fn dict(&self) -> &Arc<RouteDict> {
        &self.dict
    }

    /// Whether outgoing data is compressed when that helps.
    pub fn data_compression(&self) -> bool {
        self.compress_data
    }

    /// Appends the encoding of `msg` to `dst`.
    ///
    /// A route present in the dictionary is always sent as its code, for every routable
    /// type, as Go does (spec §2.3). Response routes are never written.
    ///
    /// # Errors
    /// [`MessageError::RouteTooLong`] for an uncompressed route over 255 bytes (Go writes a
    /// corrupt message instead). `dst` is unchanged on error.
    pub fn encode(&self, msg: &Message, dst: &mut BytesMut) -> Result<(), MessageError> {
        let route_code = self.route_code(msg)?;
        let compressed = self.compressed_data(&msg.data);
        let data = compressed.as_deref().unwrap_or(&msg.data);
        let mut flag = (msg.kind as u8) << TYPE_SHIFT;
        if route_code.is_some() {
            flag |= ROUTE_COMPRESSED;
        }
        if msg.error {
            flag |= ERROR;
        }
        if compressed.is_some() {
            flag |= DATA_COMPRESSED;
        }
        dst.reserve(1 + 10 + 1 + msg.route.len() + data.len());
        dst.put_u8(flag);
        if msg.kind.has_id() {
            varint::write(msg.id, dst);
        }
        if msg.kind.has_route() {
            match route_code {
                Some(code) => dst.put_u16(code),
                None => {
                    // Checked by route_code: the length fits in one byte.
                    dst.put_u8(msg.route.len() as u8);
                    dst.put_slice(msg.route.as_bytes());
                }
            }
        }
        dst.put_slice(data);
        Ok(())
    }

    /// Appends a whole Data packet carrying `msg` to `dst`, writing the message in place
    /// after the header (no intermediate buffer).
    ///
    /// # Errors
    /// As [`encode`](Self::encode), plus [`MessageError::Packet`] when the encoded message
    /// exceeds [`MAX_BODY_LEN`]. `dst` is unchanged on error.
    pub fn encode_packet(&self, msg: &Message, dst: &mut BytesMut) -> Result<(), MessageError> {
        let start = dst.len();
        dst.put_slice(&[0; HEADER_LEN]);
        if let Err(e) = self.encode(msg, dst) {
            dst.truncate(start);
            return Err(e);
        }
        let body_len = dst.len() - start - HEADER_LEN;
        match header_bytes(PacketType::Data, body_len) {
            Ok(header) => {
                if let Some(slot) = dst.get_mut(start..start + HEADER_LEN) {
                    slot.copy_from_slice(&header);
                }
                Ok(())
            }
            Err(e) => {
                dst.truncate(start);
                Err(MessageError::Packet(e))
            }
        }
    }

    /// Decodes the body of a Data packet. The data is a zero-copy slice of `body` unless
    /// it had to be inflated.
    ///
    /// # Errors
    /// Any [`MessageError`] other than `RouteTooLong`/`Packet`; each one means the peer
    /// broke the protocol and the connection should be closed (spec §1.8). In particular a
    /// request cut right after its id, which makes Go panic, is
    /// [`MessageError::Truncated`].
    pub fn decode(&self, mut body: Bytes) -> Result<Message, MessageError> {
        let (flag, rest) = match body.as_ref() {
            [flag, rest @ ..] if !rest.is_empty() => (*flag, rest),
            _ => return Err(MessageError::Invalid),
        };
        let kind = MessageType::try_from((flag >> TYPE_SHIFT) & TYPE_MASK)?;
        let mut offset = 1;
        let mut id = 0;
        if kind.has_id() {
            let (value, used) = varint::read(rest).map_err(|e| match e {
                VarintError::Truncated => MessageError::Truncated("message id"),
                VarintError::Overflow => MessageError::IdOverflow,
            })?;
            id = value;
            offset += used;
        }
        let mut route = String::new();
        if kind.has_route() {
            let rest = body.get(offset..).unwrap_or_default();
            if flag & ROUTE_COMPRESSED != 0 {
                let &[hi, lo, ..] = rest else {
                    return Err(MessageError::Truncated("route code"));
                };
                let code = u16::from_be_bytes([hi, lo]);
                let known = self.dict.route(code).ok_or(MessageError::UnknownRouteCode(code))?;
                route = route_with_slack(known);
                offset += 2;
            } else {
                let (&len, rest) =
                    rest.split_first().ok_or(MessageError::Truncated("route length"))?;
                let bytes = rest.get(..usize::from(len)).ok_or(MessageError::Truncated("route"))?;
                route = route_with_slack(
                    std::str::from_utf8(bytes).map_err(|_| MessageError::RouteNotUtf8)?,
                );
                offset += 1 + usize::from(len);
            }
        }
        let mut data = body.split_off(offset.min(body.len()));
        if flag & DATA_COMPRESSED != 0 {
            data = compression::inflate(&data, self.max_inflated_len)?.into();
        }
        Ok(Message { kind, id, route, data, error: flag & ERROR != 0 })
    }

    fn route_code(&self, msg: &Message) -> Result<Option<u16>, MessageError> {
        if !msg.kind.has_route() {
            return Ok(None);
        }
        if let Some(code) = self.dict.code(&msg.route) {
            return Ok(Some(code));
        }
        if msg.route.len() > MAX_ROUTE_LEN {
            return Err(MessageError::RouteTooLong(msg.route.len()));
        }
        Ok(None)
    }

    fn compressed_data(&self, data: &[u8]) -> Option<Vec<u8>> {
        if !self.compress_data || data.is_empty() || data.len() < self.min_compress_len {
            return None;
        }
        let packed = compression::deflate_level(data, self.compression_level);
        (packed.len() < data.len()).then_some(packed)
    }
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Fewer than 2 bytes: no message is that short (Go's "invalid message").
    #[error("invalid message")]
    Invalid,
    /// The type bits hold 4..=7.
    #[error("wrong message type {0}")]
    WrongType(u8),
    /// The message ended inside the named field.
    #[error("truncated message: {0} is missing or cut short")]
    Truncated(&'static str),
    /// The id does not fit in 64 bits.
    #[error("message id overflows 64 bits")]
    IdOverflow,
    /// A compressed route code that the dictionary does not hold.
    #[error("route code {0} not found in dictionary")]
    UnknownRouteCode(u16),
    /// The route bytes are not UTF-8.
    #[error("route is not valid utf-8")]
    RouteNotUtf8,
    /// A route longer than 255 bytes cannot be encoded uncompressed.
    #[error("route of {0} bytes exceeds 255 bytes")]
    RouteTooLong(usize),
    /// Compressed data could not be inflated.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// The encoded message does not fit in a packet.
    #[error(transparent)]
    Packet(#[from] PacketError),
}

/// Room left after a decoded route for a server type to be put in front of it in place
/// ([`Route::with_server_type`](crate::Route::with_server_type)): a client's
/// `service.method` route is completed with the frontend's type on every message, and
/// growing an exact-size string would move it to a new allocation each time.
const ROUTE_SLACK: usize = 24;

fn route_with_slack(route: &str) -> String {
    let mut owned = String::with_capacity(route.len() + ROUTE_SLACK);
    owned.push_str(route);
    owned
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PacketDecoder;

    fn codec_with_a() -> MessageCodec {
        MessageCodec::new().with_dict(Arc::new(RouteDict::from_entries([("a", 1)]).unwrap()))
    }

    fn encode(codec: &MessageCodec, msg: &Message) -> Vec<u8> {
        let mut out = BytesMut::new();
        codec.encode(msg, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn flags_the_server_emits() {
        let c = MessageCodec::new();
        assert_eq!(encode(&c, &Message::response(1, &b"x"[..]))[0], 0x04);
        assert_eq!(encode(&c, &Message::error_response(1, &b"x"[..]))[0], 0x24);
        assert_eq!(encode(&c, &Message::push("p", &b"x"[..]))[0], 0x06);
        assert_eq!(encode(&codec_with_a(), &Message::push("a", &b"x"[..]))[0], 0x07);
        let z = MessageCodec::new().with_data_compression(true);
        let big = vec![b'a'; 200];
        assert_eq!(encode(&z, &Message::response(1, big.clone()))[0], 0x14);
        assert_eq!(encode(&z, &Message::error_response(1, big.clone()))[0], 0x34);
        assert_eq!(encode(&z, &Message::push("p", big))[0], 0x16);
    }

    #[test]
    fn the_compression_level_reaches_the_wire() {
        let text = "player joined the room score level gold ".repeat(20);
        let at = |level| {
            let z = MessageCodec::new().with_data_compression(true).with_compression_level(level);
            let wire = encode(&z, &Message::push("chat", text.clone()));
            assert_eq!(z.decode(Bytes::from(wire.clone())).unwrap().data, text.as_bytes());
            wire
        };
        // Level 0 only stores, which never shrinks: the data goes out as it is.
        assert_eq!(at(0)[0] & DATA_COMPRESSED, 0);
        // zlib's header names the level class (RFC 1950 FLEVEL): 01 fastest, DA best.
        let zlib_header = |wire: Vec<u8>| wire.windows(2).any(|w| w == [0x78, 0x01]);
        assert!(zlib_header(at(1)));
        assert_eq!(at(42), at(9));
        assert_eq!(MessageCodec::new().with_compression_level(42).compression_level(), 9);
        assert_eq!(MessageCodec::new().compression_level(), DEFAULT_COMPRESSION_LEVEL);
    }

    #[test]
    fn compression_only_when_it_shrinks() {
        let z = MessageCodec::new().with_data_compression(true);
        assert_eq!(encode(&z, &Message::response(1, &b"{}"[..])), [0x04, 0x01, b'{', b'}']);
        let text = "hello ".repeat(50);
        let wire = encode(&z, &Message::push("chat", text.clone()));
        assert!(wire.len() < text.len());
        let back = z.decode(Bytes::from(wire)).unwrap();
        assert_eq!(back, Message::push("chat", text));
    }

    #[test]
    fn two_byte_request_is_an_error_not_a_panic() {
        let c = MessageCodec::new();
        assert_eq!(
            c.decode(Bytes::from_static(&[0x00, 0x05])),
            Err(MessageError::Truncated("route length"))
        );
        assert_eq!(
            c.decode(Bytes::from_static(&[0x00, 0x85])),
            Err(MessageError::Truncated("message id"))
        );
        assert_eq!(
            c.decode(Bytes::from_static(&[0x00, 0x01, 0x05, b'a'])),
            Err(MessageError::Truncated("route"))
        );
        assert_eq!(
            c.decode(Bytes::from_static(&[0x01, 0x01, 0x00])),
            Err(MessageError::Truncated("route code"))
        );
        assert_eq!(
            c.decode(Bytes::from_static(&[0x03, 0x00, 0x09])),
            Err(MessageError::UnknownRouteCode(9))
        );
        assert_eq!(c.decode(Bytes::from_static(&[0x04])), Err(MessageError::Invalid));
        assert_eq!(c.decode(Bytes::from_static(&[0x08, 0x00])), Err(MessageError::WrongType(4)));
        assert_eq!(
            c.decode(Bytes::from_static(&[0x02, 0x01, 0xFF])),
            Err(MessageError::RouteNotUtf8)
        );
    }

    #[test]
    fn bad_compressed_data_is_an_error() {
        let c = MessageCodec::new();
        let err = c.decode(Bytes::from_static(&[0x14, 0x01, 0x78, 0x9C, 0x00])).unwrap_err();
        assert!(matches!(err, MessageError::Compression(_)), "{err:?}");
        let limited = MessageCodec::new().with_max_inflated_len(10);
        let mut wire = vec![0x14, 0x01];
        wire.extend(compression::deflate(&[0; 100]));
        assert_eq!(
            limited.decode(Bytes::from(wire)),
            Err(MessageError::Compression(CompressionError::TooLarge { limit: 10 }))
        );
    }

    #[test]
    fn long_routes_are_rejected_unless_in_the_dict() {
        let c = MessageCodec::new();
        let long = "r".repeat(256);
        let mut out = BytesMut::new();
        assert_eq!(
            c.encode(&Message::push(long.clone(), Bytes::new()), &mut out),
            Err(MessageError::RouteTooLong(256))
        );
        assert!(out.is_empty());
        let ok = "r".repeat(255);
        let wire = encode(&c, &Message::push(ok.clone(), Bytes::new()));
        assert_eq!(c.decode(Bytes::from(wire)).unwrap().route, ok);
        let dict = Arc::new(RouteDict::from_entries([(long.as_str(), 7)]).unwrap());
        let d = MessageCodec::new().with_dict(dict);
        assert_eq!(encode(&d, &Message::push(long, Bytes::new())), [0x07, 0x00, 0x07]);
    }

    #[test]
    fn data_packet_in_place() {
        let c = MessageCodec::new();
        let mut out = BytesMut::from(&b"prefix"[..]);
        c.encode_packet(&Message::response(300, &b"ok"[..]), &mut out).unwrap();
        assert_eq!(&out[..], b"prefix\x04\x00\x00\x05\x04\xAC\x02ok");
        let mut wire = out.split_off(6);
        let packet = PacketDecoder::default().decode(&mut wire).unwrap().unwrap();
        assert_eq!(c.decode(packet.body).unwrap(), Message::response(300, &b"ok"[..]));
    }

    #[test]
    fn oversized_packet_is_refused() {
        let c = MessageCodec::new();
        let mut out = BytesMut::new();
        let msg = Message::response(1, vec![0u8; MAX_BODY_LEN]);
        assert!(matches!(c.encode_packet(&msg, &mut out), Err(MessageError::Packet(_))));
        assert!(out.is_empty());
    }

    #[test]
    fn wrong_type_byte_is_not_a_message_type() {
        assert_eq!(MessageType::try_from(0xFF), Err(MessageError::WrongType(0xFF)));
    }
}
