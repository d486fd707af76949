//! [`channel`]: a connection's outgoing queue, bounded, many senders, one receiver.
//!
//! It does what the agent used `tokio::sync::mpsc` for, with the same method names and
//! error types, in about a tenth of the memory: tokio's channel is some 550 bytes of
//! cache-padded state plus a first block of 32 slots allocated up front, about 1.1 KiB
//! for every connection of the server, most of which are idle. Here an idle connection
//! costs the shared state (under 150 bytes) and the few slots it ever used.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;
use tokio::sync::mpsc::error::{SendError, TryRecvError, TrySendError};

/// A queue of at most `capacity` items (at least 1).
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { items: VecDeque::new(), closed: false, senders: 1 }),
        receiver: AtomicWaker::new(),
        room: Notify::new(),
        capacity: capacity.max(1),
    });
    (Sender(shared.clone()), Receiver(shared))
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Woken when an item is queued or the last sender goes.
    receiver: AtomicWaker,
    /// Notified (one waiter per item taken) when room is made.
    room: Notify,
    capacity: usize,
}

struct State<T> {
    items: VecDeque<T>,
    /// Closed by the receiver: sending fails, queued items can still be received.
    closed: bool,
    senders: usize,
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        // Nothing panics while holding the lock; if something did, the queue is still a
        // valid queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The sending side; clone it for more senders.
pub(crate) struct Sender<T>(Arc<Shared<T>>);

impl<T> Sender<T> {
    /// Queues `item` if there is room, without waiting.
    ///
    /// # Errors
    /// [`TrySendError::Full`] when the queue holds `capacity` items,
    /// [`TrySendError::Closed`] once the receiver closed or went; either gives the item
    /// back.
    pub(crate) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        {
            let mut state = self.0.state();
            if state.closed {
                return Err(TrySendError::Closed(item));
            }
            if state.items.len() >= self.0.capacity {
                return Err(TrySendError::Full(item));
            }
            state.items.push_back(item);
        }
        self.0.receiver.wake();
        Ok(())
    }

    /// Queues `item`, waiting for room.
    ///
    /// Cancel safe in the sense that a dropped call queues nothing; waiting senders get
    /// room in no particular order.
    ///
    /// # Errors
    /// [`SendError`] with the item once the receiver closed or went.
    pub(crate) async fn send(&self, item: T) -> Result<(), SendError<T>> {
        let mut item = item;
        loop {
            let room = self.0.room.notified();
            tokio::pin!(room);
            // Registered before the queue is looked at, so that room made in between
            // still wakes this sender.
            room.as_mut().enable();
            match self.try_send(item) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(back)) => return Err(SendError(back)),
                Err(TrySendError::Full(back)) => item = back,
            }
            room.await;
        }
    }

    /// Free slots now.
    pub(crate) fn capacity(&self) -> usize {
        self.0.capacity.saturating_sub(self.0.state().items.len())
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.state().senders += 1;
        Self(self.0.clone())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.0.state();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.0.receiver.wake();
        }
    }
}

/// The receiving side.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

impl<T> Receiver<T> {
    /// The next item, or `None` once the queue is empty and closed or without senders.
    ///
    /// Cancel safe: a dropped call takes nothing off the queue.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.state();
        if let Some(item) = state.items.pop_front() {
            drop(state);
            self.0.room.notify_one();
            return Poll::Ready(Some(item));
        }
        if state.closed || state.senders == 0 {
            return Poll::Ready(None);
        }
        // Under the lock: a sender queues under it too and wakes after, so it sees this
        // waker.
        self.0.receiver.register(cx.waker());
        Poll::Pending
    }

    /// An item already queued, without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`], or [`TryRecvError::Disconnected`] once the queue is empty
    /// and closed or without senders.
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.0.state();
        match state.items.pop_front() {
            Some(item) => {
                drop(state);
                self.0.room.notify_one();
                Ok(item)
            }
            None if state.closed || state.senders == 0 => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Refuses further items; those queued can still be received. Senders waiting for
    /// room fail.
    pub(crate) fn close(&mut self) {
        self.0.state().closed = true;
        self.0.room.notify_waiters();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn bounded_in_order_and_closable() {
        let (tx, mut rx) = channel(2);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(tx.capacity(), 0);
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(tx.capacity(), 1);
        tx.try_send(3).unwrap();
        assert_eq!(rx.try_recv(), Ok(2));
        rx.close();
        assert!(matches!(tx.try_send(4), Err(TrySendError::Closed(4))));
        // What was queued before the close is still received.
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[tokio::test]
    async fn a_full_queue_makes_send_wait_for_room() {
        let (tx, mut rx) = channel(1);
        tx.try_send(1).unwrap();
        let sending = tokio::spawn(async move {
            tx.send(2).await.unwrap();
            tx
        });
        tokio::task::yield_now().await;
        assert!(!sending.is_finished());
        assert_eq!(rx.recv().await, Some(1));
        let tx = sending.await.unwrap();
        assert_eq!(rx.recv().await, Some(2));
        // The receiver wakes when an item arrives, and ends when the senders are gone.
        let receiving = tokio::spawn(async move { (rx.recv().await, rx.recv().await) });
        tokio::task::yield_now().await;
        tx.try_send(3).unwrap();
        drop(tx);
        assert_eq!(receiving.await.unwrap(), (Some(3), None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sender_waiting_for_room_fails_when_the_receiver_closes() {
        let (tx, mut rx) = channel(1);
        tx.try_send(1).unwrap();
        let sending = tokio::spawn(async move { tx.send(2).await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        rx.close();
        assert!(matches!(sending.await.unwrap(), Err(SendError(2))));
        assert_eq!(rx.recv().await, Some(1));
    }
}
