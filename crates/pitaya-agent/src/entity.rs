//! The agent as its session's [`NetworkEntity`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use pitaya_codec::Message;
use pitaya_core::{BoxFuture, Error, codes};
use pitaya_session::{NetworkEntity, QueueFree};
use tokio::sync::mpsc::error::TrySendError;

use crate::control::{Control, Signal};
use crate::routes::ClientRoutes;

/// An item of the outgoing queue, kept small (16 bytes): the queue keeps the room its
/// busiest moment needed.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A response or push, encoded by the writer.
    Message(Box<Message>),
    /// The handshake response: accepted (code 200) or rejected (code 400).
    Handshake { accepted: bool },
    /// A heartbeat packet.
    Heartbeat,
}

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
}

fn closed() -> Error {
    Error::new(codes::CLIENT_CLOSED_REQUEST, "connection closed")
}

impl AgentEntity {
    /// Queues `item`, waiting at most the write timeout for room. A connection whose
    /// queue stays full that long is not reading: it is closed, so that whoever pushes to
    /// it (a broadcast, say) is never held up longer than that.
    pub(crate) async fn enqueue(&self, item: Outgoing) -> Result<(), Error> {
        if self.control.current() != Signal::Open {
            return Err(closed());
        }
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
        let pending = self.pending.load(Ordering::Relaxed);
        Some(QueueFree {
            outgoing: self.tx.capacity(),
            dispatch: self.dispatch_capacity.saturating_sub(pending),
        })
    }

    fn push(&self, route: &str, data: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        let msg = Message::push(route, data);
        Box::pin(self.enqueue(Outgoing::Message(Box::new(msg))))
    }

    fn respond(&self, id: u64, data: Bytes, error: bool) -> BoxFuture<'_, Result<(), Error>> {
        let msg =
            if error { Message::error_response(id, data) } else { Message::response(id, data) };
        Box::pin(self.enqueue(Outgoing::Message(Box::new(msg))))
    }

    fn kick(&self) -> BoxFuture<'_, Result<(), Error>> {
        let was_open = self.control.current() == Signal::Open;
        self.control.signal(Signal::Kick);
        Box::pin(std::future::ready(if was_open { Ok(()) } else { Err(closed()) }))
    }

    fn close(&self) {
        self.control.signal(Signal::Close);
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.remote)
    }
}
