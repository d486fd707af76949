//! [`WorkerError`]: what enqueueing and the worker's Redis calls can fail with.

/// An error of the worker crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// Redis could not be reached or refused a command. Enqueueing never drops a job
    /// silently: it returns this instead.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer within `WorkerOptions::command_timeout`.
    #[error("redis did not answer in time")]
    Timeout,
    /// The job could not be encoded to JSON (a value JSON cannot hold).
    #[error("cannot encode the job: {0}")]
    Encode(#[from] serde_json::Error),
    /// `pitaya.worker.redis.serverurl` is not a usable Redis address.
    #[error("invalid redis address {url:?}: {reason}")]
    Address {
        /// The configured address.
        url: String,
        /// Why it was refused.
        reason: String,
    },
}
