//! The push-fanout mode: members spread over several frontends each bind their own uid
//! (`connector.testsvc.testonlybindid` of the cluster `testing` example), and one more
//! connection sends `game.testsvc.testsendtousers` notifies naming every member's uid,
//! each carrying a sequence number, keeping at most `window` of them not yet delivered to
//! every member. Members count what they receive per sequence number in memory shared
//! with the sender (this process holds all the clients), so the window advances exactly
//! when a message has reached everyone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use pitaya_codec::{Message, MessageCodec, MessageType, PacketType};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::many;
use crate::wire::Conn;

/// The route each member binds its uid with.
const BIND_ROUTE: &str = "connector.testsvc.testonlybindid";
/// The notify that pushes to the users it names.
const SEND_ROUTE: &str = "game.testsvc.testsendtousers";
/// The route of the pushes `testsendtousers` makes.
const PUSH_ROUTE: &str = "route.sendtousers";
/// Sequence numbers tracked: far more messages than any bounded run sends at 1,000
/// members (a million pushes/s for 600 s is 600,000 messages), 4 MB of counters.
pub(crate) const MAX_SEQ: usize = 1_000_000;

/// What the push-fanout mode is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct FanoutPlan {
    /// Frontends; members are spread evenly over them, the sender uses the first.
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) members: usize,
    /// Messages not yet delivered to every member, at most.
    pub(crate) window: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// Bound on the set-up, and separately on the wait for the last pushes.
    pub(crate) timeout: Duration,
    /// Prefix of the members' uids, unique to the run.
    pub(crate) uid_prefix: String,
    /// Processes whose CPU time over the measured window is reported.
    pub(crate) cpu_pids: Vec<u32>,
}

/// What the push-fanout mode measured.
#[derive(Debug, Default)]
pub(crate) struct FanoutReport {
    /// Members that bound their uid.
    pub(crate) bound: u64,
    /// Messages sent.
    pub(crate) sent: u64,
    /// Pushes expected: bound members × messages sent.
    pub(crate) expected: u64,
    /// Pushes received, with a known sequence number.
    pub(crate) received: u64,
    /// Pushes some member never got (a message that reached a member twice counts once).
    pub(crate) missing: u64,
    /// Pushes a member got more than once.
    pub(crate) duplicates: u64,
    /// Members that got every message exactly once.
    pub(crate) complete_members: u64,
    /// Pushes received within the measured window, and that window.
    pub(crate) window_pushes: u64,
    pub(crate) window: Duration,
    /// From the last message sent to its delivery to every member, or `None` when some
    /// push was still missing at the deadline.
    pub(crate) drained: Option<Duration>,
    /// Members that failed to bind, pushes with a foreign route or unreadable body, and
    /// connections the server closed.
    pub(crate) errors: u64,
    /// CPU seconds each of [`FanoutPlan::cpu_pids`] used within the measured window.
    pub(crate) window_cpu_s: Vec<Option<f64>>,
}

/// Counters shared by the members and the sender.
struct Tally {
    /// Pushes received per sequence number.
    per_seq: Vec<AtomicU32>,
    /// Pushes received in total.
    delivered: AtomicU64,
    /// Messages delivered to every member.
    done: AtomicU64,
    /// Members that bound: what "delivered to every member" means.
    members: u32,
    /// Wakes the sender when a message is done.
    progress: Notify,
}

