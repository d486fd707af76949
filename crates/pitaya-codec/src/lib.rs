//! Sans-IO codec for the Pitaya (pomelo) client wire protocol.
//!
//! **Layer:** foundation (the table in `xtask/src/layers.rs`): may depend on no other
//! workspace crate.
//!
//! Every byte a Pitaya or pomelo client sends goes through this crate. It knows nothing
//! about sockets or async runtimes: callers feed it bytes and get values back, so the same
//! code serves the server's agent, the Rust client, the CLI, the bot and the fuzzers.
//!
//! # Layout
//! - [`packet`]: the 4-byte packet header (type + u24 length) and [`PacketDecoder`], an
//!   incremental decoder over a [`bytes::BytesMut`].
//! - [`message`]: the message layer inside Data packets (request, notify, response, push),
//!   encoded and decoded by [`MessageCodec`].
//! - [`route`]: parsing of `serverType.service.method` routes into [`Route`].
//! - [`dict`]: the route dictionary ([`RouteDict`]) used to compress routes to u16 codes.
//! - [`handshake`]: the JSON handshake request and response.
//! - [`compression`]: zlib deflate and capped inflate.
//! - `tokio_codec` (feature `tokio-codec`): `tokio_util::codec` adapters.
//!
//! # Features
//! | feature       | default | what it adds |
//! |---------------|---------|--------------|
//! | `tokio-codec` | no      | [`PacketCodec`](tokio_codec::PacketCodec), a `tokio_util` `Decoder`/`Encoder` for packets |
//! | `fuzzing`     | no      | `fuzz`, the entry points used by the fuzz targets |
//!
//! # Errors
//! Every decoding error means the peer sent bytes that do not follow the protocol; the
//! caller is expected to log it and close the connection (spec §1.8). No input of any
//! bytes makes a decoder panic: this is checked by property tests and fuzz targets.
//!
//! # Example
//! ```
//! use bytes::BytesMut;
//! use pitaya_codec::{Message, MessageCodec, PacketDecoder, PacketType};
//!
//! let codec = MessageCodec::default();
//! let mut wire = BytesMut::new();
//! codec.encode_packet(&Message::request(7, "room.join", &b"{}"[..]), &mut wire).unwrap();
//!
//! let packet = PacketDecoder::default().decode(&mut wire).unwrap().unwrap();
//! assert_eq!(packet.kind, PacketType::Data);
//! let message = codec.decode(packet.body).unwrap();
//! assert_eq!((message.id, message.route.as_str()), (7, "room.join"));
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod compression;
pub mod dict;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
pub mod handshake;
pub mod message;
pub mod packet;
pub mod route;
#[cfg(feature = "tokio-codec")]
pub mod tokio_codec;
mod varint;

pub use compression::CompressionError;
pub use dict::{DictError, RouteDict};
pub use handshake::{
    ClientInfo, HandshakeError, HandshakeRequest, HandshakeResponse, HandshakeSys, ResumeGrant,
    ResumeRequest,
};
pub use message::{Message, MessageCodec, MessageError, MessageType};
pub use packet::{MAX_BODY_LEN, Packet, PacketDecoder, PacketError, PacketType, encode_packet};
pub use route::{Route, RouteError};
