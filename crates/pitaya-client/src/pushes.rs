//! [`Pushes`]: the receiving end of the messages the server pushes.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

/// A message the server pushed (type Push, spec §2.1), with its route already resolved
/// from the dictionary and its data inflated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The push route, e.g. `onMessage`.
    pub route: String,
    /// The payload, in the server's serializer format.
    pub data: Bytes,
}

/// The pushes of one connection, in arrival order. Also a [`Stream`] of [`Push`].
///
/// The channel is bounded ([`ClientOptions::push_buffer`]). When it is full the reader
/// task **drops** the new push and counts it in [`Client::dropped_pushes`] instead of
/// waiting: waiting would stall responses too, so an application that never reads pushes
/// would see every request time out. Dropping the `Pushes` value simply discards pushes.
///
/// [`ClientOptions::push_buffer`]: crate::ClientOptions::push_buffer
/// [`Client::dropped_pushes`]: crate::Client::dropped_pushes
#[derive(Debug)]
pub struct Pushes {
    rx: mpsc::Receiver<Push>,
}

impl Pushes {
    pub(crate) fn new(rx: mpsc::Receiver<Push>) -> Self {
        Self { rx }
    }

    /// The next push. After the connection ends, the pushes already buffered are still
    /// returned, then `None`.
    ///
    /// Cancel safe: a push is never lost when the future is dropped.
    pub async fn recv(&mut self) -> Option<Push> {
        self.rx.recv().await
    }

    /// The next push if one is buffered right now.
    pub fn try_recv(&mut self) -> Option<Push> {
        self.rx.try_recv().ok()
    }

    /// Number of pushes buffered and not yet received.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// Whether no push is buffered.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl Stream for Pushes {
    type Item = Push;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Push>> {
        self.rx.poll_recv(cx)
    }
}
