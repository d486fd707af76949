//! [`serve_requests`]: the request loop of the RPC server (spec §6.3): a bounded queue in
//! front of at most `services` concurrent handlers, which runs one client session's
//! forwarded messages one at a time, in arrival order.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Subject, Subscriber};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use pitaya_cluster::RpcHandler;
use pitaya_cluster::protos::{Request, RpcType};
use prost::Message;
use tokio::sync::oneshot;
use tokio::task::{JoinError, JoinSet};

use crate::server::STOP_TIMEOUT;

/// How long a reply may wait for room in the NATS client's command queue (only full
/// while disconnected).
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the request loop needs to serve.
pub(crate) struct Dispatch {
    pub(crate) handler: Arc<dyn RpcHandler>,
    pub(crate) client: async_nats::Client,
    /// At most this many handlers run at once.
    pub(crate) services: usize,
    /// At most this many accepted requests wait for a handler.
    pub(crate) capacity: usize,
    pub(crate) dropped: Arc<AtomicU64>,
    /// Requests waiting and running, published for [`crate::NatsRpcServer`]'s load.
    pub(crate) load: Arc<QueueLoad>,
    /// Keys the per-session queues.
    pub(crate) session_hash: foldhash::fast::RandomState,
}

/// Requests waiting for a handler and handlers running, as last seen by the request loop.
#[derive(Debug, Default)]
pub(crate) struct QueueLoad {
    pub(crate) waiting: AtomicUsize,
    pub(crate) running: AtomicUsize,
}

/// A request accepted for serving.
struct Accepted {
    req: Request,
    reply: Option<Subject>,
    /// The client session of a forwarded message (a Sys RPC): its frontend and session id.
    session: Option<SessionKey>,
}

/// One client session of one frontend: a hash of the frontend id and the session id.
/// Two sessions whose keys collide only share one queue (their messages then run one at
/// a time together); each keeps its own order. A hash saves copying the frontend id for
/// every request.
type SessionKey = u64;

/// How many of its session's messages one handler task serves in a row before it hands
/// the session back to the request loop (whose ready queue other sessions may be waiting
/// in for a handler slot).
const IN_A_ROW: usize = 16;

/// The queues of the request loop.
#[derive(Default)]
struct Queues {
    /// Requests free to start, in arrival order.
    ready: VecDeque<Accepted>,
    /// Shared with the handler tasks: see [`Behind`].
    behind: Arc<Mutex<Behind>>,
}

/// Per session with a message waiting in `ready` or being served: its later messages,
/// in arrival order. The task serving a session's message takes the session's next one
/// itself when it is done (up to [`IN_A_ROW`]), so one session's messages run one at a
/// time, hold one handler slot, and follow each other without a trip through the request
/// loop and a new task, while other sessions' messages run beside them.
#[derive(Default)]
struct Behind {
    queues: HashMap<SessionKey, VecDeque<Accepted>, foldhash::fast::RandomState>,
    /// How many requests `queues` holds.
    len: usize,
}

impl Behind {
    /// The next message of `key`, or `None` after forgetting the session when it has none.
    fn next(&mut self, key: SessionKey) -> Option<Accepted> {
        let next = self.queues.get_mut(&key).and_then(VecDeque::pop_front);
        match next {
            Some(_) => self.len -= 1,
            None => {
                self.queues.remove(&key);
            }
        }
        next
    }
}

fn lock(behind: &Mutex<Behind>) -> std::sync::MutexGuard<'_, Behind> {
    behind.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Queues {
    fn len(&self) -> usize {
        self.ready.len() + lock(&self.behind).len
    }

    fn push(&mut self, accepted: Accepted) {
        let Some(key) = accepted.session else {
            self.ready.push_back(accepted);
            return;
        };
        let mut behind = lock(&self.behind);
        if let Some(waiting) = behind.queues.get_mut(&key) {
            waiting.push_back(accepted);
            behind.len += 1;
        } else {
            behind.queues.insert(key, VecDeque::new());
            drop(behind);
            self.ready.push_back(accepted);
        }
    }

    /// A handler task handed `session` back with messages still waiting: the next one
    /// becomes ready.
    fn ended(&mut self, session: Option<SessionKey>) {
        let Some(key) = session else { return };
        let next = lock(&self.behind).next(key);
        if let Some(next) = next {
            self.ready.push_back(next);
        }
    }
}

