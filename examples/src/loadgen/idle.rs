//! The idle mode: N handshaken connections held open without a byte more (or, with
//! heartbeats, answering only the server's heartbeats), so that the server's resident
//! memory per connection and its CPU per second of idle time can be read from outside.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Result;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::many;
use crate::wire::IdleConn;

/// What the idle mode is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct IdlePlan {
    pub(crate) addr: SocketAddr,
    pub(crate) conns: usize,
    /// Source addresses the connections are spread over; empty: the system's choice.
    pub(crate) sources: Vec<IpAddr>,
    /// Whether each connection answers the server's heartbeats while held (otherwise the
    /// server closes it after two heartbeat intervals, spec §1.6).
    pub(crate) heartbeats: bool,
    /// How long to hold the connections once all are open.
    pub(crate) hold: Duration,
    /// Bound on opening them.
    pub(crate) timeout: Duration,
}

/// What opening (and holding) the connections gave.
pub(crate) struct IdleReport {
    /// Connections open, handshaken and acknowledged.
    pub(crate) established: u64,
    /// Connections that failed or were not ready in time.
    pub(crate) errors: u64,
    /// Time taken to open them.
    pub(crate) setup: Duration,
    /// With heartbeats: heartbeats answered over the hold, and connections still open at
    /// its end (the others were closed by the server or failed).
    pub(crate) heartbeats: Option<(u64, u64)>,
}

/// Opens the connections, calls `ready` (the caller announces them), holds them for
/// `plan.hold`, then closes them all.
///
/// # Errors
/// When no connection could be opened.
pub(crate) async fn run(plan: &IdlePlan, ready: impl FnOnce(&IdleReport)) -> Result<IdleReport> {
    let started = Instant::now();
    let opened = many::open_from(
        plan.addr,
        &plan.sources,
        plan.conns,
        started + plan.timeout,
        |conn| async move { Ok(conn.into_idle()) },
    )
    .await;
    if let Some(e) = opened.first_error {
        if opened.conns.is_empty() {
            return Err(e.context("no connection could be opened"));
        }
        tracing::warn!(error = %e, failed = opened.errors, "some connections failed");
    }
    let mut report = IdleReport {
        established: opened.conns.len() as u64,
        errors: opened.errors,
        setup: started.elapsed(),
        heartbeats: None,
    };
    ready(&report);
    let held: Vec<IdleConn> = opened.conns;
    if !plan.heartbeats {
        tokio::time::sleep(plan.hold).await;
        drop(held);
        return Ok(report);
    }
    let until = Instant::now() + plan.hold;
    let mut tasks = JoinSet::new();
    for conn in held {
        tasks.spawn(conn.answer_heartbeats(until));
    }
    let (mut answered, mut open) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok((n, still_open)) => {
                answered += n;
                open += u64::from(still_open);
            }
            Err(e) => {
                report.errors += 1;
                tracing::debug!(error = %e, "an idle connection failed");
            }
        }
    }
    report.heartbeats = Some((answered, open));
    Ok(report)
}
