//! Packet framing: a 4-byte header (type, u24 big-endian body length) and a body (spec §1.1).

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Size of the packet header in bytes.
pub const HEADER_LEN: usize = 4;

/// Largest body a packet can carry: the length field is 24 bits wide.
///
/// Go Pitaya's encoder accepts a body of exactly 2^24 bytes and wraps its length to zero
/// (spec §1.1); we refuse anything above this value instead.
pub const MAX_BODY_LEN: usize = 0xFF_FFFF;

/// The kind of a packet, from its first byte (spec §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// JSON handshake request (client) or response (server).
    Handshake = 0x01,
    /// Client acknowledges the handshake response; the body is ignored.
    HandshakeAck = 0x02,
    /// Liveness in both directions; the body is ignored.
    Heartbeat = 0x03,
    /// Carries one message (see [`crate::message`]).
    Data = 0x04,
    /// Server tells the client it is being disconnected; the body is empty.
    Kick = 0x05,
}

impl TryFrom<u8> for PacketType {
    type Error = PacketError;

    fn try_from(byte: u8) -> Result<Self, PacketError> {
        Ok(match byte {
            0x01 => Self::Handshake,
            0x02 => Self::HandshakeAck,
            0x03 => Self::Heartbeat,
            0x04 => Self::Data,
            0x05 => Self::Kick,
            other => return Err(PacketError::UnknownType(other)),
        })
    }
}

/// One decoded packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// What the packet is.
    pub kind: PacketType,
    /// The body, at most [`MAX_BODY_LEN`] bytes.
    pub body: Bytes,
}

impl Packet {
    /// A packet of the given kind and body.
    pub fn new(kind: PacketType, body: impl Into<Bytes>) -> Self {
        Self { kind, body: body.into() }
    }

    /// A packet with an empty body (heartbeat, handshake ack, kick).
    pub fn empty(kind: PacketType) -> Self {
        Self { kind, body: Bytes::new() }
    }

    /// Encodes the packet into `dst`.
    ///
    /// # Errors
    /// [`PacketError::BodyTooLarge`] when the body exceeds [`MAX_BODY_LEN`]; `dst` is then
    /// left untouched.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), PacketError> {
        encode_packet(self.kind, &self.body, dst)
    }

    /// Parses a buffer that must hold exactly one packet, as a WebSocket frame does
    /// (spec §4.2: one packet per frame, no coalescing or splitting).
    ///
    /// # Errors
    /// [`PacketError::FrameTooShort`] under 4 bytes, [`PacketError::UnknownType`] for a bad
    /// type byte, [`PacketError::LengthMismatch`] when the header's length is not the rest
    /// of the frame, and [`PacketError::BodyTooLarge`] over `max_body_len`.
    pub fn from_frame(mut frame: Bytes, max_body_len: usize) -> Result<Self, PacketError> {
        let header = read_header(&frame).ok_or(PacketError::FrameTooShort(frame.len()))??;
        if header.len > max_body_len {
            return Err(PacketError::BodyTooLarge { len: header.len, max: max_body_len });
        }
        let actual = frame.len() - HEADER_LEN;
        if header.len != actual {
            return Err(PacketError::LengthMismatch { declared: header.len, actual });
        }
        frame.advance(HEADER_LEN);
        Ok(Self { kind: header.kind, body: frame })
    }
}

/// Writes a packet of `kind` with `body` into `dst`.
///
/// # Errors
/// [`PacketError::BodyTooLarge`] when `body` exceeds [`MAX_BODY_LEN`]; nothing is written.
pub fn encode_packet(kind: PacketType, body: &[u8], dst: &mut BytesMut) -> Result<(), PacketError> {
    let header = header_bytes(kind, body.len())?;
    dst.reserve(HEADER_LEN + body.len());
    dst.put_slice(&header);
    dst.put_slice(body);
    Ok(())
}

