//! [`Gate`]: admits work until closed, then lets the owner wait for the work in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Counts operations in flight and refuses new ones once closed, so that `stop` can wait
/// for the operations already admitted without racing new ones. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    closed: AtomicBool,
    active: AtomicUsize,
    idle: Notify,
}

/// Holds a place in the [`Gate`] until dropped. Owned, so it can move into a task.
#[derive(Debug)]
pub struct Pass(Arc<Inner>);

impl Gate {
    /// A place for one operation, or `None` once the gate is closed.
    pub fn enter(&self) -> Option<Pass> {
        // Counted before the check: `close_and_wait` sets `closed` before it reads the
        // count, so an operation is either refused or waited for, never missed.
        self.0.active.fetch_add(1, Ordering::SeqCst);
        let pass = Pass(self.0.clone());
        if self.0.closed.load(Ordering::SeqCst) { None } else { Some(pass) }
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::SeqCst)
    }

    /// Refuses new operations from now on.
    pub fn close(&self) {
        self.0.closed.store(true, Ordering::SeqCst);
    }

    /// Refuses new operations and waits up to `bound` for those in flight. Returns whether
    /// they all finished.
    pub async fn close_and_wait(&self, bound: Duration) -> bool {
        self.close();
        tokio::time::timeout(bound, async {
            loop {
                let idle = self.0.idle.notified();
                tokio::pin!(idle);
                // Registered before the count is read, so a wake-up in between is kept.
                idle.as_mut().enable();
                if self.0.active.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok()
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_passes_and_refuses_new_ones() {
        let gate = Gate::default();
        let pass = gate.enter().unwrap();
        let waited = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(pass);
        };
        let (done, ()) = tokio::join!(gate.close_and_wait(Duration::from_secs(5)), waited);
        assert!(done);
        assert!(gate.enter().is_none());
        assert!(gate.is_closed());
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_bounded() {
        let gate = Gate::default();
        let _pass = gate.enter().unwrap();
        assert!(!gate.close_and_wait(Duration::from_secs(1)).await);
    }
}
