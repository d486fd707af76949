//! [`WorkerOptions`]: `pitaya.worker.*` plus the knobs Go hard-codes (poll interval,
//! process id), which tests shorten.

use std::time::Duration;

use crate::job::RetryPolicy;

/// Settings of a worker and of its enqueueing client.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// `pitaya.worker.redis.serverurl`: `host:port` or a `redis://` URL.
    pub server_url: String,
    /// `pitaya.worker.redis.password` (`""` for none).
    pub password: String,
    /// `pitaya.worker.redis.pool` (10): the most Redis connections a [`WorkerClient`]
    /// or a [`Worker`] opens for its commands (0 counts as 1, as in go-workers); a worker
    /// opens one more for its blocking fetch. Commands are multiplexed, so a connection
    /// opens only when every open one has a command in flight: one while commands come
    /// one at a time, up to `pool` under concurrent load.
    ///
    /// go-workers makes this redigo's `MaxIdle`: the connections kept open between
    /// uses, with one borrowed per command in flight and no cap on those. The count of
    /// connections a process keeps to Redis is what both bound with it.
    ///
    /// [`WorkerClient`]: crate::WorkerClient
    /// [`Worker`]: crate::Worker
    pub pool: u32,
    /// `pitaya.worker.namespace`: key prefix (`""` for none).
    pub namespace: String,
    /// `pitaya.worker.concurrency`: jobs run at once (at least 1).
    pub concurrency: usize,
    /// `pitaya.worker.retry.*`, written into every job this client enqueues.
    pub retry: RetryPolicy,
    /// Names this worker's in-progress list; the host name by default, as in Go. Two
    /// workers with the same id share (and at start-up re-run) each other's jobs.
    pub process_id: String,
    /// How often due retries and scheduled jobs are moved back to their queue (Go:
    /// 15 s).
    pub poll_interval: Duration,
    /// How often worker metrics are reported when a reporter is set
    /// (`pitaya.metrics.period`, 15 s).
    pub metrics_period: Duration,
    /// Bound of one Redis call (connect plus reply), so that enqueueing fails instead
    /// of hanging while Redis is away.
    pub command_timeout: Duration,
}

impl WorkerOptions {
    /// Options from `pitaya.worker.*`, with Go's poll interval, metrics period and the
    /// host name as process id.
    pub fn from_config(config: &pitaya_config::model::WorkerConfig) -> Self {
        Self {
            server_url: config.redis.server_url.clone(),
            password: config.redis.password.clone(),
            pool: config.redis.pool,
            namespace: config.namespace.clone(),
            concurrency: config.concurrency.max(1),
            retry: RetryPolicy::from(&config.retry),
            process_id: gethostname::gethostname().to_string_lossy().into_owned(),
            poll_interval: Duration::from_secs(15),
            metrics_period: Duration::from_secs(15),
            command_timeout: Duration::from_secs(5),
        }
    }
}

impl Default for WorkerOptions {
    /// [`WorkerOptions::from_config`] of the default configuration.
    fn default() -> Self {
        Self::from_config(&pitaya_config::model::WorkerConfig::default())
    }
}
