//! Session resume (`docs/resume.md`): [`ResumeOptions`] and the events the application
//! sees ([`ResumeEvent`], [`Events`]). The replay buffer and the backoff are in
//! `replay.rs`, the reconnecting in `driver.rs`.

use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::CloseReason;

/// Opt-in session resume, set in [`ClientOptions::resume`](crate::ClientOptions::resume).
///
/// With it the handshake asks for a resume token (`"resume": true`). When the server
/// grants one, a connection that drops (I/O error, end of stream, heartbeat timeout; not
/// a local close, not a kick, not a protocol error) is re-established with backoff while
/// the session's ttl lasts, and the session continues: the server replays what the
/// client did not read, the client re-sends what the server did not read, so every
/// request gets exactly one answer and every push arrives once, in order. A server that
/// does not grant a token (Go Pitaya, or resume disabled) is served as without this
/// option.
///
/// Build with struct-update syntax, like [`ClientOptions`](crate::ClientOptions):
/// ```
/// # use std::time::Duration;
/// use pitaya_client::{ClientOptions, ResumeOptions};
///
/// let opts = ClientOptions {
///     resume: Some(ResumeOptions { replay_packets: 1024, ..ResumeOptions::default() }),
///     ..ClientOptions::default()
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeOptions {
    /// Most of the client's own Data packets (requests and notifies) kept for re-sending
    /// after a drop. Default 256, the server's default `buffer`.
    pub replay_packets: usize,
    /// Most bytes of kept packets. Default 1 MiB. A resume that needs a packet no longer
    /// kept fails ([`CloseReason::ResumeFailed`]).
    pub replay_bytes: usize,
    /// First delay between reconnect attempts. Default 50 ms.
    pub backoff_initial: Duration,
    /// The delay doubles after each failed attempt, up to this. Default 2 s.
    pub backoff_max: Duration,
}

impl Default for ResumeOptions {
    fn default() -> Self {
        Self {
            replay_packets: 256,
            replay_bytes: 1024 * 1024,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

/// What happened to a resumable session, from [`Client::events`](crate::Client::events).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResumeEvent {
    /// The connection dropped; the client is reconnecting. Requests issued meanwhile wait
    /// (bounded by their timeout) and go out once the session is back.
    Dropped {
        /// How the connection ended.
        reason: CloseReason,
    },
    /// The session continued on a new connection: the server replays what the client
    /// missed, and the client re-sent its packets the server had not read.
    Resumed {
        /// How many of the client's packets were re-sent.
        resent: u64,
        /// The token to resume with after the next drop.
        token: String,
    },
    /// The server no longer had the session (expired, unknown token, replay no longer
    /// possible) and started a fresh one: bindings and session data are gone, the
    /// application must log in again. Requests in flight failed with
    /// [`ClientError::SessionLost`](crate::ClientError::SessionLost).
    FreshSession {
        /// How many requests in flight failed.
        failed: usize,
        /// The new session's token; `None` when the server no longer grants one (the
        /// next drop then ends the client).
        token: Option<String>,
    },
}

/// The [`ResumeEvent`]s of one client, from the moment [`Client::events`] was called.
///
/// Backed by a bounded broadcast channel (64 events): a receiver that falls that far
/// behind loses the oldest events ([`lagged`](Self::lagged) counts them), never blocks
/// the client.
///
/// [`Client::events`]: crate::Client::events
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<ResumeEvent>,
    /// The client's close signal: after it, the events already sent, then the end.
    closed: watch::Receiver<bool>,
    lagged: u64,
}

/// Capacity of the event channel.
pub(crate) const EVENT_CAPACITY: usize = 64;

impl Events {
    pub(crate) fn new(rx: broadcast::Receiver<ResumeEvent>, closed: watch::Receiver<bool>) -> Self {
        Self { rx, closed, lagged: 0 }
    }

    /// The next event; `None` once the client has ended and every event was received.
    ///
    /// Cancel safe.
    pub async fn recv(&mut self) -> Option<ResumeEvent> {
        loop {
            if let Some(event) = self.try_recv() {
                return Some(event);
            }
            if *self.closed.borrow() {
                return None;
            }
            tokio::select! {
                received = self.rx.recv() => match received {
                    Ok(event) => return Some(event),
                    Err(broadcast::error::RecvError::Lagged(n)) => self.lagged += n,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                // Loop: events sent before the end are still returned first.
                _ = self.closed.changed() => {}
            }
        }
    }

    /// The next event if one is waiting right now.
    pub fn try_recv(&mut self) -> Option<ResumeEvent> {
        loop {
            match self.rx.try_recv() {
                Ok(event) => return Some(event),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.lagged += n,
                Err(_) => return None,
            }
        }
    }

    /// Events lost because this receiver fell behind.
    pub fn lagged(&self) -> u64 {
        self.lagged
    }
}
