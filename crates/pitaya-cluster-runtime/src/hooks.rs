//! What the cluster runtime asks of the server above it, as small traits: running this
//! server's handlers ([`LocalHandlers`]) and reporting RPC round trips ([`RpcMetrics`]).
//! The server runtime implements them; the cluster runtime never names it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pitaya_core::{BoxFuture, Error};
use pitaya_handler::{AppState, Request};
use pitaya_serialize::Serializer;

/// This server's handlers, as a message forwarded to it by a frontend runs them.
pub trait LocalHandlers: Send + Sync + 'static {
    /// Runs the handler of `req.route` (with the application's pipeline) and returns its
    /// reply: `None` for a notify or a request whose handler returned nothing.
    ///
    /// # Errors
    /// The handler's error, `PIT-404` for an unknown route, a pipeline's rejection.
    fn call(&self, req: Request) -> BoxFuture<'static, Result<Option<Bytes>, Error>>;

    /// The client serializer the handlers decode and encode with.
    fn serializer(&self) -> &Arc<dyn Serializer>;

    /// The application state handlers and remotes extract from.
    fn state(&self) -> &AppState;
}

/// Where the runtime reports the round trip of each user RPC it sends (Go's
/// `response_time_ns` with type `rpc`).
pub trait RpcMetrics: Send + Sync + 'static {
    /// A user RPC to `route` completed after `took`, successfully or with `result`'s error.
    fn rpc_completed(&self, route: &str, took: Duration, result: Result<(), &Error>);
}
