//! The agent as its session's [`NetworkEntity`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pitaya_codec::{Message, MessageCodec};
use pitaya_core::{BoxFuture, Error, codes};
use pitaya_session::{NetworkEntity, QueueFree, SharedPush};
use tokio::sync::mpsc::error::TrySendError;

use crate::control::{Control, Signal};
use crate::routes::ClientRoutes;

/// An item of the outgoing queue, kept small (16 bytes): the queue keeps the room its
/// busiest moment needed.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A response or push, encoded by the writer.
    Message(Box<Message>),
    /// A whole packet encoded once for many connections (a broadcast), copied as is.
    Shared(Arc<Bytes>),
    /// A numbered Data packet of a resumable session (`docs/resume.md`), copied as is.
    Logged(Arc<crate::resume::Logged>),
    /// The handshake response: accepted (code 200) or rejected (code 400).
    Handshake { accepted: bool },
    /// A heartbeat packet.
    Heartbeat,
}

// Every connection's queue allocates a block of these up front (memory per client).
const _: () = assert!(std::mem::size_of::<Outgoing>() == 16);

/// Queues messages for the writer; shared by the session and the agent's tasks.
pub(crate) struct AgentEntity {
    pub(crate) tx: crate::queue::Sender<Outgoing>,
    pub(crate) control: Control,
    pub(crate) remote: SocketAddr,
    pub(crate) write_timeout: Duration,
    /// Client messages queued to the session's dispatcher and not yet answered.
    pub(crate) pending: Arc<AtomicUsize>,
    pub(crate) dispatch_capacity: usize,
    /// Whether routes to this client may be codes yet; `None` (codes always, as Go)
    /// unless `compressroutes.onlyifclientdoes` is on.
    pub(crate) client_routes: Option<Arc<ClientRoutes>>,
    /// The server's codec, shared by every connection: what a [`SharedPush`] is encoded
    /// with for this client.
    pub(crate) codec: Arc<MessageCodec>,
    /// For the error response that replaces a response which cannot be encoded.
    pub(crate) serializer: Arc<dyn pitaya_serialize::Serializer>,
    /// Items a [`SharedPush`] found no room for in the queue, and the items queued
    /// after them; the writer takes them once the queue is empty.
    pub(crate) backlog: Mutex<VecDeque<Outgoing>>,
    /// When the backlog started, in ms since [`clock_base`] (at least 1); 0 while there
    /// is none. Changed under the backlog's lock.
    pub(crate) full_since_ms: AtomicU64,
    /// Set once the client was given a resume token: on the session's entity, every Data
    /// packet then goes through it; on a connection that took a session over, it tells the
    /// writer where to note what was written.
    pub(crate) resume: OnceLock<Arc<crate::resume::Resume>>,
}

/// Encodes `msg` into `buf`. A response that cannot be encoded becomes an error response
/// in its place, so that a request still gets its one answer; the error is returned only
/// when nothing was written.
pub(crate) fn encode_outgoing(
    codec: &MessageCodec,
    serializer: &dyn pitaya_serialize::Serializer,
    msg: &Message,
    buf: &mut BytesMut,
) -> Result<(), pitaya_codec::MessageError> {
    let Err(e) = codec.encode_packet(msg, buf) else { return Ok(()) };
    tracing::error!(error = %e, route = %msg.route, id = msg.id, "cannot encode an outgoing message");
    if msg.kind != pitaya_codec::MessageType::Response {
        return Err(e);
    }
    let err = Error::internal(format!("response cannot be sent: {e}"));
    let body = serializer.encode_error(&err.to_payload());
    codec.encode_packet(&Message::error_response(msg.id, body), buf)
}

fn closed() -> Error {
    Error::new(codes::CLIENT_CLOSED_REQUEST, "connection closed")
}

