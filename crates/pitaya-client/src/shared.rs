//! State shared by the client handles and the connection driver: pending requests, the
//! close signal, the counters and, with resume, the session's token and replay buffer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pitaya_codec::packet::HEADER_LEN;
use pitaya_codec::{HandshakeResponse, Message, MessageCodec, ResumeGrant};
use pitaya_serialize::Serializer;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::replay::ReplayBuffer;
use crate::resume::EVENT_CAPACITY;
use crate::{ClientError, CloseReason, ResumeEvent, ResumeOptions};

/// The body of a Response, handed from the reader to the waiting request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) data: Bytes,
    /// Flag 0x20: `data` is an error payload.
    pub(crate) error: bool,
}

/// What a waiting request gets: its response, or the error that ended its wait early
/// ([`ClientError::SessionLost`]).
pub(crate) type Answer = Result<Reply, ClientError>;

type Waiters = HashMap<u64, oneshot::Sender<Answer>>;

/// An encoded Data packet for the writer, tagged with the session epoch it was made for:
/// packets of an epoch before the current one were meant for a session the server no
/// longer has, and are not sent.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) epoch: u64,
    pub(crate) packet: Bytes,
}

/// The resumable session, present when [`ClientOptions::resume`](crate::ClientOptions) is
/// set.
pub(crate) struct Resume {
    pub(crate) options: ResumeOptions,
    /// The server's Data packets read on this session.
    pub(crate) received: AtomicU64,
    pub(crate) state: Mutex<ResumeState>,
}

pub(crate) struct ResumeState {
    /// `None` until (or unless) the server grants one.
    pub(crate) token: Option<String>,
    pub(crate) ttl: Duration,
    pub(crate) replay: ReplayBuffer,
}

impl Resume {
    pub(crate) fn lock(&self) -> MutexGuard<'_, ResumeState> {
        // No code panics while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ResumeState {
    /// Takes the token and ttl of a grant.
    pub(crate) fn grant(&mut self, grant: Option<&ResumeGrant>) {
        self.token = grant.map(|g| g.token.clone());
        self.ttl = Duration::from_secs(grant.map_or(0, |g| g.ttl));
    }
}

pub(crate) struct Shared {
    /// Requests waiting for their response, by message id. `None` once the connection
    /// ended, so that a request registering after the end fails at once instead of
    /// waiting for its timeout.
    pending: Mutex<Option<Waiters>>,
    next_id: AtomicU64,
    /// Bumped when the server starts a fresh session in place of the one that dropped.
    epoch: AtomicU64,
    closed: watch::Sender<bool>,
    reason: OnceLock<CloseReason>,
    kicked: AtomicBool,
    heartbeats: AtomicU64,
    dropped_pushes: AtomicU64,
    unmatched: AtomicU64,
    /// Encoded Data packets for the writer.
    pub(crate) outgoing: mpsc::Sender<Outgoing>,
    /// Bumped by [`Client::cut_connection`](crate::Client::cut_connection).
    pub(crate) cut: watch::Sender<u64>,
    pub(crate) events: broadcast::Sender<ResumeEvent>,
    pub(crate) resume: Option<Resume>,
    pub(crate) codec: MessageCodec,
    pub(crate) serializer: Arc<dyn Serializer>,
    pub(crate) handshake: HandshakeResponse,
    pub(crate) request_timeout: Duration,
}

impl Shared {
    pub(crate) fn new(
        outgoing: mpsc::Sender<Outgoing>,
        codec: MessageCodec,
        serializer: Arc<dyn Serializer>,
        handshake: HandshakeResponse,
        request_timeout: Duration,
        heartbeats: u64,
        resume: Option<ResumeOptions>,
    ) -> Self {
        let resume = resume.map(|options| {
            let mut state = ResumeState {
                token: None,
                ttl: Duration::ZERO,
                replay: ReplayBuffer::new(options.replay_packets, options.replay_bytes),
            };
            state.grant(handshake.sys.resume.as_ref());
            Resume { options, received: AtomicU64::new(0), state: Mutex::new(state) }
        });
        Self {
            pending: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
            closed: watch::Sender::new(false),
            reason: OnceLock::new(),
            kicked: AtomicBool::new(false),
            heartbeats: AtomicU64::new(heartbeats),
            dropped_pushes: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            outgoing,
            cut: watch::Sender::new(0),
            events: broadcast::Sender::new(EVENT_CAPACITY),
            resume,
            codec,
            serializer,
            handshake,
            request_timeout,
        }
    }

    /// The next request id: 1, 2, ... never 0, which Pitaya treats as a notify whose
    /// response is suppressed (spec §2.2).
    pub(crate) fn next_id(&self) -> u64 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// Encodes `msg` as a whole Data packet.
    pub(crate) fn encode(&self, msg: &Message) -> Result<Bytes, ClientError> {
        let mut buf = BytesMut::with_capacity(HEADER_LEN + 12 + msg.route.len() + msg.data.len());
        self.codec.encode_packet(msg, &mut buf).map_err(ClientError::Encode)?;
        Ok(buf.freeze())
    }

