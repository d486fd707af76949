//! [`Conn`]: a small pool of lazily opened, self-reconnecting Redis connections.
//!
//! Go's redigo pool dials on first use, so a server starts while Redis is away; this
//! does the same: a connection opens on the first command that needs it, and a failed
//! open is retried by the next command. Once open, redis' `ConnectionManager`
//! reconnects by itself.
//!
//! Size (`pitaya.worker.redis.pool`): go-workers makes it the redigo pool's `MaxIdle`,
//! the connections kept open between uses, while every command borrows a connection of
//! its own (opening more when all are busy, with no cap). A multiplexed connection
//! carries any number of commands at once, so here the size is the most connections
//! opened, and a new one opens only when every open one has a command in flight: one
//! connection while commands come one at a time, up to `size` under concurrent load.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, IntoConnectionInfo};
use tokio::sync::OnceCell;

use crate::error::WorkerError;
use crate::options::WorkerOptions;

pub(crate) struct Conn {
    client: redis::Client,
    timeout: Duration,
    /// How long one reply may take: a blocking fetch waits up to 1 s on the server.
    response_timeout: Duration,
    /// The pool is never empty: `first` always exists, `rest` holds `size - 1`.
    first: Slot,
    rest: Vec<Slot>,
}

#[derive(Default)]
struct Slot {
    manager: OnceCell<ConnectionManager>,
    /// Commands sent on this connection and not answered yet.
    in_flight: AtomicUsize,
}

/// Counts a command in flight on a slot until dropped (also when the command is
/// cancelled by its timeout).
struct InFlight<'a>(&'a Slot);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Conn {
    /// A pool of `opts.pool` connections (at least 1, as go-workers makes a size of 0
    /// or less 1).
    pub(crate) fn new(opts: &WorkerOptions) -> Result<Self, WorkerError> {
        Self::with_size(opts, usize::try_from(opts.pool).unwrap_or(usize::MAX))
    }

    /// A pool of `size` connections (at least 1), for the blocking fetch, which needs
    /// exactly one of its own.
    pub(crate) fn with_size(opts: &WorkerOptions, size: usize) -> Result<Self, WorkerError> {
        let info = connection_info(&opts.server_url, &opts.password)?;
        let client = redis::Client::open(info)?;
        Ok(Self {
            client,
            timeout: opts.command_timeout,
            response_timeout: opts.command_timeout.max(Duration::from_secs(2)),
            first: Slot::default(),
            rest: (1..size.max(1)).map(|_| Slot::default()).collect(),
        })
    }

    /// The slot for the next command: the least busy, and among equally busy ones an
    /// open one before one not opened yet, so that a connection is opened only when
    /// all open ones have commands in flight.
    fn pick(&self) -> &Slot {
        let key = |s: &Slot| (s.in_flight.load(Ordering::Relaxed), !s.manager.initialized());
        self.rest.iter().fold(&self.first, |best, s| if key(s) < key(best) { s } else { best })
    }

    /// The slot's connection, opening it if needed.
    async fn open(&self, slot: &Slot) -> Result<ConnectionManager, WorkerError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.response_timeout)
            .set_number_of_retries(2)
            .set_factor(100)
            .set_max_delay(1000);
        let manager = slot
            .manager
            .get_or_try_init(|| async {
                tokio::time::timeout(
                    self.timeout,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                .map_err(|_| WorkerError::Timeout)?
                .map_err(WorkerError::from)
            })
            .await?;
        Ok(manager.clone())
    }

    /// Runs `f` on a connection of the pool within the command timeout.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, WorkerError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        // Counted before the first await, so that commands started together spread.
        let slot = self.pick();
        slot.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(slot);
        let work = async {
            let conn = self.open(slot).await?;
            f(conn).await.map_err(WorkerError::from)
        };
        tokio::time::timeout(self.timeout, work).await.map_err(|_| WorkerError::Timeout)?
    }
}

/// Go accepts `host:port`; a URL (`redis://`, `rediss://`, `unix://`) is taken as is.
/// A non-empty password overrides the URL's.
fn connection_info(url: &str, password: &str) -> Result<ConnectionInfo, WorkerError> {
    let full = if url.contains("://") { url.to_owned() } else { format!("redis://{url}") };
    let mut info = full
        .as_str()
        .into_connection_info()
        .map_err(|e| WorkerError::Address { url: url.to_owned(), reason: e.to_string() })?;
    if !password.is_empty() {
        info.redis.password = Some(password.to_owned());
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_addresses_become_urls() {
        let info = connection_info("localhost:6379", "pw").unwrap();
        assert_eq!(info.addr.to_string(), "localhost:6379");
        assert_eq!(info.redis.password.as_deref(), Some("pw"));
        let info = connection_info("redis://127.0.0.1:7000/2", "").unwrap();
        assert_eq!(info.redis.db, 2);
        assert!(connection_info("redis://[bad", "").is_err());
    }
}