/// Binds the members, then sends for warm-up + duration, then waits for the last
/// messages to reach everyone (or `timeout`), then compares what each member got.
///
/// # Errors
/// When no member could bind, or the sender cannot connect or write.
pub(crate) async fn run(plan: &FanoutPlan) -> Result<FanoutReport> {
    ensure!(!plan.addrs.is_empty(), "no frontend address");
    let setup_deadline = Instant::now() + plan.timeout;
    let next_uid = Arc::new(AtomicUsize::new(0));
    let mut members: Vec<(String, Conn)> = Vec::with_capacity(plan.members);
    let mut report = FanoutReport::default();
    for (i, addr) in plan.addrs.iter().enumerate() {
        // Even spread: the first `members % n` frontends take one more.
        let n = plan.members / plan.addrs.len() + usize::from(i < plan.members % plan.addrs.len());
        let (next_uid, prefix) = (next_uid.clone(), plan.uid_prefix.clone());
        let opened = many::open(*addr, n, setup_deadline, move |mut conn| {
            let uid = format!("{prefix}{}", next_uid.fetch_add(1, Ordering::Relaxed));
            async move {
                conn.request(BIND_ROUTE, Bytes::from(uid.clone())).await?;
                Ok((uid, conn))
            }
        })
        .await;
        if let Some(e) = &opened.first_error {
            tracing::warn!(error = %e, failed = opened.errors, %addr, "some members did not bind");
        }
        report.errors += opened.errors;
        members.extend(opened.conns);
    }
    ensure!(!members.is_empty(), "no member could bind");
    report.bound = members.len() as u64;
    let mut sender = Conn::open(plan.addrs[0], false).await.context("the sender's connection")?;

    let mut per_seq = Vec::with_capacity(MAX_SEQ);
    per_seq.resize_with(MAX_SEQ, || AtomicU32::new(0));
    let tally = Arc::new(Tally {
        per_seq,
        delivered: AtomicU64::new(0),
        done: AtomicU64::new(0),
        members: u32::try_from(members.len())?,
        progress: Notify::new(),
    });
    // `{"uids":["a","b",…],"msg":"` then the sequence number and `"}`.
    let uids: Vec<&str> = members.iter().map(|(uid, _)| uid.as_str()).collect();
    let head = format!(r#"{{"uids":{},"msg":""#, serde_json::to_string(&uids)?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = JoinSet::new();
    for (_, conn) in members {
        let (tally, stop) = (tally.clone(), stop_rx.clone());
        readers.spawn(count_pushes(conn, tally, stop));
    }

    let codec = MessageCodec::new();
    let started = Instant::now();
    let window_open = started + plan.warmup;
    let end = window_open + plan.duration;
    let cpu =
        crate::cpu::spawn_window(plan.cpu_pids.clone(), window_open.into_std(), end.into_std());
    let mut at_open: Option<(Instant, u64)> = None;
    let mut sent: u64 = 0;
    let limit = plan.window as u64;
    loop {
        let now = Instant::now();
        if at_open.is_none() && now >= window_open {
            at_open = Some((now, tally.delivered.load(Ordering::Acquire)));
        }
        if now >= end {
            break;
        }
        // Registered before reading `done`, so that a message finished in between wakes
        // the wait below rather than being missed.
        let progressed = tally.progress.notified();
        let done = tally.done.load(Ordering::Acquire);
        while sent - done.min(sent) < limit && (sent as usize) < MAX_SEQ {
            let body = format!("{head}{sent}\"}}");
            sender.queue(&codec, &Message::notify(SEND_ROUTE, Bytes::from(body)))?;
            sent += 1;
        }
        sender.flush().await?;
        let wake = if at_open.is_none() { window_open } else { end };
        tokio::select! {
            () = progressed => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
    let closed_at = Instant::now();
    let delivered_at_close = tally.delivered.load(Ordering::Acquire);
    if let Some((opened_at, delivered_at_open)) = at_open {
        report.window = closed_at.duration_since(opened_at);
        report.window_pushes = delivered_at_close - delivered_at_open;
    }
    report.sent = sent;
    report.window_cpu_s = cpu.await?;

    // The last messages in flight: wait until each reached every member, or the deadline.
    let drain_deadline = closed_at + plan.timeout;
    loop {
        let progressed = tally.progress.notified();
        if tally.done.load(Ordering::Acquire) >= sent {
            report.drained = Some(closed_at.elapsed());
            break;
        }
        if tokio::time::timeout_at(drain_deadline, progressed).await.is_err() {
            break;
        }
    }
    // Anything late or duplicated gets a moment more to show up before the count.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = stop_tx.send(true);
    // Connections are kept until every member is done, so that no session closes while
    // the servers are still pushing to the others.
    let mut held = Vec::with_capacity(report.bound as usize);
    while let Some(result) = readers.join_next().await {
        let (conn, member) = result?;
        held.push(conn);
        report.errors += member.errors;
        if member.received == sent {
            report.complete_members += 1;
        }
    }
    held.push(sender);
    let members = u64::from(tally.members);
    for count in tally.per_seq.iter().take(sent as usize) {
        let count = u64::from(count.load(Ordering::Acquire));
        report.received += count;
        report.missing += members.saturating_sub(count);
        report.duplicates += count.saturating_sub(members);
    }
    report.expected = members * sent;
    Ok(report)
}

struct MemberStats {
    /// Pushes with a known sequence number.
    received: u64,
    errors: u64,
}

/// Reads pushes until told to stop, counting each in `tally`; a closed connection or an
/// undecodable packet ends it early, as an error.
async fn count_pushes(
    mut conn: Conn,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) -> (Conn, MemberStats) {
    let mut stats = MemberStats { received: 0, errors: 0 };
    let codec = MessageCodec::new();
    loop {
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
                Ok(msg) if msg.kind == MessageType::Push && msg.route == PUSH_ROUTE => {
                    match seq_of(&msg.data).and_then(|seq| tally.per_seq.get(seq)) {
                        Some(count) => {
                            stats.received += 1;
                            tally.delivered.fetch_add(1, Ordering::AcqRel);
                            if count.fetch_add(1, Ordering::AcqRel) + 1 == tally.members {
                                tally.done.fetch_add(1, Ordering::AcqRel);
                                tally.progress.notify_one();
                            }
                        }
                        None => stats.errors += 1,
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "undecodable packet");
                    stats.errors += 1;
                    return (conn, stats);
                }
            }
        }
        tokio::select! {
            filled = conn.fill() => match filled {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    if !*stop.borrow() {
                        stats.errors += 1;
                    }
                    return (conn, stats);
                }
            },
            _ = stop.changed() => return (conn, stats),
        }
    }
}

/// The sequence number a push body carries: the decimal text of `msg`.
fn seq_of(data: &[u8]) -> Option<usize> {
    std::str::from_utf8(data).ok()?.trim().parse().ok()
}
