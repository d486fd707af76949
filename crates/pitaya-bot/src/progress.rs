//! [`Progress`]: the live line on stderr, redrawn from the shared counters.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::stats::Stats;

/// Redraw period: often enough to look live, rarely enough to cost nothing.
const TICK: Duration = Duration::from_millis(250);

pub(crate) struct Progress {
    done: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Progress {
    pub(crate) fn start(stats: Arc<Stats>, bots: usize) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        let (done, mut done_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut ticker = tokio::time::interval(TICK);
            let mut last = (started, 0u64);
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = &mut done_rx => break,
                }
                let live = &stats.live;
                let requests = live.requests.load(Ordering::Relaxed);
                let now = Instant::now();
                let secs = now.duration_since(last.0).as_secs_f64();
                let rate = if secs > 0.0 { (requests - last.1) as f64 / secs } else { 0.0 };
                last = (now, requests);
                // Short enough for an 80-column terminal at typical figures: a wrapped
                // line cannot be redrawn in place.
                bar.set_message(format!(
                    "{}/{bots} bots | {requests} req {rate:.0}/s | {} failed | {} pushes | {} asserts failed | {} iter",
                    live.bots_connected.load(Ordering::Relaxed),
                    live.failed.load(Ordering::Relaxed),
                    live.pushes.load(Ordering::Relaxed),
                    live.assertion_failures.load(Ordering::Relaxed),
                    live.iterations.load(Ordering::Relaxed),
                ));
            }
            bar.finish_and_clear();
        });
        Self { done, task }
    }

    /// Clears the line.
    pub(crate) async fn finish(self) {
        let _ = self.done.send(());
        let _ = self.task.await;
    }
}