/// Serves the requests of `sub` until `stop` fires (or its sender drops) or the
/// connection closes for good.
///
/// The subscription is read even while every handler is busy, so one slow handler never
/// stalls the intake: accepted requests wait in a queue of `capacity`, and those beyond
/// it are dropped and counted. The forwarded messages of one client session (Sys RPCs
/// with the same `frontendID` and session id) start one at a time, in arrival order,
/// each once the one before it has been answered; others start as handlers free up. (A
/// handler that answers by hand, `ResponseMID`, lets its session's next message start
/// while it goes on.) On stop the subscription is unsubscribed, the requests
/// already received are still served, and after [`STOP_TIMEOUT`] the remaining handlers
/// are aborted; the function returns when no handler task is left.
pub(crate) async fn serve_requests(
    mut sub: Subscriber,
    dispatch: Dispatch,
    mut stop: oneshot::Receiver<()>,
) {
    let mut queue = Queues::default();
    let mut running = JoinSet::new();
    let mut overflowing = false;
    let mut closed = false;
    loop {
        dispatch.fill(&mut queue, &mut running);
        dispatch.load.waiting.store(queue.len(), Ordering::Relaxed);
        dispatch.load.running.store(running.len(), Ordering::Relaxed);
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(done) = running.join_next() => ended(done, &mut queue),
            msg = sub.next() => match msg {
                Some(msg) => dispatch.accept(msg, &mut queue, &mut overflowing),
                None => {
                    closed = true;
                    break;
                }
            },
        }
    }

    if !closed {
        // Stop receiving, then take in what NATS had already handed over. Without an
        // unsubscribe the channel stays open and reading it would wait for ever.
        match tokio::time::timeout(REPLY_TIMEOUT, sub.unsubscribe()).await {
            Ok(Ok(())) => {
                while let Some(msg) = sub.next().await {
                    dispatch.accept(msg, &mut queue, &mut overflowing);
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "rpc server: unsubscribe failed"),
            Err(_) => tracing::warn!("rpc server: unsubscribe timed out"),
        }
    }
    drop(sub);

    let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
    loop {
        dispatch.fill(&mut queue, &mut running);
        match tokio::time::timeout_at(deadline, running.join_next()).await {
            Ok(Some(done)) => ended(done, &mut queue),
            // Nothing running, and `fill` found nothing waiting.
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    running = running.len(),
                    waiting = queue.len(),
                    "rpc server: requests still being served at stop; abandoned"
                );
                running.abort_all();
                while running.join_next().await.is_some() {}
                break;
            }
        }
    }
}

impl Dispatch {
    /// Decodes a received message and queues it, or drops it.
    fn accept(&self, msg: async_nats::Message, queue: &mut Queues, overflowing: &mut bool) {
        let req = match Request::decode(msg.payload) {
            Ok(req) => req,
            Err(e) => {
                // Spec §6.3: no reply; the caller times out.
                tracing::warn!(error = %e, "rpc server: undecodable request dropped");
                return;
            }
        };
        if req.msg.is_none() {
            tracing::warn!("rpc server: request without msg dropped");
            return;
        }
        if queue.len() >= self.capacity {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if !*overflowing {
                *overflowing = true;
                tracing::warn!(
                    capacity = self.capacity,
                    "rpc server: request buffer full, dropping requests"
                );
            }
            return;
        }
        *overflowing = false;
        let session = match (&req.session, RpcType::try_from(req.r#type)) {
            // Spec §6.6: a forwarded client message; 0 is no session.
            (Some(s), Ok(RpcType::Sys)) if s.id != 0 => {
                Some(self.session_hash.hash_one((req.frontend_id.as_str(), s.id)))
            }
            _ => None,
        };
        queue.push(Accepted { req, reply: msg.reply, session });
    }

    /// Starts waiting requests while fewer than `services` handlers run.
    fn fill(&self, queue: &mut Queues, running: &mut JoinSet<Option<SessionKey>>) {
        while running.len() < self.services {
            let Some(accepted) = queue.ready.pop_front() else { break };
            let (handler, client) = (self.handler.clone(), self.client.clone());
            let behind = queue.behind.clone();
            running.spawn(serve_session(handler, client, behind, accepted));
        }
    }
}

/// Serves `first`, then, for a client session's message, the session's next messages as
/// they are there, up to [`IN_A_ROW`] in all. Returns the session when it stopped with
/// messages still waiting, for the request loop to go on with.
async fn serve_session(
    handler: Arc<dyn RpcHandler>,
    client: async_nats::Client,
    behind: Arc<Mutex<Behind>>,
    first: Accepted,
) -> Option<SessionKey> {
    let session = first.session;
    let mut next = Some(first);
    for _ in 0..IN_A_ROW {
        let accepted = next.take()?;
        let serve = serve_one(handler.clone(), client.clone(), accepted);
        // The session's next message waits for this one to end, even by a panic.
        if AssertUnwindSafe(serve).catch_unwind().await.is_err() {
            tracing::error!("rpc server: request handler panicked; no reply sent");
        }
        next = lock(&behind).next(session?);
    }
    // Its turn is over: the message taken goes back to the front of its queue.
    let (key, waiting) = (session?, next?);
    let mut behind = lock(&behind);
    behind.queues.entry(key).or_default().push_front(waiting);
    behind.len += 1;
    Some(key)
}

async fn serve_one(handler: Arc<dyn RpcHandler>, client: async_nats::Client, accepted: Accepted) {
    let Accepted { mut req, reply, .. } = accepted;
    if let (Some(msg), Some(reply)) = (req.msg.as_mut(), &reply) {
        // Spec §6.3: the sender leaves `msg.reply` empty and the receiver fills it in.
        msg.reply = reply.to_string();
    }
    let response = handler.handle_request(req).await;
    let Some(reply) = reply else {
        tracing::debug!("rpc server: request without reply subject; response not sent");
        return;
    };
    let publish = client.publish(reply, Bytes::from(response.encode_to_vec()));
    match tokio::time::timeout(REPLY_TIMEOUT, publish).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "rpc server: reply not sent"),
        Err(_) => tracing::warn!("rpc server: reply not sent: the connection is down"),
    }
}

/// A handler task ended: the next message of its session, if any, becomes ready.
fn ended(done: Result<Option<SessionKey>, JoinError>, queue: &mut Queues) {
    match done {
        Ok(session) => queue.ended(session),
        // Only at stop, when what is left is abandoned anyway.
        Err(e) => tracing::debug!(error = %e, "rpc server: request handler cancelled"),
    }
}
