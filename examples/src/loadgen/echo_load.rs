//! The request mode: C connections, each keeping F `room.echo` requests in flight.
//!
//! Closed loop: a request goes out each time a response comes back, so the offered load
//! follows the server's pace and latency is the time each request waited, not a queue
//! the generator built. Only responses received inside the measurement window (after the
//! warm-up) count towards req/s and the latency histogram.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use hdrhistogram::Histogram;
use pitaya_codec::{Message, MessageCodec, MessageType, PacketType};
use tokio::task::JoinSet;

use crate::wire::Conn;

/// What the request mode is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct LoadPlan {
    pub(crate) addr: SocketAddr,
    pub(crate) ws: bool,
    pub(crate) conns: usize,
    pub(crate) inflight: usize,
    pub(crate) route: String,
    pub(crate) payload: Bytes,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// Processes whose CPU time over the window is reported (`--cpu-pids`).
    pub(crate) cpu_pids: Vec<u32>,
}

/// What the request mode measured.
pub(crate) struct LoadReport {
    /// Latencies, in µs, of the responses received in the window.
    pub(crate) latency_us: Histogram<u64>,
    /// Responses received in the window.
    pub(crate) measured: u64,
    /// Responses received in all, warm-up included.
    pub(crate) total: u64,
    /// Connections that failed to open, error responses, wrong bodies, unknown ids,
    /// connections lost before the end.
    pub(crate) errors: u64,
    /// The window's actual length.
    pub(crate) window: Duration,
    /// CPU seconds each of [`LoadPlan::cpu_pids`] used within the window.
    pub(crate) window_cpu_s: Vec<Option<f64>>,
}

/// Opens every connection, then runs the warm-up and the window on all of them at once.
///
/// # Errors
/// Only when no connection at all could be opened; other failures are counted.
pub(crate) async fn run(plan: &LoadPlan) -> Result<LoadReport> {
    let mut opening = JoinSet::new();
    for _ in 0..plan.conns {
        let (addr, ws) = (plan.addr, plan.ws);
        opening.spawn(async move { Conn::open(addr, ws).await });
    }
    let mut conns = Vec::with_capacity(plan.conns);
    let mut errors = 0;
    let mut first_error = None;
    while let Some(opened) = opening.join_next().await {
        match opened? {
            Ok(conn) => conns.push(conn),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let (true, Some(e)) = (conns.is_empty(), first_error) {
        return Err(e.context("no connection could be opened"));
    }

    let start = Instant::now() + plan.warmup;
    let end = start + plan.duration;
    let cpu = crate::cpu::spawn_window(plan.cpu_pids.clone(), start, end);
    let empty = new_histogram()?;
    let mut drivers = JoinSet::new();
    for conn in conns {
        let (plan, latency_us) = (plan.clone(), empty.clone());
        drivers.spawn(async move { drive(conn, &plan, start, end, latency_us).await });
    }
    let mut report = LoadReport {
        latency_us: empty,
        measured: 0,
        total: 0,
        errors,
        window: plan.duration,
        window_cpu_s: Vec::new(),
    };
    while let Some(stats) = drivers.join_next().await {
        let stats = stats?;
        report.latency_us.add(&stats.latency_us)?;
        report.measured += stats.measured;
        report.total += stats.total;
        report.errors += stats.errors;
    }
    report.window = Instant::now().saturating_duration_since(start).min(plan.duration);
    report.window_cpu_s = cpu.await?;
    Ok(report)
}

/// Latencies from 1 µs to 60 s at 3 significant digits.
pub(crate) fn new_histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

struct ConnStats {
    latency_us: Histogram<u64>,
    measured: u64,
    total: u64,
    errors: u64,
}

/// Runs one connection until `end`; a failure ends it and counts as one error.
async fn drive(
    mut conn: Conn,
    plan: &LoadPlan,
    start: Instant,
    end: Instant,
    latency_us: Histogram<u64>,
) -> ConnStats {
    let mut stats = ConnStats { latency_us, measured: 0, total: 0, errors: 0 };
    if let Err(e) = pump(&mut conn, plan, start, end, &mut stats).await {
        tracing::debug!(error = %e, "connection failed");
        stats.errors += 1;
    }
    stats
}

async fn pump(
    conn: &mut Conn,
    plan: &LoadPlan,
    start: Instant,
    end: Instant,
    stats: &mut ConnStats,
) -> Result<()> {
    let codec = MessageCodec::new();
    // (id, sent at) of the requests in flight: F is small, a linear scan beats a map.
    let mut in_flight: Vec<(u64, Instant)> = Vec::with_capacity(plan.inflight);
    let mut next_id = 1u64;
    let mut send = |conn: &mut Conn, in_flight: &mut Vec<(u64, Instant)>| -> Result<()> {
        conn.queue(&codec, &Message::request(next_id, plan.route.as_str(), plan.payload.clone()))?;
        in_flight.push((next_id, Instant::now()));
        next_id += 1;
        Ok(())
    };
    for _ in 0..plan.inflight {
        send(conn, &mut in_flight)?;
    }
    conn.flush().await?;
    loop {
        match tokio::time::timeout_at(end.into(), conn.fill()).await {
            Err(_) => return Ok(()),
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => anyhow::bail!("server closed the connection"),
            Ok(Err(e)) => return Err(e),
        }
        while let Some(packet) = conn.buffered()? {
            if packet.kind != PacketType::Data {
                continue;
            }
            let now = Instant::now();
            let msg = codec.decode(packet.body)?;
            if msg.kind != MessageType::Response {
                continue;
            }
            let Some(slot) = in_flight.iter().position(|(id, _)| *id == msg.id) else {
                stats.errors += 1;
                continue;
            };
            let (_, sent) = in_flight.swap_remove(slot);
            stats.total += 1;
            if msg.error || msg.data.len() != plan.payload.len() {
                stats.errors += 1;
            } else if now >= start && now < end {
                stats.measured += 1;
                let micros = now.duration_since(sent).as_micros();
                stats.latency_us.saturating_record(u64::try_from(micros).unwrap_or(u64::MAX));
            }
            if now >= end {
                return Ok(());
            }
            send(conn, &mut in_flight)?;
        }
        conn.flush().await?;
    }
}
