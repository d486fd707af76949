//! A summary series: cumulative sum and count, quantiles over a sliding window.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Go's `DefMaxAge`: observations older than this leave the quantiles.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(600);
/// Bound on the window's memory; the oldest observations go first.
pub(crate) const MAX_SAMPLES: usize = 4096;
/// How often the coarse clock moves: the error on an observation's age, small against
/// [`MAX_AGE`].
const TICK: Duration = Duration::from_millis(250);

/// Milliseconds since [`anchor`], as of the coarse clock's last tick.
static COARSE_MS: AtomicU64 = AtomicU64::new(0);

fn anchor() -> Instant {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(Instant::now)
}

/// Milliseconds since [`anchor`], exactly.
pub(crate) fn precise_ms() -> u64 {
    u64::try_from(anchor().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Starts the coarse clock (once per process): a thread that sleeps [`TICK`] between two
/// stores. Observations read the clock as one relaxed load instead of a clock read each,
/// which is most of what an observation cost at hundreds of thousands per second. Called
/// when a registry is built, before any observation.
pub(crate) fn start_coarse_clock() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        COARSE_MS.store(precise_ms(), Ordering::Relaxed);
        let spawned = std::thread::Builder::new().name("pitaya-metrics-clock".into()).spawn(|| {
            loop {
                std::thread::sleep(TICK);
                COARSE_MS.store(precise_ms(), Ordering::Relaxed);
            }
        });
        if let Err(e) = spawned {
            // Without the thread the clock stands still: observations would age from the
            // registry's creation, so quantiles would empty after MAX_AGE. Say so once.
            tracing::error!(error = %e, "metrics: could not start the summary clock thread");
        }
    });
}

/// The coarse clock: at most [`TICK`] behind [`precise_ms`].
pub(crate) fn coarse_ms() -> u64 {
    COARSE_MS.load(Ordering::Relaxed)
}

/// Quantiles are exact over the window (the last [`MAX_AGE`], at most [`MAX_SAMPLES`]
/// observations), which meets any objective's allowed error; Go approximates them with
/// CKMS over the same age. `sum` and `count` cover every observation, as in Go.
/// Observation times are milliseconds on the coarse clock.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    window: VecDeque<(u64, f64)>,
    pub(crate) sum: f64,
    pub(crate) count: u64,
}

impl Summary {
    pub(crate) fn observe(&mut self, now_ms: u64, value: f64) {
        self.sum += value;
        self.count += 1;
        if self.window.len() == MAX_SAMPLES {
            self.window.pop_front();
        }
        self.window.push_back((now_ms, value));
    }

    /// Nearest-rank quantiles for sorted `qs`; `NaN` with no observation in the window, as
    /// Go writes them.
    pub(crate) fn quantiles(&mut self, now_ms: u64, qs: &[f64]) -> Vec<f64> {
        let max_age = MAX_AGE.as_millis() as u64;
        while let Some((t, _)) = self.window.front() {
            if now_ms.saturating_sub(*t) > max_age {
                self.window.pop_front();
            } else {
                break;
            }
        }
        let mut values: Vec<f64> = self.window.iter().map(|(_, v)| *v).collect();
        values.sort_by(f64::total_cmp);
        qs.iter()
            .map(|q| {
                let n = values.len();
                // Rank ceil(q·n), 1-based, clamped to the window: an index always in bounds.
                let rank = ((q * n as f64).ceil() as usize).clamp(1, n.max(1));
                values.get(rank - 1).copied().unwrap_or(f64::NAN)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_and_age() {
        let t0 = 5_000;
        let mut s = Summary::default();
        assert!(s.quantiles(t0, &[0.5])[0].is_nan());
        for v in 1..=100 {
            s.observe(t0, f64::from(v));
        }
        assert_eq!(
            s.quantiles(t0, &[0.0, 0.7, 0.95, 0.99, 1.0]),
            vec![1.0, 70.0, 95.0, 99.0, 100.0]
        );
        assert_eq!((s.sum, s.count), (5050.0, 100));
        let later = t0 + MAX_AGE.as_millis() as u64 + 1;
        assert!(s.quantiles(later, &[0.5])[0].is_nan());
        assert_eq!(s.count, 100, "count is cumulative");
    }

    #[test]
    fn the_coarse_clock_ticks() {
        start_coarse_clock();
        let first = coarse_ms();
        assert!(precise_ms() >= first);
        let deadline = Instant::now() + Duration::from_secs(10);
        while coarse_ms() == first {
            assert!(Instant::now() < deadline, "the coarse clock did not move in 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(coarse_ms() <= precise_ms());
    }
}
