//! [`serve_requests`]: the request loop of the RPC server (spec §6.3): a bounded queue in
//! front of at most `services` concurrent handlers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::{Subject, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use pitaya_cluster::RpcHandler;
use pitaya_cluster::protos::Request;
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
}

/// Serves the requests of `sub` until `stop` fires (or its sender drops) or the
/// connection closes for good.
///
/// The subscription is read even while every handler is busy, so one slow handler never
/// stalls the intake: accepted requests wait in a queue of `capacity`, and those beyond
/// it are dropped and counted. On stop the subscription is unsubscribed, the requests
/// already received are still served, and after [`STOP_TIMEOUT`] the remaining handlers
/// are aborted; the function returns when no handler task is left.
pub(crate) async fn serve_requests(
    mut sub: Subscriber,
    dispatch: Dispatch,
    mut stop: oneshot::Receiver<()>,
) {
    let mut queue = VecDeque::new();
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
            Some(done) = running.join_next() => report(done),
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
            Ok(Some(done)) => report(done),
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
    fn accept(
        &self,
        msg: async_nats::Message,
        queue: &mut VecDeque<Accepted>,
        overflowing: &mut bool,
    ) {
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
        queue.push_back(Accepted { req, reply: msg.reply });
    }

    /// Starts waiting requests while fewer than `services` handlers run.
    fn fill(&self, queue: &mut VecDeque<Accepted>, running: &mut JoinSet<()>) {
        while running.len() < self.services {
            let Some(accepted) = queue.pop_front() else { break };
            running.spawn(serve_one(self.handler.clone(), self.client.clone(), accepted));
        }
    }
}

async fn serve_one(handler: Arc<dyn RpcHandler>, client: async_nats::Client, accepted: Accepted) {
    let Accepted { mut req, reply } = accepted;
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

fn report(done: Result<(), JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "rpc server: request handler panicked; no reply sent");
        }
    }
}
