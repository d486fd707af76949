//! Support code for the workspace's cross-crate tests.
//!
//! **Layer:** workspace only (the table in `xtask/src/layers.rs`): may depend on any
//! workspace crate.
//!
//! - [`packets`]: split a captured byte stream into packets.
//! - [`CutProxy`] (`cut_proxy.rs`): a loopback TCP proxy that breaks connections on
//!   demand: at once, after an exact number of bytes to the client, or silently.

use bytes::BytesMut;
use pitaya_codec::{Packet, PacketDecoder};

mod cut_proxy;

pub use cut_proxy::CutProxy;

/// Splits a byte stream into packets, failing the test on any framing error or leftover
/// bytes.
pub fn packets(wire: &[u8]) -> Vec<Packet> {
    let mut buf = BytesMut::from(wire);
    let mut out = Vec::new();
    let decoder = PacketDecoder::default();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(p)) => out.push(p),
            Ok(None) => break,
            Err(e) => panic!("framing error in test stream: {e}"),
        }
    }
    assert!(buf.is_empty(), "{} bytes left over after the last packet", buf.len());
    out
}
