//! [`Dispatch`]: how the agent hands client messages to the application.

use bytes::Bytes;
use pitaya_codec::Route;
use pitaya_core::{BoxFuture, Error};
use pitaya_session::Session;

/// A request or notify from a client, with its route parsed.
#[derive(Debug, Clone)]
pub struct ClientMessage {
    /// The route as the client sent it (the server type may be empty).
    pub route: Route,
    /// Message id of a request; 0 for a notify (and for a request whose response Go
    /// suppresses, spec §2.2).
    pub id: u64,
    /// Whether the client expects a response.
    pub is_request: bool,
    /// The payload, inflated.
    pub data: Bytes,
    /// When the agent decoded the message, if [`Dispatch::wants_receipt_time`] asked for
    /// it: the start of the `handler_delay_ns` metric (time spent waiting for its turn).
    pub received: Option<std::time::Instant>,
}

/// The application side of the agent: runs one client message and returns the response
/// body for a request (`None` for a notify).
///
/// The agent awaits each call before starting the next one of the same session, so the
/// future must not wait on that same session's later messages.
pub trait Dispatch: Send + Sync + 'static {
    /// Handles `msg` for `session`.
    fn dispatch(
        &self,
        session: Session,
        msg: ClientMessage,
    ) -> BoxFuture<'static, Result<Option<Bytes>, Error>>;

    /// Whether messages should carry [`ClientMessage::received`]. `false` by default, so
    /// that a server without metrics does not read the clock for every message.
    fn wants_receipt_time(&self) -> bool {
        false
    }
}