/// The 4 header bytes for a body of `len` bytes.
///
/// # Errors
/// [`PacketError::BodyTooLarge`] when `len` exceeds [`MAX_BODY_LEN`].
pub fn header_bytes(kind: PacketType, len: usize) -> Result<[u8; HEADER_LEN], PacketError> {
    if len > MAX_BODY_LEN {
        return Err(PacketError::BodyTooLarge { len, max: MAX_BODY_LEN });
    }
    let [_, a, b, c] = (len as u32).to_be_bytes();
    Ok([kind as u8, a, b, c])
}

/// Most room reserved at once for a packet body still to arrive.
const RESERVE_STEP: usize = 64 * 1024;

/// Incremental packet decoder for a byte stream (TCP, TLS).
///
/// Call [`decode`](Self::decode) whenever bytes arrive. The decoder keeps no state between
/// calls besides its limit: an incomplete packet simply stays in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketDecoder {
    max_body_len: usize,
}

impl Default for PacketDecoder {
    fn default() -> Self {
        Self { max_body_len: MAX_BODY_LEN }
    }
}

impl PacketDecoder {
    /// A decoder that rejects bodies longer than `max_body_len` (capped at
    /// [`MAX_BODY_LEN`]), so a server can bound the memory one connection may claim.
    pub fn with_max_body_len(max_body_len: usize) -> Self {
        Self { max_body_len: max_body_len.min(MAX_BODY_LEN) }
    }

    /// The largest body this decoder accepts.
    pub fn max_body_len(&self) -> usize {
        self.max_body_len
    }

    /// Takes one packet off the front of `src`.
    ///
    /// Returns `Ok(None)` when `src` does not yet hold a whole packet; the bytes stay in
    /// `src` and room is reserved for more of it (at most 64 KiB at a time, so that a
    /// declared length alone cannot make the caller allocate the whole body).
    ///
    /// # Errors
    /// [`PacketError::UnknownType`] or [`PacketError::BodyTooLarge`], detected from the
    /// header alone, before any body byte is buffered. The stream cannot be resynchronised
    /// after an error: close the connection.
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Packet>, PacketError> {
        let Some(header) = read_header(src) else {
            return Ok(None);
        };
        let header = header?;
        if header.len > self.max_body_len {
            return Err(PacketError::BodyTooLarge { len: header.len, max: self.max_body_len });
        }
        let total = HEADER_LEN + header.len;
        if src.len() < total {
            // Grow in steps: a 4-byte header must not make the server commit 16 MiB for
            // a body that may never come.
            src.reserve((total - src.len()).min(RESERVE_STEP));
            return Ok(None);
        }
        src.advance(HEADER_LEN);
        let body = src.split_to(header.len).freeze();
        Ok(Some(Packet { kind: header.kind, body }))
    }
}

struct Header {
    kind: PacketType,
    len: usize,
}

/// `None` when fewer than 4 bytes are available.
fn read_header(buf: &[u8]) -> Option<Result<Header, PacketError>> {
    let &[kind, a, b, c, ..] = buf else {
        return None;
    };
    Some(
        PacketType::try_from(kind)
            .map(|kind| Header { kind, len: u32::from_be_bytes([0, a, b, c]) as usize }),
    )
}