    /// The current session epoch, to tag a packet with.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Registers a waiter for the response to `id`. The entry lives as long as the guard.
    /// Also returns the epoch the request belongs to: read under the same lock as
    /// [`fresh_session`](Self::fresh_session) takes, so a request is either failed by it
    /// or tagged with the new epoch.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the connection has ended.
    pub(crate) fn register(
        &self,
        id: u64,
        waiter: oneshot::Sender<Answer>,
    ) -> Result<(PendingGuard<'_>, u64), ClientError> {
        let mut pending = self.lock_pending();
        let waiters = pending.as_mut().ok_or(ClientError::Closed)?;
        waiters.insert(id, waiter);
        Ok((PendingGuard { shared: self, id, armed: true }, self.epoch()))
    }

    /// Hands a response to its waiter; false when nobody waits for `id` any more (timed
    /// out, cancelled) or never did.
    pub(crate) fn complete(&self, id: u64, reply: Reply) -> bool {
        let waiter = self.lock_pending().as_mut().and_then(|w| w.remove(&id));
        // A waiter whose request future was just dropped cannot take the reply; that is
        // the same as having no waiter.
        let taken = waiter.is_some_and(|w| w.send(Ok(reply)).is_ok());
        if !taken {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    /// The server replaced the dropped session with a fresh one: every request waiting
    /// fails with [`ClientError::SessionLost`], and packets queued for the old session
    /// will not be sent. Returns how many requests failed.
    pub(crate) fn fresh_session(&self) -> usize {
        let waiters = {
            let mut pending = self.lock_pending();
            self.epoch.fetch_add(1, Ordering::AcqRel);
            match pending.as_mut() {
                Some(waiters) => std::mem::take(waiters),
                None => return 0,
            }
        };
        let failed = waiters.len();
        for waiter in waiters.into_values() {
            let _ = waiter.send(Err(ClientError::SessionLost));
        }
        failed
    }

    /// Responses that found no waiter (timed out, cancelled, failed, or never asked).
    pub(crate) fn unmatched_responses(&self) -> u64 {
        self.unmatched.load(Ordering::Relaxed)
    }

    /// Tells the application, when it listens.
    pub(crate) fn event(&self, event: ResumeEvent) {
        let _ = self.events.send(event);
    }

    /// Ends the connection: fails every pending request with `Closed` (by dropping its
    /// sender) and wakes the tasks and `closed()` waiters. Only the first reason is kept.
    pub(crate) fn shutdown(&self, reason: CloseReason) {
        let waiters = self.lock_pending().take();
        let Some(waiters) = waiters else {
            return;
        };
        tracing::debug!(%reason, pending = waiters.len(), "pitaya connection ended");
        // The reason is set before the signal so that whoever wakes up can read it.
        let _ = self.reason.set(reason);
        self.closed.send_replace(true);
        drop(waiters);
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.reason.get().cloned()
    }

    /// Resolves once [`shutdown`](Self::shutdown) has run. Cancel safe.
    pub(crate) async fn wait_closed(&self) {
        let mut rx = self.closed.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we borrow it.
        let _ = rx.wait_for(|closed| *closed).await;
    }

    /// A receiver for tasks that must stop when the connection ends.
    pub(crate) fn close_signal(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Turns a reply into the request's result, decoding error payloads with the
    /// serializer the server announced.
    pub(crate) fn reply_result(&self, reply: Answer) -> Result<Bytes, ClientError> {
        let reply = reply?;
        if !reply.error {
            return Ok(reply.data);
        }
        match self.serializer.decode_error(&reply.data) {
            Ok(payload) => Err(ClientError::Server(payload)),
            Err(e) => Err(ClientError::Protocol(format!(
                "error response does not decode as a {} error payload: {e}",
                self.serializer.name()
            ))),
        }
    }

    pub(crate) fn set_kicked(&self) {
        self.kicked.store(true, Ordering::Release);
    }

    pub(crate) fn kicked(&self) -> bool {
        self.kicked.load(Ordering::Acquire)
    }

    pub(crate) fn count_heartbeat(&self) {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
    }

    /// Heartbeats that came before the handshake response of a resumed connection.
    pub(crate) fn add_heartbeats(&self, n: u64) {
        self.heartbeats.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn heartbeats(&self) -> u64 {
        self.heartbeats.load(Ordering::Relaxed)
    }

    /// Counts a dropped push and returns the new total.
    pub(crate) fn count_dropped_push(&self) -> u64 {
        self.dropped_pushes.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn dropped_pushes(&self) -> u64 {
        self.dropped_pushes.load(Ordering::Relaxed)
    }

    fn lock_pending(&self) -> MutexGuard<'_, Option<Waiters>> {
        // No code panics while holding the lock, and the map stays consistent even if
        // one did: keep going rather than poison every later request.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes a pending request's waiter when the request gives up (timeout, cancellation,
/// send failure), so abandoned ids do not accumulate.
pub(crate) struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
    armed: bool,
}

impl PendingGuard<'_> {
    /// The reader already removed the entry: skip the lock on drop.
    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Some(waiters) = self.shared.lock_pending().as_mut() {
                waiters.remove(&self.id);
            }
        }
    }
}
