//! The idle mode: N handshaken connections held open without a byte more, so that the
//! server's resident memory per connection can be read from outside.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use crate::many;
use crate::wire::IdleConn;

/// What the idle mode is asked to do.
#[derive(Debug, Clone)]
pub(crate) struct IdlePlan {
    pub(crate) addr: SocketAddr,
    pub(crate) conns: usize,
    /// How long to hold the connections once all are open.
    pub(crate) hold: Duration,
    /// Bound on opening them.
    pub(crate) timeout: Duration,
}

/// What opening the connections gave.
pub(crate) struct IdleReport {
    /// Connections open, handshaken and acknowledged.
    pub(crate) established: u64,
    /// Connections that failed or were not ready in time.
    pub(crate) errors: u64,
    /// Time taken to open them.
    pub(crate) setup: Duration,
}

/// Opens the connections, calls `ready` (the caller announces them), holds them for
/// `plan.hold`, then closes them all.
///
/// # Errors
/// When no connection could be opened.
pub(crate) async fn run(plan: &IdlePlan, ready: impl FnOnce(&IdleReport)) -> Result<IdleReport> {
    let started = Instant::now();
    let opened = many::open(plan.addr, plan.conns, started + plan.timeout, |conn| async move {
        Ok(conn.into_idle())
    })
    .await;
    if let Some(e) = opened.first_error {
        if opened.conns.is_empty() {
            return Err(e.context("no connection could be opened"));
        }
        tracing::warn!(error = %e, failed = opened.errors, "some connections failed");
    }
    let report = IdleReport {
        established: opened.conns.len() as u64,
        errors: opened.errors,
        setup: started.elapsed(),
    };
    ready(&report);
    tokio::time::sleep(plan.hold).await;
    let held: Vec<IdleConn> = opened.conns;
    drop(held);
    Ok(report)
}
