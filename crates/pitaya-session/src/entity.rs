//! [`NetworkEntity`]: what a session sends through.

use std::net::SocketAddr;

use bytes::Bytes;
use pitaya_core::{BoxFuture, Error};

/// The connection behind a session: the agent of a client connection on a frontend, or a
/// proxy that relays to the frontend over RPC on a backend.
///
/// Futures resolve once the message is queued for writing, not when the client read it.
/// Implementations bound their queues: a send waits for room at most until the
/// connection's write timeout, then the slow connection is closed (one slow client never
/// stalls its senders forever).
pub trait NetworkEntity: Send + Sync + 'static {
    /// Queues a push message on `route`.
    fn push(&self, route: &str, data: Bytes) -> BoxFuture<'_, Result<(), Error>>;

    /// Queues the response to request `id`; `error` sets the error flag.
    fn respond(&self, id: u64, data: Bytes, error: bool) -> BoxFuture<'_, Result<(), Error>>;

    /// Sends a kick packet (ahead of anything queued) and closes the connection.
    fn kick(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Closes the connection without a kick packet. Idempotent.
    fn close(&self);

    /// The client's address, when known.
    fn remote_addr(&self) -> Option<SocketAddr>;

    /// Binds `uid` where the session really lives. `None` (the default) for a frontend's
    /// own connection, whose bind goes through its [`SessionPool`](crate::SessionPool);
    /// a backend's relayed session returns the RPC that binds on the frontend
    /// (`sys.bindsession`, spec §8.3).
    fn bind_remote(&self, _uid: &str) -> Option<BoxFuture<'_, Result<(), Error>>> {
        None
    }

    /// Sends the session's data (`data`, spec §8.2 JSON) to the frontend that owns it
    /// (`sys.pushsession`). A frontend's own connection has nothing to do.
    fn push_session(&self, _uid: Option<&str>, _data: Vec<u8>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// For a session relayed from a frontend: that frontend's server id and the
    /// session's id there. `None` on the frontend itself.
    fn frontend(&self) -> Option<(&str, i64)> {
        None
    }

    /// Queues `push` for the client without waiting, for fan-out to many sessions: the
    /// packet comes from [`SharedPush::packet`](crate::SharedPush::packet), so sessions of one wire variant share
    /// it. An agent never drops it for want of room: what does not fit in its queue waits
    /// behind it, in order, and a client whose queue has stayed full for the write
    /// timeout is closed. `Some(Err)` when the push was not queued (the connection is
    /// closed, or was just closed as too slow). `None` (the default) when this entity
    /// cannot queue without waiting (a backend's relayed session): the caller uses
    /// [`push`](Self::push) instead.
    fn try_push_shared(&self, _push: &crate::SharedPush) -> Option<Result<(), Error>> {
        None
    }

    /// Free slots of the connection's bounded queues right now, for the
    /// `channel_capacity` gauges; `None` (the default) for entities without queues.
    fn queue_free(&self) -> Option<QueueFree> {
        None
    }
}

/// Free slots of a client connection's two bounded queues (Go's `agent_chsend` and
/// `handler_chlocalprocess` channels), as reported by [`NetworkEntity::queue_free`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFree {
    /// Messages (responses, pushes) that can still be queued for the writer.
    pub outgoing: usize,
    /// Client messages that can still wait for their turn to be handled.
    pub dispatch: usize,
}

/// An entity with no connection behind it: pushes and responses are dropped, kick and
/// close do nothing. For tests, benchmarks and sessions that exist without a client.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopEntity;

impl NetworkEntity for NoopEntity {
    fn push(&self, _: &str, _: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn respond(&self, _: u64, _: Bytes, _: bool) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn kick(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn close(&self) {}

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }
}
