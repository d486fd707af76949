//! [`SdError`]: why the etcd discovery could not start.

use std::time::Duration;

/// Why [`EtcdServiceDiscovery::start`](crate::EtcdServiceDiscovery) failed.
///
/// `start()` returns a `pitaya_core::Error` with code `PIT-000` (Go returns etcd's
/// plain errors there) whose message is this error's text and whose
/// [`source`](pitaya_core::Error::source) is this error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdError {
    /// The configuration cannot work (no endpoint, empty server type or id, a `/` in
    /// them).
    #[error("etcd sd: invalid configuration: {0}")]
    Config(String),
    /// An etcd call failed.
    #[error("etcd sd: {op}: {source}")]
    Etcd {
        /// What was being done (`connect`, `grant lease`, `put`, `sync`, `watch`, ...).
        op: &'static str,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// An etcd call did not answer in time (`dialtimeout`).
    #[error("etcd sd: {op}: timed out after {after:?}")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// The bound that elapsed.
        after: Duration,
    },
    /// etcd answered in a way that does not allow going on (a lease it says is gone, a
    /// watch it cancelled at once, a stream it closed).
    #[error("etcd sd: {op}: {reason}")]
    Protocol {
        /// What was being done.
        op: &'static str,
        /// What etcd did.
        reason: String,
    },
    /// `start()` after `stop()`: a stopped discovery cannot start again.
    #[error("etcd sd: stopped")]
    Stopped,
}

/// Runs one etcd call bounded by `after`, naming it `op` in errors.
pub(crate) async fn bounded<T>(
    op: &'static str,
    after: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, SdError> {
    match tokio::time::timeout(after, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(SdError::Etcd { op, source }),
        Err(_) => Err(SdError::Timeout { op, after }),
    }
}