/// Why bytes could not be framed into packets.
///
/// Every variant means the connection must be closed with nothing sent (spec §1.8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    /// The type byte is not 0x01..=0x05.
    #[error("unknown packet type 0x{0:02x}")]
    UnknownType(u8),
    /// The body is longer than allowed (24-bit field, or the configured limit).
    #[error("packet body of {len} bytes exceeds the limit of {max} bytes")]
    BodyTooLarge {
        /// Declared or actual body length.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A frame that must hold one packet is shorter than a header.
    #[error("frame of {0} bytes is shorter than a packet header")]
    FrameTooShort(usize),
    /// A frame that must hold exactly one packet holds more or less than its header says.
    #[error("packet header declares {declared} body bytes but the frame carries {actual}")]
    LengthMismatch {
        /// Body length from the header.
        declared: usize,
        /// Body bytes actually present.
        actual: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Packet>, PacketError> {
        let mut buf = BytesMut::from(bytes);
        let decoder = PacketDecoder::default();
        let mut out = Vec::new();
        while let Some(p) = decoder.decode(&mut buf)? {
            out.push(p);
        }
        Ok(out)
    }

    #[test]
    fn canonical_empty_packets() {
        for (kind, bytes) in [
            (PacketType::Heartbeat, [3, 0, 0, 0]),
            (PacketType::HandshakeAck, [2, 0, 0, 0]),
            (PacketType::Kick, [5, 0, 0, 0]),
        ] {
            let mut out = BytesMut::new();
            Packet::empty(kind).encode(&mut out).unwrap();
            assert_eq!(&out[..], &bytes);
            assert_eq!(decode_all(&bytes).unwrap(), vec![Packet::empty(kind)]);
        }
    }

    #[test]
    fn decodes_byte_by_byte() {
        let wire = [4, 0, 0, 3, b'a', b'b', b'c', 3, 0, 0, 0];
        let decoder = PacketDecoder::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in &wire {
            buf.put_u8(b);
            if let Some(p) = decoder.decode(&mut buf).unwrap() {
                out.push(p);
            }
        }
        assert_eq!(
            out,
            vec![Packet::new(PacketType::Data, &b"abc"[..]), Packet::empty(PacketType::Heartbeat)]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_type_is_rejected_from_the_header() {
        assert_eq!(decode_all(&[0, 0, 0, 0]), Err(PacketError::UnknownType(0)));
        assert_eq!(decode_all(&[6, 0, 0, 0]), Err(PacketError::UnknownType(6)));
        assert_eq!(decode_all(&[0xFF]), Ok(vec![]));
    }

    #[test]
    fn limit_is_checked_before_buffering() {
        let decoder = PacketDecoder::with_max_body_len(10);
        let mut buf = BytesMut::from(&[4u8, 0, 0, 11][..]);
        assert_eq!(decoder.decode(&mut buf), Err(PacketError::BodyTooLarge { len: 11, max: 10 }));
        // The largest declared length reserves one step, not the whole body.
        let mut buf = BytesMut::from(&[4u8, 0xFF, 0xFF, 0xFF][..]);
        assert_eq!(PacketDecoder::default().decode(&mut buf), Ok(None));
        assert!(buf.capacity() <= HEADER_LEN + RESERVE_STEP + 64, "{}", buf.capacity());
    }

    #[test]
    fn encoder_refuses_oversized_bodies_instead_of_wrapping() {
        let body = vec![0u8; MAX_BODY_LEN + 1];
        let mut out = BytesMut::new();
        assert_eq!(
            encode_packet(PacketType::Data, &body, &mut out),
            Err(PacketError::BodyTooLarge { len: MAX_BODY_LEN + 1, max: MAX_BODY_LEN })
        );
        assert!(out.is_empty());
        assert_eq!(header_bytes(PacketType::Data, MAX_BODY_LEN), Ok([4, 0xFF, 0xFF, 0xFF]));
    }

    #[test]
    fn frames_must_hold_exactly_one_packet() {
        let ok = Packet::from_frame(Bytes::from_static(&[4, 0, 0, 1, 9]), MAX_BODY_LEN);
        assert_eq!(ok, Ok(Packet::new(PacketType::Data, &[9u8][..])));
        assert_eq!(
            Packet::from_frame(Bytes::from_static(&[4, 0, 0]), MAX_BODY_LEN),
            Err(PacketError::FrameTooShort(3))
        );
        assert_eq!(
            Packet::from_frame(Bytes::from_static(&[4, 0, 0, 1, 9, 9]), MAX_BODY_LEN),
            Err(PacketError::LengthMismatch { declared: 1, actual: 2 })
        );
        assert_eq!(
            Packet::from_frame(Bytes::from_static(&[4, 0, 0, 2, 9]), MAX_BODY_LEN),
            Err(PacketError::LengthMismatch { declared: 2, actual: 1 })
        );
    }
}
