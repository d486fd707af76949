//! Windowed fan-out, for two targets:
//! - push-fanout ([`Target::Users`]): members spread over several frontends each bind
//!   their own uid (`connector.testsvc.testonlybindid` of the cluster `testing` example),
//!   and one more connection sends `game.testsvc.testsendtousers` notifies naming every
//!   member's uid;
//! - broadcast ([`Target::Group`]): members call `room.join` on the echo example (or the
//!   `baseline_broadcast` server), and one more connection sends `room.message` notifies
//!   of a fixed size, which the server pushes verbatim to every member as `onMessage`.
//!
//! Each message carries a sequence number, and at most `window` of them are not yet
//! delivered to every member. Members count what they receive per sequence number in
//! memory shared with the sender (this process holds all the clients), so the window
//! advances exactly when a message has reached everyone, and each receipt's delay since
//! the sender wrote that message (one clock, one process) goes into a histogram.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
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
/// The group target's join request, notify and push routes (the echo example's).
const JOIN_ROUTE: &str = "room.join";
const MESSAGE_ROUTE: &str = "room.message";
const GROUP_PUSH_ROUTE: &str = "onMessage";
/// Sequence numbers tracked: far more messages than any bounded run sends at 1,000
/// members (a million pushes/s for 600 s is 600,000 messages), 4 MB of counters.
pub(crate) const MAX_SEQ: usize = 1_000_000;

/// Who the members are and what the sender sends.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Members bind uids with this prefix, unique to the run; each message names them all.
    Users { uid_prefix: String },
    /// Members join group `room`; each message is a `room.message` body of `payload`
    /// bytes (at least [`MIN_GROUP_PAYLOAD`]), pushed back verbatim.
    Group { payload: usize },
}

/// The shortest group message body: `{"seq":N,"text":""}` with room for the number.
pub(crate) const MIN_GROUP_PAYLOAD: usize = 32;

/// What a fan-out run is asked to do.
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
    pub(crate) target: Target,
    /// Processes whose CPU time over the measured window is reported.
    pub(crate) cpu_pids: Vec<u32>,
}

