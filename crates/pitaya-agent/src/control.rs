//! Connection-wide signals shared by the agent's tasks and its session entity.

use tokio::sync::watch;

/// What the connection should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Running.
    Open,
    /// Flush what is queued, then close.
    Close,
    /// Send a kick packet ahead of the queue, then close.
    Kick,
}

/// A sticky, many-reader signal: once closing, always closing.
#[derive(Debug, Clone)]
pub(crate) struct Control(watch::Sender<Signal>);

impl Control {
    pub(crate) fn new() -> Self {
        Self(watch::Sender::new(Signal::Open))
    }

    /// Moves to `signal` unless already closing (a kick does not undo a close).
    pub(crate) fn signal(&self, signal: Signal) {
        self.0.send_if_modified(|s| {
            if *s == Signal::Open {
                *s = signal;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn current(&self) -> Signal {
        *self.0.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Signal> {
        self.0.subscribe()
    }
}

/// Resolves once the signal leaves [`Signal::Open`]. Cancel-safe.
pub(crate) async fn closing(rx: &mut watch::Receiver<Signal>) -> Signal {
    match rx.wait_for(|s| *s != Signal::Open).await {
        Ok(s) => *s,
        // The sender lives as long as the agent: treat its loss as a close.
        Err(_) => Signal::Close,
    }
}
