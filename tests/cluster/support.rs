//! Shared helpers of the cluster tests: time limits, clients, error bodies.

use std::future::Future;
use std::time::Duration;

use pitaya::client::{Client, ClientError, ClientOptions, Pushes};
use pitaya::serialize::Serializer;

/// Bound on any single wait.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Bound on a whole test body.
const TEST_LIMIT: Duration = Duration::from_secs(90);

/// Runs a test body, failing instead of hanging.
pub(crate) async fn within<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, body).await.expect("the test exceeded its time limit")
}

/// Awaits `f` for at most [`WAIT`].
pub(crate) async fn wait<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A handshaken client of the server at `addr`.
pub(crate) async fn connect(addr: &str) -> (Client, Pushes) {
    let opts = ClientOptions { request_timeout: Duration::from_secs(10), ..ClientOptions::default() };
    Client::connect(addr, opts).await.unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// Checks that `e` is the error response whose JSON body is `want`, byte for byte once
/// re-encoded the way Go encodes it (spec §2.5).
pub(crate) fn expect_error_body(e: &ClientError, want: &[u8]) {
    let ClientError::Server(payload) = e else { panic!("expected an error response, got {e:?}") };
    let body = pitaya::serialize::Json.encode_error(payload);
    assert_eq!(String::from_utf8_lossy(&body), String::from_utf8_lossy(want));
}
