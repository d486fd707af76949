//! [`Inbox`]: a bot's pushes, counted as they arrive and kept briefly for `expect_push`.

use std::collections::VecDeque;
use std::sync::Arc;

use pitaya_client::{Push, Pushes};
use tokio::time::Instant;

use crate::stats::Stats;

/// Pushes kept for a later `expect_push`; older ones are forgotten first, so a scenario
/// that never expects a busy broadcast route does not grow without bound.
const KEPT: usize = 256;

pub(crate) struct Inbox {
    pushes: Pushes,
    kept: VecDeque<Push>,
    stats: Arc<Stats>,
    closed: bool,
}

impl Inbox {
    pub(crate) fn new(pushes: Pushes, stats: Arc<Stats>) -> Self {
        Self { pushes, kept: VecDeque::new(), stats, closed: false }
    }

    fn keep(&mut self, push: Push) {
        self.stats.push(&push.route);
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(push);
    }

    /// Takes in every push already delivered by the client.
    pub(crate) fn drain(&mut self) {
        while let Some(push) = self.pushes.try_recv() {
            self.keep(push);
        }
    }

    /// Receives pushes until `until`; false when the connection ended.
    pub(crate) async fn collect_until(&mut self, until: Instant) -> bool {
        while !self.closed {
            match tokio::time::timeout_at(until, self.pushes.recv()).await {
                Ok(Some(push)) => self.keep(push),
                Ok(None) => self.closed = true,
                Err(_) => return true,
            }
        }
        false
    }

    /// The oldest kept push on `route`, or the next one to arrive before `until`.
    pub(crate) async fn expect(&mut self, route: &str, until: Instant) -> Option<Push> {
        self.drain();
        if let Some(at) = self.kept.iter().position(|p| p.route == route) {
            return self.kept.remove(at);
        }
        while !self.closed {
            match tokio::time::timeout_at(until, self.pushes.recv()).await {
                Ok(Some(push)) if push.route == route => {
                    self.stats.push(&push.route);
                    return Some(push);
                }
                Ok(Some(push)) => self.keep(push),
                Ok(None) => self.closed = true,
                Err(_) => return None,
            }
        }
        None
    }
}
