//! Opening thousands of connections: a bounded number of handshakes at a time, all
//! within one deadline.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Result, anyhow};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::wire::Conn;

/// Handshakes in progress at once: the listen backlog (1,024 for tokio's listener) is
/// never overrun, and a slow server sees a steady ramp rather than a SYN flood.
const CONCURRENT_OPENS: usize = 256;

/// What opening many connections gave.
pub(crate) struct Opened<T> {
    /// What `then` returned for each connection that made it, in completion order.
    pub(crate) conns: Vec<T>,
    /// Connections that failed or were not ready by the deadline.
    pub(crate) errors: u64,
    /// The first failure, for the log.
    pub(crate) first_error: Option<anyhow::Error>,
}

/// Opens `n` TCP connections to `addr`, handshakes each, then runs `then` on it; stops
/// waiting at `deadline`.
pub(crate) async fn open<T, F, Fut>(
    addr: SocketAddr,
    n: usize,
    deadline: Instant,
    then: F,
) -> Opened<T>
where
    T: Send + 'static,
    F: Fn(Conn) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T>> + Send,
{
    open_from(addr, &[], n, deadline, then).await
}

/// As [`open`], connection `i` from source address `sources[i % sources.len()]` (the
/// system's choice when `sources` is empty).
pub(crate) async fn open_from<T, F, Fut>(
    addr: SocketAddr,
    sources: &[IpAddr],
    n: usize,
    deadline: Instant,
    then: F,
) -> Opened<T>
where
    T: Send + 'static,
    F: Fn(Conn) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T>> + Send,
{
    let permits = Arc::new(Semaphore::new(CONCURRENT_OPENS));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (permits, then) = (permits.clone(), then.clone());
        let source = sources.get(i.checked_rem(sources.len()).unwrap_or(0)).copied();
        tasks.spawn(async move {
            let work = async move {
                let _permit = permits.acquire().await?;
                let conn = Conn::open_from(addr, source, false).await?;
                then(conn).await
            };
            tokio::time::timeout_at(deadline, work)
                .await
                .unwrap_or_else(|_| Err(anyhow!("not ready by the deadline")))
        });
    }
    let mut opened = Opened { conns: Vec::with_capacity(n), errors: 0, first_error: None };
    while let Some(result) = tasks.join_next().await {
        match result.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(conn) => opened.conns.push(conn),
            Err(e) => {
                opened.errors += 1;
                opened.first_error.get_or_insert(e);
            }
        }
    }
    opened
}