/// What a fan-out run measured.
#[derive(Debug)]
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
    /// Delivery latency in µs (receipt by a member minus the sender's write of that
    /// message) of every push of the messages sent within the measured window.
    pub(crate) latency_us: Histogram<u64>,
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
    /// When the sender wrote each message, in ns since `base`.
    sent_at: Vec<AtomicU64>,
    base: Instant,
    /// The first sequence number sent within the measured window (`u64::MAX` before it
    /// opens): receipts of earlier messages are warm-up and not in the histogram.
    first_measured: AtomicU64,
    latency_us: std::sync::Mutex<Histogram<u64>>,
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
    let mut report = FanoutReport {
        bound: 0,
        sent: 0,
        expected: 0,
        received: 0,
        missing: 0,
        duplicates: 0,
        complete_members: 0,
        window_pushes: 0,
        window: Duration::ZERO,
        drained: None,
        errors: 0,
        window_cpu_s: Vec::new(),
        latency_us: crate::echo_load::new_histogram()?,
    };
    for (i, addr) in plan.addrs.iter().enumerate() {
        // Even spread: the first `members % n` frontends take one more.
        let n = plan.members / plan.addrs.len() + usize::from(i < plan.members % plan.addrs.len());
        let (next_uid, target) = (next_uid.clone(), plan.target.clone());
        let opened = many::open(*addr, n, setup_deadline, move |mut conn| {
            let n = next_uid.fetch_add(1, Ordering::Relaxed);
            let target = target.clone();
            async move {
                let uid = match target {
                    Target::Users { uid_prefix } => {
                        let uid = format!("{uid_prefix}{n}");
                        conn.request(BIND_ROUTE, Bytes::from(uid.clone())).await?;
                        uid
                    }
                    Target::Group { .. } => {
                        conn.request(JOIN_ROUTE, Bytes::from_static(b"{}")).await?;
                        String::new()
                    }
                };
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
    let mut sent_at = Vec::with_capacity(MAX_SEQ);
    sent_at.resize_with(MAX_SEQ, || AtomicU64::new(0));
    let tally = Arc::new(Tally {
        per_seq,
        delivered: AtomicU64::new(0),
        done: AtomicU64::new(0),
        members: u32::try_from(members.len())?,
        progress: Notify::new(),
        sent_at,
        base: Instant::now(),
        first_measured: AtomicU64::new(u64::MAX),
        latency_us: std::sync::Mutex::new(crate::echo_load::new_histogram()?),
    });
    let (send_route, push_route, body) = match &plan.target {
        Target::Users { .. } => {
            // `{"uids":["a","b",…],"msg":"` then the sequence number and `"}`.
            let uids: Vec<&str> = members.iter().map(|(uid, _)| uid.as_str()).collect();
            let head = format!(r#"{{"uids":{},"msg":""#, serde_json::to_string(&uids)?);
            let body: Box<dyn Fn(u64) -> Bytes> =
                Box::new(move |seq| Bytes::from(format!("{head}{seq}\"}}")));
            (SEND_ROUTE, PUSH_ROUTE, body)
        }
        Target::Group { payload } => {
            ensure!(*payload >= MIN_GROUP_PAYLOAD, "payload below {MIN_GROUP_PAYLOAD} B");
            let filler = crate::text_payload(*payload);
            let payload = *payload;
            let body: Box<dyn Fn(u64) -> Bytes> =
                Box::new(move |seq| group_body(seq, payload, &filler));
            (MESSAGE_ROUTE, GROUP_PUSH_ROUTE, body)
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readers = JoinSet::new();
    for (_, conn) in members {
        let (tally, stop) = (tally.clone(), stop_rx.clone());
        readers.spawn(count_pushes(conn, tally, push_route, stop));
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
            tally.first_measured.store(sent, Ordering::Release);
        }
        if now >= end {
            break;
        }
        // Registered before reading `done`, so that a message finished in between wakes
        // the wait below rather than being missed.
        let progressed = tally.progress.notified();
        let done = tally.done.load(Ordering::Acquire);
        let write_time = tally.base.elapsed().as_nanos() as u64;
        while sent - done.min(sent) < limit && (sent as usize) < MAX_SEQ {
            sender.queue(&codec, &Message::notify(send_route, body(sent)))?;
            // Stamped with the write just below: a member that reads the message reads
            // its stamp after it, since both go through the same socket round trip.
            if let Some(at) = tally.sent_at.get(sent as usize) {
                at.store(write_time, Ordering::Release);
            }
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
    report.latency_us =
        std::mem::replace(&mut *lock(&tally.latency_us), crate::echo_load::new_histogram()?);
    Ok(report)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A `room.message` body of exactly `len` bytes carrying `seq`: `{"seq":N,"text":"…"}`
/// with chat-like text from `filler`.
fn group_body(seq: u64, len: usize, filler: &[u8]) -> Bytes {
    let head = format!(r#"{{"seq":{seq},"text":""#);
    let room = len.saturating_sub(head.len() + 2);
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(head.as_bytes());
    // The filler's own text, past its `{"text":"` head, never holds a quote.
    body.extend(filler.iter().skip(9).copied().chain(std::iter::repeat(b' ')).take(room));
    body.extend_from_slice(br#""}"#);
    Bytes::from(body)
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
    push_route: &'static str,
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
                Ok(msg) if msg.kind == MessageType::Push && msg.route == push_route => {
                    let seq = seq_of(&msg.data);
                    match seq.and_then(|seq| tally.per_seq.get(seq).map(|count| (seq, count))) {
                        Some((seq, count)) => {
                            stats.received += 1;
                            tally.record_latency(seq);
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

impl Tally {
    /// Notes the delay since the write of message `seq`, when it was sent in the window.
    fn record_latency(&self, seq: usize) {
        if (seq as u64) < self.first_measured.load(Ordering::Acquire) {
            return;
        }
        let Some(sent) = self.sent_at.get(seq).map(|s| s.load(Ordering::Acquire)) else {
            return;
        };
        let now = self.base.elapsed().as_nanos() as u64;
        let us = (now.saturating_sub(sent) / 1_000).max(1);
        let _ = lock(&self.latency_us).record(us);
    }
}

/// The sequence number a push body carries: its first run of decimal digits (the whole
/// `msg` of push-fanout, the `seq` field of a group message).
fn seq_of(data: &[u8]) -> Option<usize> {
    let start = data.iter().position(u8::is_ascii_digit)?;
    let digits = data.get(start..)?;
    let len = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    std::str::from_utf8(digits.get(..len)?).ok()?.parse().ok()
}
