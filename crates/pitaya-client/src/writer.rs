//! The writer task: sends queued packets in batches and the client's heartbeats.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::CloseReason;
use crate::shared::Shared;
use crate::transport::{PacketSink, TransportError};

/// Canonical heartbeat packet (spec §1.2).
const HEARTBEAT: &[u8] = &[0x03, 0, 0, 0];
/// Most packets coalesced into one flush, so that the close signal is checked regularly
/// under a flood of requests.
const MAX_BATCH: usize = 128;
/// How long the goodbye (FIN, close_notify, WebSocket close) may take.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Runs until the connection ends, then closes the write side politely.
pub(crate) async fn run(
    mut sink: PacketSink,
    mut queue: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
    heartbeat: Duration,
) {
    let mut closed = shared.close_signal();
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
            _ = closed.wait_for(|closed| *closed) => break,
            packet = queue.recv() => match packet {
                Some(packet) => packet,
                None => break,
            },
            () = tick(&mut ticker) => Bytes::from_static(HEARTBEAT),
        };
        // Racing the write against the close signal lets `close()` finish even when the
        // server stopped reading and the socket buffer is full.
        let written = tokio::select! {
            biased;
            _ = closed.wait_for(|closed| *closed) => break,
            written = write_batch(&mut sink, &mut queue, first) => written,
        };
        if let Err(e) = written {
            shared.shutdown(CloseReason::Io(e.to_string()));
            break;
        }
    }
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.close()).await;
}

/// Writes `first` and whatever else is already queued with a single flush.
async fn write_batch(
    sink: &mut PacketSink,
    queue: &mut mpsc::Receiver<Bytes>,
    first: Bytes,
) -> Result<(), TransportError> {
    sink.feed(first).await?;
    for _ in 1..MAX_BATCH {
        match queue.try_recv() {
            Ok(packet) => sink.feed(packet).await?,
            Err(_) => break,
        }
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
