//! The broadcast mode: M members join group `room`, one of them sends K `room.message`
//! notifies, and every member counts its `onMessage` pushes until it has all K.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use pitaya_codec::{Message, MessageCodec, MessageType, PacketType};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::many;
use crate::wire::Conn;

/// What the broadcast mode is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct BroadcastPlan {
    pub(crate) addr: SocketAddr,
    pub(crate) members: usize,
    pub(crate) messages: usize,
    pub(crate) payload: Bytes,
    /// Bound on the set-up, and separately on the wait for the pushes.
    pub(crate) timeout: Duration,
}

/// What the broadcast mode measured.
pub(crate) struct BroadcastReport {
    /// Members that joined.
    pub(crate) joined: u64,
    /// Pushes expected: joined members × messages.
    pub(crate) expected: u64,
    /// Pushes received.
    pub(crate) received: u64,
    /// From the first notify sent to the last push received.
    pub(crate) elapsed: Duration,
    /// From the first notify sent to the first member having all its pushes.
    pub(crate) first_done: Option<Duration>,
    /// Members that failed to join, pushes missing at the deadline, wrong bodies.
    pub(crate) errors: u64,
}

/// Joins every member, sends the notifies, and waits for every push or the deadline.
///
/// # Errors
/// When no member could join, or the sender cannot write.
pub(crate) async fn run(plan: &BroadcastPlan) -> Result<BroadcastReport> {
    let setup_deadline = Instant::now() + plan.timeout;
    let opened = many::open(plan.addr, plan.members, setup_deadline, |mut conn| async move {
        conn.request("room.join", Bytes::from_static(b"{}")).await?;
        Ok(conn)
    })
    .await;
    let mut members = opened.conns;
    let Some(sender) = members.first_mut() else {
        let why = opened.first_error.unwrap_or_else(|| anyhow::anyhow!("no member asked for"));
        return Err(why.context("no member could join"));
    };
    if let Some(e) = &opened.first_error {
        tracing::warn!(error = %e, failed = opened.errors, "some members did not join");
    }

    let codec = MessageCodec::new();
    for _ in 0..plan.messages {
        sender.queue(&codec, &Message::notify("room.message", plan.payload.clone()))?;
    }
    let started = Instant::now();
    sender.flush().await?;

    let deadline = started + plan.timeout;
    let joined = members.len() as u64;
    let mut readers = JoinSet::new();
    for conn in members {
        let plan = plan.clone();
        readers.spawn(async move { count_pushes(conn, &plan, deadline).await });
    }
    let mut report = BroadcastReport {
        joined,
        expected: joined * plan.messages as u64,
        received: 0,
        elapsed: Duration::ZERO,
        first_done: None,
        errors: opened.errors,
    };
    // Connections are kept until every member is done, so that no session closes while
    // the server is still broadcasting to the others.
    let mut held = Vec::with_capacity(report.joined as usize);
    while let Some(result) = readers.join_next().await {
        let (conn, member) = result?;
        held.push(conn);
        report.received += member.received;
        report.errors += member.errors;
        if let Some(last) = member.last_push {
            report.elapsed = report.elapsed.max(last.duration_since(started));
            if member.received == plan.messages as u64 {
                let done = last.duration_since(started);
                report.first_done = Some(report.first_done.map_or(done, |d| d.min(done)));
            }
        }
    }
    report.errors += report.expected - report.received.min(report.expected);
    Ok(report)
}

struct MemberStats {
    received: u64,
    errors: u64,
    last_push: Option<Instant>,
}

/// Reads pushes until all arrived or `deadline`; a failure ends it, counted in `errors`
/// by the pushes it did not get.
async fn count_pushes(
    mut conn: Conn,
    plan: &BroadcastPlan,
    deadline: Instant,
) -> (Conn, MemberStats) {
    let mut stats = MemberStats { received: 0, errors: 0, last_push: None };
    let codec = MessageCodec::new();
    let want = plan.messages as u64;
    while stats.received < want {
        match tokio::time::timeout_at(deadline, conn.fill()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false) | Err(_)) | Err(_) => break,
        }
        loop {
            let msg = match conn.buffered() {
                Ok(Some(packet)) if packet.kind == PacketType::Data => {
                    codec.decode(packet.body).map_err(anyhow::Error::from)
                }
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => Err(e),
            };
            match msg {
                Ok(msg) if msg.kind == MessageType::Push && msg.route == "onMessage" => {
                    stats.received += 1;
                    stats.last_push = Some(Instant::now());
                    if msg.data != plan.payload {
                        stats.errors += 1;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "undecodable packet");
                    return (conn, stats);
                }
            }
        }
    }
    (conn, stats)
}
