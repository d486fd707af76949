//! The broadcast benchmark's baseline: the least a Pitaya frontend can do to fan a
//! message out to a group, by hand.
//!
//! ```sh
//! cargo run --release --example baseline_broadcast -- --tcp 127.0.0.1:0
//! ```
//!
//! Each TCP connection has a reading task and a writing task joined by an unbounded
//! channel of encoded packets; the writer batches whatever is queued into one write.
//! `room.join` (a request) puts the connection's channel in the one group and answers
//! `{"code":200}`; `room.message` (a notify) encodes one `onMessage` push with the same
//! body and hands that `Bytes` to every member's channel. The handshake is answered with
//! the echo example's default bytes, acks and heartbeats are ignored, anything else is
//! dropped. No sessions, uids, groups service, dispatch or bounded queues (a member that
//! stops reading grows its channel without limit): whatever the echo example does beyond
//! this is the cost of the framework, so its pushes/s are the limit for our design on the
//! same codec and runtime. Like the echo example it prints `listening tcp=127.0.0.1:PORT`
//! once bound.

#![expect(clippy::print_stdout, reason = "the listening line on stdout is the interface")]

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use clap::Parser;
use pitaya_codec::{
    HandshakeResponse, Message, MessageCodec, MessageType, PacketDecoder, PacketType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// Hand-written fan-out frontend: the broadcast baseline of `cargo xtask bench`.
#[derive(Debug, Parser)]
struct Args {
    /// TCP listen address.
    #[arg(long, default_value = "127.0.0.1:3250")]
    tcp: String,
}

/// Read size per call; requests and notifies are small.
const READ_CHUNK: usize = 4 * 1024;
/// Bytes batched into one write at most, as the framework's writer does.
const MAX_BATCH: usize = 64 * 1024;

/// The one group: every member's outgoing channel.
type Room = Arc<Mutex<Vec<mpsc::UnboundedSender<Bytes>>>>;

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
    let room: Room = Arc::default();
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
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_loop(write, rx));
        let (handshake, room) = (handshake.clone(), room.clone());
        tokio::spawn(async move {
            if let Err(e) = read_loop(read, tx, handshake, room).await {
                tracing::debug!(%peer, error = %e, "connection closed");
            }
        });
    }
}

async fn read_loop(
    mut read: OwnedReadHalf,
    tx: mpsc::UnboundedSender<Bytes>,
    handshake: Bytes,
    room: Room,
) -> Result<()> {
    let codec = MessageCodec::new();
    let decoder = PacketDecoder::default();
    let mut rbuf = BytesMut::new();
    let mut joined = false;
    loop {
        rbuf.reserve(READ_CHUNK);
        if read.read_buf(&mut rbuf).await? == 0 {
            return Ok(());
        }
        while let Some(packet) = decoder.decode(&mut rbuf)? {
            match packet.kind {
                PacketType::Handshake => {
                    let _ = tx.send(handshake.clone());
                }
                PacketType::Data => {
                    let msg = codec.decode(packet.body)?;
                    match (msg.kind, msg.route.as_str()) {
                        (MessageType::Request, "room.join") => {
                            if !joined {
                                joined = true;
                                lock(&room).push(tx.clone());
                            }
                            let reply = Message::response(msg.id, &br#"{"code":200}"#[..]);
                            let _ = tx.send(encode(&codec, &reply)?);
                        }
                        (MessageType::Notify, "room.message") => {
                            let push = encode(&codec, &Message::push("onMessage", msg.data))?;
                            // Members that left have closed channels: dropped here.
                            lock(&room).retain(|member| member.send(push.clone()).is_ok());
                        }
                        _ => {}
                    }
                }
                PacketType::HandshakeAck | PacketType::Heartbeat | PacketType::Kick => {}
            }
        }
    }
}

async fn write_loop(mut write: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    let mut wbuf = BytesMut::new();
    while let Some(first) = rx.recv().await {
        wbuf.extend_from_slice(&first);
        while wbuf.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(more) => wbuf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if write.write_all(&wbuf).await.is_err() {
            return;
        }
        wbuf.clear();
    }
}

fn encode(codec: &MessageCodec, msg: &Message) -> Result<Bytes> {
    let mut out = BytesMut::new();
    codec.encode_packet(msg, &mut out)?;
    Ok(out.freeze())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
