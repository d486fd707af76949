//! The write half of a connection: re-sends after a resume, then queued packets in
//! batches, and the client's heartbeats.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::CloseReason;
use crate::shared::{Outgoing, Shared};
use crate::transport::{PacketSink, TransportError};

/// Canonical heartbeat packet (spec §1.2).
const HEARTBEAT: &[u8] = &[0x03, 0, 0, 0];
/// Most packets coalesced into one flush.
const MAX_BATCH: usize = 128;

/// Writes `resend` (the packets a resumed server did not read, already numbered), then
/// queued packets and heartbeats until writing fails. Not cancel safe in the middle of a
/// write: the driver drops it only when the connection is abandoned anyway.
pub(crate) async fn run(
    sink: &mut PacketSink,
    queue: &mut mpsc::Receiver<Outgoing>,
    shared: &Shared,
    heartbeat: Duration,
    resend: Vec<Bytes>,
) -> CloseReason {
    // docs/resume.md: right after the handshake ack, before anything new.
    if !resend.is_empty() {
        if let Err(e) = write_all(sink, resend).await {
            return CloseReason::Io(e.to_string());
        }
    }
    // libpitaya and Go's client send a heartbeat every interval after the handshake.
    // Under constant traffic the tick may lose the race below; that is harmless, any
    // packet counts as liveness for the server (spec §1.6).
    let mut ticker = (!heartbeat.is_zero()).then(|| {
        let mut ticker = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    });
    loop {
        let first = tokio::select! {
            biased;
            packet = queue.recv() => match packet {
                Some(packet) => match take(shared, packet) {
                    Some(bytes) => bytes,
                    None => continue,
                },
                // The shared state holds a sender as long as the client lives.
                None => return CloseReason::Local,
            },
            () = tick(&mut ticker) => Bytes::from_static(HEARTBEAT),
        };
        if let Err(e) = write_batch(sink, queue, shared, first).await {
            return CloseReason::Io(e.to_string());
        }
    }
}

/// The bytes of a queued packet, numbered and kept for re-sending when the session is
/// resumable; `None` for a packet of a session the server no longer has.
fn take(shared: &Shared, out: Outgoing) -> Option<Bytes> {
    if out.epoch != shared.epoch() {
        tracing::debug!("packet for a lost session not sent");
        return None;
    }
    if let Some(resume) = &shared.resume {
        let mut state = resume.lock();
        // Numbered in wire order, so that the server's count M names a prefix.
        if state.token.is_some() {
            state.replay.record(out.packet.clone());
        }
    }
    Some(out.packet)
}

/// Writes `first` and whatever else is already queued with a single flush.
async fn write_batch(
    sink: &mut PacketSink,
    queue: &mut mpsc::Receiver<Outgoing>,
    shared: &Shared,
    first: Bytes,
) -> Result<(), TransportError> {
    sink.feed(first).await?;
    for _ in 1..MAX_BATCH {
        match queue.try_recv() {
            Ok(packet) => {
                if let Some(bytes) = take(shared, packet) {
                    sink.feed(bytes).await?;
                }
            }
            Err(_) => break,
        }
    }
    sink.flush().await
}

async fn write_all(sink: &mut PacketSink, packets: Vec<Bytes>) -> Result<(), TransportError> {
    for packet in packets {
        sink.feed(packet).await?;
    }
    sink.flush().await
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}
