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
    /// A `quanta` instant: on x86 a TSC read, much cheaper than `std::time::Instant::now`
    /// for something read on every message.
    pub received: Option<quanta::Instant>,
}

/// The application side of the agent: runs one client message and returns the response
/// body for a request (`None` for a notify).
///
/// The agent awaits each call before starting the next one of the same session, unless
/// both are in one [lane](Dispatched::lane); either way the future must not wait on that
/// same session's later messages.
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

    /// What the agent calls instead of [`Dispatch::dispatch`]: the same future, and
    /// possibly a [`Tracked`] that the agent hands back to [`Dispatch::completed`] once
    /// that future has finished (or panicked), before the answer is queued. This lets a
    /// dispatcher time its handlers without wrapping each future in one more box. The
    /// default tracks nothing.
    fn dispatch_tracked(
        &self,
        session: Session,
        msg: ClientMessage,
    ) -> (BoxFuture<'static, Result<Option<Bytes>, Error>>, Option<Tracked>) {
        (self.dispatch(session, msg), None)
    }

    /// What the agent calls: [`Dispatch::dispatch_tracked`] with the message's
    /// [`Dispatched::lane`]. The default gives no lane, so each message of a session is
    /// answered before the next one starts.
    ///
    /// A dispatcher that gives lanes must start no work of the message before its future
    /// is first polled: the agent may call this for a message and then wait for earlier
    /// ones to finish before polling it.
    fn dispatch_laned(&self, session: Session, msg: ClientMessage) -> Dispatched {
        let (answer, tracked) = self.dispatch_tracked(session, msg);
        Dispatched { answer, tracked, lane: None }
    }

    /// Called once for each [`Tracked`] that [`Dispatch::dispatch_tracked`] returned, with
    /// the outcome (a panic is the agent's `PIT-000` error), unless the future is dropped
    /// unfinished because the connection was torn down. Runs on the connection's task: it
    /// must not block.
    fn completed(&self, tracked: Tracked, result: Result<(), &Error>) {
        let _ = (tracked, result);
    }
}

/// The dispatcher's note on a message it wants to hear about when its handling ends
/// (see [`Dispatch::dispatch_tracked`]); the agent only carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    /// When the dispatcher started the message.
    pub started: quanta::Instant,
    /// The dispatcher's own value (e.g. an index into its per-route state).
    pub token: usize,
}

/// A message handed to the dispatcher (see [`Dispatch::dispatch_laned`]).
pub struct Dispatched {
    /// Resolves to the response body (`None` for a notify) or the error to answer.
    pub answer: BoxFuture<'static, Result<Option<Bytes>, Error>>,
    /// The note to hand back to [`Dispatch::completed`], if any.
    pub tracked: Option<Tracked>,
    /// `Some(lane)`: once this future has been polled once, the agent may start the
    /// session's next message if it has the same lane, without waiting for this one's
    /// answer. The dispatcher guarantees that the messages of one lane take effect in the
    /// order their futures were first polled (for instance requests forwarded to one
    /// backend, handed to a transport that keeps their order on the first poll and run
    /// in arrival order there). `None`: the next message starts once this one is
    /// answered. Answers are sent as they complete, each with its request's id.
    pub lane: Option<u64>,
}

impl std::fmt::Debug for Dispatched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatched")
            .field("tracked", &self.tracked)
            .field("lane", &self.lane)
            .finish_non_exhaustive()
    }
}
