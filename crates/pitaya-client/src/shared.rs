//! State shared by the client handles and the reader and writer tasks: pending requests,
//! the close signal and the counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pitaya_codec::packet::HEADER_LEN;
use pitaya_codec::{HandshakeResponse, Message, MessageCodec};
use pitaya_serialize::Serializer;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{ClientError, CloseReason};

/// The body of a Response, handed from the reader to the waiting request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) data: Bytes,
    /// Flag 0x20: `data` is an error payload.
    pub(crate) error: bool,
}

type Waiters = HashMap<u64, oneshot::Sender<Reply>>;

pub(crate) struct Shared {
    /// Requests waiting for their response, by message id. `None` once the connection
    /// ended, so that a request registering after the end fails at once instead of
    /// waiting for its timeout.
    pending: Mutex<Option<Waiters>>,
    next_id: AtomicU64,
    closed: watch::Sender<bool>,
    reason: OnceLock<CloseReason>,
    kicked: AtomicBool,
    heartbeats: AtomicU64,
    dropped_pushes: AtomicU64,
    /// Encoded packets for the writer task.
    pub(crate) outgoing: mpsc::Sender<Bytes>,
    pub(crate) codec: MessageCodec,
    pub(crate) serializer: Arc<dyn Serializer>,
    pub(crate) handshake: HandshakeResponse,
    pub(crate) request_timeout: Duration,
}

impl Shared {
    pub(crate) fn new(
        outgoing: mpsc::Sender<Bytes>,
        codec: MessageCodec,
        serializer: Arc<dyn Serializer>,
        handshake: HandshakeResponse,
        request_timeout: Duration,
        heartbeats: u64,
    ) -> Self {
        Self {
            pending: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(1),
            closed: watch::Sender::new(false),
            reason: OnceLock::new(),
            kicked: AtomicBool::new(false),
            heartbeats: AtomicU64::new(heartbeats),
            dropped_pushes: AtomicU64::new(0),
            outgoing,
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

    /// Registers a waiter for the response to `id`. The entry lives as long as the guard.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the connection has ended.
    pub(crate) fn register(
        &self,
        id: u64,
        waiter: oneshot::Sender<Reply>,
    ) -> Result<PendingGuard<'_>, ClientError> {
        let mut pending = self.lock_pending();
        let waiters = pending.as_mut().ok_or(ClientError::Closed)?;
        waiters.insert(id, waiter);
        Ok(PendingGuard { shared: self, id, armed: true })
    }

    /// Hands a response to its waiter; false when nobody waits for `id` any more (timed
    /// out, cancelled) or never did.
    pub(crate) fn complete(&self, id: u64, reply: Reply) -> bool {
        let waiter = self.lock_pending().as_mut().and_then(|w| w.remove(&id));
        // A waiter whose request future was just dropped cannot take the reply; that is
        // the same as having no waiter.
        waiter.is_some_and(|w| w.send(reply).is_ok())
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
    pub(crate) fn reply_result(&self, reply: Reply) -> Result<Bytes, ClientError> {
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