/// The origin of [`AgentEntity::full_since_ms`].
fn clock_base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(clock_base().elapsed().as_millis()).unwrap_or(u64::MAX).max(1)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AgentEntity {
    /// Queues `push` without waiting: see [`NetworkEntity::try_push_shared`].
    ///
    /// When the outgoing queue is full the packet goes to the backlog, which the writer
    /// empties after the queue, and every later item of this connection follows it there
    /// until the writer has caught up, so nothing is reordered. A backlog older than the
    /// write timeout means the client is not reading: the connection is closed, as a
    /// sender waiting for room would have closed it, without anyone waiting.
    fn offer(&self, push: &SharedPush) -> Result<(), Error> {
        if self.resume.get().is_none() && self.control.current() != Signal::Open {
            return Err(closed());
        }
        let codec = self.client_codec();
        // The codec lives in the server's shared state (or in this connection's routes),
        // which outlive the push: its address names the wire variant.
        let variant = std::ptr::from_ref(codec) as usize;
        let packet = push
            .packet(variant, |msg| {
                let mut out = BytesMut::new();
                match codec.encode_packet(msg, &mut out) {
                    Ok(()) => Some(out.freeze()),
                    Err(e) => {
                        tracing::error!(error = %e, route = %msg.route, "cannot encode a broadcast push");
                        None
                    }
                }
            })
            .ok_or_else(|| Error::internal("push cannot be encoded"))?;
        if let Some(resume) = self.resume.get() {
            return resume.queue(Bytes::clone(&packet));
        }
        self.queue_now(Outgoing::Shared(packet))
    }

    /// Queues `item` without waiting: into the queue, or behind it in the backlog (see
    /// [`offer`](Self::offer)).
    pub(crate) fn queue_now(&self, item: Outgoing) -> Result<(), Error> {
        if self.control.current() != Signal::Open {
            return Err(closed());
        }
        let item = match self.to_backlog(item)? {
            None => return Ok(()),
            Some(item) => item,
        };
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(_)) => Err(closed()),
            Err(TrySendError::Full(item)) => {
                let mut backlog = lock(&self.backlog);
                if self.full_since_ms.load(Ordering::Acquire) == 0 {
                    self.full_since_ms.store(now_ms(), Ordering::Release);
                }
                backlog.push_back(item);
                Ok(())
            }
        }
    }

    /// Appends `item` to the backlog when there is one (`Ok(None)`), so that it stays
    /// behind what is already there; gives it back when there is none. Closes the
    /// connection when the backlog is older than the write timeout.
    fn to_backlog(&self, item: Outgoing) -> Result<Option<Outgoing>, Error> {
        // Read without the lock first: the backlog is empty nearly always.
        if self.full_since_ms.load(Ordering::Acquire) == 0 {
            return Ok(Some(item));
        }
        let mut backlog = lock(&self.backlog);
        // Set and cleared under the lock: read again under it.
        let since = self.full_since_ms.load(Ordering::Acquire);
        if since == 0 {
            return Ok(Some(item));
        }
        let limit = u64::try_from(self.write_timeout.as_millis()).unwrap_or(u64::MAX);
        if now_ms().saturating_sub(since) >= limit {
            drop(backlog);
            tracing::warn!(remote = %self.remote, "outgoing queue full for the whole write timeout; closing the slow connection");
            self.control.signal(Signal::Close);
            return Err(Error::new(
                codes::CLIENT_CLOSED_REQUEST,
                "client too slow, connection closed",
            ));
        }
        backlog.push_back(item);
        Ok(None)
    }

    /// Moves backlog items into `take` while it wants more; the writer calls this once
    /// the queue is empty. Clears the backlog's start time once it is empty.
    pub(crate) fn drain_backlog(&self, mut take: impl FnMut(Outgoing) -> bool) {
        if self.full_since_ms.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut backlog = lock(&self.backlog);
        while let Some(item) = backlog.pop_front() {
            if !take(item) {
                break;
            }
        }
        if backlog.is_empty() {
            self.full_since_ms.store(0, Ordering::Release);
            // An idle connection keeps no backlog memory.
            *backlog = VecDeque::new();
        }
    }

    /// Whether items wait in the backlog.
    pub(crate) fn has_backlog(&self) -> bool {
        self.full_since_ms.load(Ordering::Acquire) != 0
    }

    /// Queues `msg` for the client: numbered and kept first on a resumable session, which
    /// never waits (see [`queue_now`](Self::queue_now)); otherwise as [`enqueue`].
    pub(crate) async fn deliver(&self, msg: Message) -> Result<(), Error> {
        match self.resume.get() {
            None => self.enqueue(Outgoing::Message(Box::new(msg))).await,
            Some(resume) => resume.queue(self.encode_now(&msg)?),
        }
    }

    /// `msg` as a packet, with this client's route compression; a response that cannot be
    /// encoded becomes an error response, as the writer would send it.
    fn encode_now(&self, msg: &Message) -> Result<Bytes, Error> {
        let mut out = BytesMut::new();
        encode_outgoing(self.client_codec(), &*self.serializer, msg, &mut out)
            .map_err(|e| Error::internal(format!("message cannot be sent: {e}")))?;
        Ok(out.freeze())
    }

    /// The codec for this client: with its route compression, if it has its own.
    fn client_codec(&self) -> &MessageCodec {
        match &self.client_routes {
            Some(routes) => routes.codec(&self.codec),
            None => &self.codec,
        }
    }

    /// Queues `item`, waiting at most the write timeout for room. A connection whose
    /// queue stays full that long is not reading: it is closed, so that whoever pushes to
    /// it (a broadcast, say) is never held up longer than that.
    pub(crate) async fn enqueue(&self, item: Outgoing) -> Result<(), Error> {
        if self.control.current() != Signal::Open {
            return Err(closed());
        }
        // Behind a broadcast's backlog, if there is one: never ahead of it.
        let Some(item) = self.to_backlog(item)? else { return Ok(()) };
        match self.tx.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Closed(_)) => Err(closed()),
            // Boxed: the wait's timer and queue slot would otherwise be part of every
            // caller's future, which lives as long as the connection (memory per client).
            Err(TrySendError::Full(item)) => Box::pin(self.wait_and_send(item)).await,
        }
    }

    async fn wait_and_send(&self, item: Outgoing) -> Result<(), Error> {
        match tokio::time::timeout(self.write_timeout, self.tx.send(item)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(closed()),
            Err(_) => {
                tracing::warn!(remote = %self.remote, "outgoing queue full for the whole write timeout; closing the slow connection");
                self.control.signal(Signal::Close);
                Err(Error::new(codes::CLIENT_CLOSED_REQUEST, "client too slow, connection closed"))
            }
        }
    }
}

