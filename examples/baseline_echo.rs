//! The load benchmark's baseline: the least a Pitaya echo frontend can do, by hand.
//!
//! ```sh
//! cargo run --release --example baseline_echo -- --tcp 127.0.0.1:0
//! ```
//!
//! One tokio task per TCP connection reads packets with `pitaya-codec`, answers the
//! handshake with the bytes the echo example sends by default, ignores acks and
//! heartbeats, and answers each request with a response of the same id and body, all
//! replies of one read going out in one write. No sessions, no dispatch, no channels, no
//! heartbeat timer: whatever the echo example does beyond this is the cost of the
//! framework, so its throughput is the limit for our design on the same codec and
//! runtime. Like the echo example it prints `listening tcp=127.0.0.1:PORT` once bound.

#![expect(clippy::print_stdout, reason = "the listening line on stdout is the interface")]

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use pitaya_codec::{
    HandshakeResponse, Message, MessageCodec, MessageType, PacketDecoder, PacketType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Hand-written echo frontend: the baseline of `cargo xtask bench`.
#[derive(Debug, Parser)]
struct Args {
    /// TCP listen address.
    #[arg(long, default_value = "127.0.0.1:3250")]
    tcp: String,
}

/// Read sizes: Go's 4 KiB to start with, which is all an idle connection keeps, doubled
/// up to 64 KiB while reads fill the buffer. Loopback's MSS is about 64 KiB, and a
/// receiver that drains its socket in 4 KiB steps delays its TCP window updates: 4 KiB
/// echoes then stalled for milliseconds at a time.
const MIN_READ: usize = 4 * 1024;
const MAX_READ: usize = 64 * 1024;

#[tokio::main]
async fn main() -> Result<()> {
    pitaya_examples::init_tracing();
    let args = Args::parse();
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
    let listener =
        TcpListener::bind(&args.tcp).await.with_context(|| format!("binding {}", args.tcp))?;
    println!("listening tcp={}", listener.local_addr()?);
    // The echo example's handshake response with its defaults: no dictionary, JSON, 30 s.
    let handshake = {
        let body = HandshakeResponse::new(200, Duration::from_secs(30), Default::default(), "json");
        let mut packet = BytesMut::new();
        pitaya_codec::encode_packet(PacketType::Handshake, &body.encode(), &mut packet)?;
        packet.freeze()
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors, typically: keep serving the connections we have.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let handshake = handshake.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(stream, handshake).await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
}

async fn serve(mut stream: TcpStream, handshake: Bytes) -> Result<()> {
    stream.set_nodelay(true)?;
    let codec = MessageCodec::new();
    let decoder = PacketDecoder::default();
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let mut next_read = MIN_READ;
    loop {
        // Reclaimed in place once the bodies split off the buffer are dropped, which they
        // are by the end of each round; a partial packet is copied at most once per read.
        rbuf.reserve(next_read);
        let room = rbuf.capacity() - rbuf.len();
        let read = stream.read_buf(&mut rbuf).await?;
        if read == 0 {
            return Ok(());
        }
        next_read = if read == room {
            (next_read * 2).min(MAX_READ)
        } else if read < next_read / 2 {
            (next_read / 2).max(MIN_READ)
        } else {
            next_read
        };
        while let Some(packet) = decoder.decode(&mut rbuf)? {
            match packet.kind {
                PacketType::Handshake => wbuf.extend_from_slice(&handshake),
                PacketType::Data => {
                    let msg = codec.decode(packet.body)?;
                    if msg.kind == MessageType::Request && msg.id != 0 {
                        codec.encode_packet(&Message::response(msg.id, msg.data), &mut wbuf)?;
                    }
                }
                PacketType::HandshakeAck | PacketType::Heartbeat | PacketType::Kick => {}
            }
        }
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
    }
}
