//! A lazily opened, self-reconnecting Redis connection.
//!
//! Go's redigo pool dials on first use, so a server starts while Redis is away; this
//! does the same: the first command opens the connection, and a failed open is retried
//! by the next command. Once open, redis' `ConnectionManager` reconnects by itself.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionInfo, IntoConnectionInfo};
use tokio::sync::Mutex;

use crate::error::WorkerError;
use crate::options::WorkerOptions;

pub(crate) struct Conn {
    client: redis::Client,
    timeout: Duration,
    /// How long one reply may take: a blocking fetch waits up to 1 s on the server.
    response_timeout: Duration,
    manager: Mutex<Option<ConnectionManager>>,
}

impl Conn {
    pub(crate) fn new(opts: &WorkerOptions) -> Result<Self, WorkerError> {
        let info = connection_info(&opts.server_url, &opts.password)?;
        let client = redis::Client::open(info)?;
        Ok(Self {
            client,
            timeout: opts.command_timeout,
            response_timeout: opts.command_timeout.max(Duration::from_secs(2)),
            manager: Mutex::new(None),
        })
    }

    /// The connection, opening it if needed.
    pub(crate) async fn get(&self) -> Result<ConnectionManager, WorkerError> {
        let mut slot = self.manager.lock().await;
        if let Some(m) = slot.as_ref() {
            return Ok(m.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.response_timeout)
            .set_number_of_retries(2)
            .set_factor(100)
            .set_max_delay(1000);
        let manager = tokio::time::timeout(
            self.timeout,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| WorkerError::Timeout)??;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// Runs `f` on the connection within the command timeout.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, WorkerError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let timeout = self.timeout;
        let work = async {
            let conn = self.get().await?;
            f(conn).await.map_err(WorkerError::from)
        };
        tokio::time::timeout(timeout, work).await.map_err(|_| WorkerError::Timeout)?
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