impl NetworkEntity for AgentEntity {
    fn queue_free(&self) -> Option<QueueFree> {
        if let Some(resume) = self.resume.get() {
            let conn = resume.conn()?;
            if !Arc::ptr_eq(&conn, &resume.home()?) {
                return conn.queue_free();
            }
        }
        let pending = self.pending.load(Ordering::Relaxed);
        Some(QueueFree {
            outgoing: self.tx.capacity(),
            dispatch: self.dispatch_capacity.saturating_sub(pending),
        })
    }

    fn push(&self, route: &str, data: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.deliver(Message::push(route, data)))
    }

    fn try_push_shared(&self, push: &SharedPush) -> Option<Result<(), Error>> {
        Some(self.offer(push))
    }

    fn respond(&self, id: u64, data: Bytes, error: bool) -> BoxFuture<'_, Result<(), Error>> {
        let msg =
            if error { Message::error_response(id, data) } else { Message::response(id, data) };
        Box::pin(self.deliver(msg))
    }

    fn kick(&self) -> BoxFuture<'_, Result<(), Error>> {
        if let Some(resume) = self.resume.get() {
            let ended = resume.is_ended();
            resume.close(true);
            return Box::pin(std::future::ready(if ended { Err(closed()) } else { Ok(()) }));
        }
        let was_open = self.control.current() == Signal::Open;
        self.control.signal(Signal::Kick);
        Box::pin(std::future::ready(if was_open { Ok(()) } else { Err(closed()) }))
    }

    fn close(&self) {
        match self.resume.get() {
            Some(resume) => resume.close(false),
            None => self.control.signal(Signal::Close),
        }
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        if let Some(conn) = self.resume.get().and_then(|r| r.conn()) {
            return Some(conn.remote);
        }
        Some(self.remote)
    }
}
