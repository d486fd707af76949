//! Connection-wide signals shared by the agent's tasks and its session entity.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

/// What the connection should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Signal {
    /// Running.
    Open = 0,
    /// Flush what is queued, then close.
    Close = 1,
    /// Send a kick packet ahead of the queue, then close.
    Kick = 2,
}

impl Signal {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Open,
            2 => Self::Kick,
            _ => Self::Close,
        }
    }
}

/// A sticky, many-reader signal: once closing, always closing.
///
/// An atomic and one [`Notify`] (about 60 bytes) rather than a `watch` channel, whose
/// eight internal notifiers made it some 400 bytes: every connection has one.
#[derive(Debug, Clone)]
pub(crate) struct Control(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    state: AtomicU8,
    changed: Notify,
}

impl Control {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Inner { state: AtomicU8::new(Signal::Open as u8), changed: Notify::new() }))
    }

    /// Moves to `signal` unless already closing (a kick does not undo a close).
    pub(crate) fn signal(&self, signal: Signal) {
        let moved = self.0.state.compare_exchange(
            Signal::Open as u8,
            signal as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if moved.is_ok() {
            self.0.changed.notify_waiters();
        }
    }

    /// Whether both are the same connection's.
    pub(crate) fn same(&self, other: &Control) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn current(&self) -> Signal {
        Signal::from_u8(self.0.state.load(Ordering::Acquire))
    }

    /// Resolves once the signal leaves [`Signal::Open`], with the signal. Cancel-safe.
    pub(crate) async fn closing(&self) -> Signal {
        loop {
            let notified = self.0.changed.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so that a signal sent in between
            // still wakes this waiter (`Notify::notify_waiters` wakes only registered
            // ones).
            notified.as_mut().enable();
            let now = self.current();
            if now != Signal::Open {
                return now;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closing_wakes_on_the_first_signal_and_stays() {
        let control = Control::new();
        let waiting = tokio::spawn({
            let control = control.clone();
            async move { control.closing().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        control.signal(Signal::Kick);
        assert_eq!(waiting.await.unwrap(), Signal::Kick);
        // A later signal does not undo the first.
        control.signal(Signal::Close);
        assert_eq!(control.current(), Signal::Kick);
        assert_eq!(control.closing().await, Signal::Kick);
    }
}
