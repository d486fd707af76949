//! The read half of a connection: decodes packets and routes responses, pushes,
//! heartbeats and kicks.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pitaya_codec::{MessageType, Packet, PacketType};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;

use crate::shared::{Reply, Shared};
use crate::transport::PacketSource;
use crate::{CloseReason, Push};

/// How many heartbeat intervals of silence mean the server is gone. Pitaya sends a
/// heartbeat every interval whatever else it sends (spec §1.6); libpitaya waits 6.
const SILENT_INTERVALS: u32 = 3;

/// Reads until the connection ends, and tells why. Cancel safe (the driver drops it when
/// the writer fails or the client closes).
pub(crate) async fn run(
    source: &mut PacketSource,
    shared: &Shared,
    pushes: &mpsc::Sender<Push>,
    heartbeat: Duration,
) -> CloseReason {
    let silence_limit = heartbeat.checked_mul(SILENT_INTERVALS).filter(|d| !d.is_zero());
    let mut last_packet = Instant::now();
    // Never polled when the server announced no heartbeat.
    let watchdog = tokio::time::sleep(silence_limit.unwrap_or_default());
    tokio::pin!(watchdog);
    loop {
        let packet = tokio::select! {
            biased;
            read = source.next() => match read {
                Ok(Some(packet)) => packet,
                Ok(None) => break CloseReason::ServerClosed,
                // To a resumable session a stream cut short is a drop like any other;
                // without resume the reason stays what it always was.
                Err(e) if e.is_broken_stream() && shared.resume.is_some() => {
                    break CloseReason::Io(e.to_string())
                }
                Err(e) if e.is_protocol() => break CloseReason::Protocol(e.to_string()),
                Err(e) => break CloseReason::Io(e.to_string()),
            },
            () = &mut watchdog, if silence_limit.is_some() => {
                let limit = silence_limit.unwrap_or_default();
                // The timer is not re-armed per packet (that would cost a timer update
                // each time); it is moved forward here when traffic came meanwhile.
                if last_packet.elapsed() >= limit {
                    break CloseReason::HeartbeatTimeout;
                }
                watchdog.as_mut().reset(last_packet + limit);
                continue;
            }
        };
        last_packet = Instant::now();
        if let ControlFlow::Break(reason) = handle(shared, pushes, packet) {
            break reason;
        }
    }
}

fn handle(
    shared: &Shared,
    pushes: &mpsc::Sender<Push>,
    packet: Packet,
) -> ControlFlow<CloseReason> {
    match packet.kind {
        PacketType::Heartbeat => shared.count_heartbeat(),
        PacketType::Kick => {
            // Set before shutdown so that `closed()` waiters see it.
            shared.set_kicked();
            return ControlFlow::Break(CloseReason::Kicked);
        }
        PacketType::Data => {
            // Every Data packet read counts, whatever becomes of it (docs/resume.md).
            if let Some(resume) = &shared.resume {
                resume.received.fetch_add(1, Ordering::AcqRel);
            }
            let message = match shared.codec.decode(packet.body) {
                Ok(message) => message,
                // Same reaction as the server's (spec §1.8): a message we cannot decode
                // (unknown route code, bad zlib) means the peers disagree; stop.
                Err(e) => return ControlFlow::Break(CloseReason::Protocol(e.to_string())),
            };
            match message.kind {
                MessageType::Response => {
                    let id = message.id;
                    if !shared.complete(id, Reply { data: message.data, error: message.error }) {
                        tracing::debug!(id, "response to a request nobody waits for");
                    }
                }
                MessageType::Push => {
                    deliver(shared, pushes, Push { route: message.route, data: message.data })
                }
                MessageType::Request | MessageType::Notify => {
                    tracing::warn!(kind = ?message.kind, route = message.route, "server sent a client message type, ignored");
                }
            }
        }
        PacketType::Handshake | PacketType::HandshakeAck => {
            tracing::warn!(kind = ?packet.kind, "unexpected handshake packet after the handshake, ignored");
        }
    }
    ControlFlow::Continue(())
}

/// Never waits for room: see [`Pushes`](crate::Pushes) for why a full channel drops.
fn deliver(shared: &Shared, pushes: &mpsc::Sender<Push>, push: Push) {
    match pushes.try_send(push) {
        Ok(()) => {}
        Err(TrySendError::Full(push)) => {
            let dropped = shared.count_dropped_push();
            if dropped == 1 {
                tracing::warn!(
                    route = push.route,
                    "push channel full: dropping pushes (see Client::dropped_pushes)"
                );
            } else {
                tracing::debug!(route = push.route, dropped, "push channel full, push dropped");
            }
        }
        // The application dropped its `Pushes`: it does not want them.
        Err(TrySendError::Closed(_)) => {}
    }
}
