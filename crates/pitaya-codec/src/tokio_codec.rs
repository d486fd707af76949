//! `tokio_util::codec` adapters (feature `tokio-codec`).

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::packet::{Packet, PacketDecoder, PacketError};

/// Frames a byte stream into [`Packet`]s and back, for use with `tokio_util::codec::Framed`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketCodec {
    decoder: PacketDecoder,
}

impl PacketCodec {
    /// A codec whose decoder rejects bodies longer than `max_body_len`.
    pub fn with_max_body_len(max_body_len: usize) -> Self {
        Self { decoder: PacketDecoder::with_max_body_len(max_body_len) }
    }
}

/// Error of the [`PacketCodec`]: a framing error or an I/O error from the transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PacketCodecError {
    /// The peer broke the framing; close the connection.
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = PacketCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, PacketCodecError> {
        Ok(self.decoder.decode(src)?)
    }
}

impl Encoder<Packet> for PacketCodec {
    type Error = PacketCodecError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), PacketCodecError> {
        Ok(item.encode(dst)?)
    }
}

impl Encoder<&Packet> for PacketCodec {
    type Error = PacketCodecError;

    fn encode(&mut self, item: &Packet, dst: &mut BytesMut) -> Result<(), PacketCodecError> {
        Ok(item.encode(dst)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PacketType;

    #[test]
    fn decoder_and_encoder_agree() {
        let mut codec = PacketCodec::default();
        let mut buf = BytesMut::new();
        codec.encode(Packet::new(PacketType::Data, &b"xyz"[..]), &mut buf).unwrap();
        codec.encode(&Packet::empty(PacketType::Heartbeat), &mut buf).unwrap();
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(Packet::new(PacketType::Data, &b"xyz"[..]))
        );
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Packet::empty(PacketType::Heartbeat)));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        let mut bad = BytesMut::from(&[9u8, 0, 0, 0][..]);
        assert!(matches!(
            codec.decode(&mut bad),
            Err(PacketCodecError::Packet(PacketError::UnknownType(9)))
        ));
    }
}
