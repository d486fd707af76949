//! A summary series: cumulative sum and count, quantiles over a sliding window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Go's `DefMaxAge`: observations older than this leave the quantiles.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(600);
/// Bound on the window's memory; the oldest observations go first.
pub(crate) const MAX_SAMPLES: usize = 4096;

/// Quantiles are exact over the window (the last [`MAX_AGE`], at most [`MAX_SAMPLES`]
/// observations), which meets any objective's allowed error; Go approximates them with
/// CKMS over the same age. `sum` and `count` cover every observation, as in Go.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    window: VecDeque<(Instant, f64)>,
    pub(crate) sum: f64,
    pub(crate) count: u64,
}

impl Summary {
    pub(crate) fn observe(&mut self, now: Instant, value: f64) {
        self.sum += value;
        self.count += 1;
        if self.window.len() == MAX_SAMPLES {
            self.window.pop_front();
        }
        self.window.push_back((now, value));
    }

    /// Nearest-rank quantiles for sorted `qs`; `NaN` with no observation in the window, as
    /// Go writes them.
    pub(crate) fn quantiles(&mut self, now: Instant, qs: &[f64]) -> Vec<f64> {
        while let Some((t, _)) = self.window.front() {
            if now.saturating_duration_since(*t) > MAX_AGE {
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
        let t0 = Instant::now();
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
        let later = t0 + MAX_AGE + Duration::from_secs(1);
        assert!(s.quantiles(later, &[0.5])[0].is_nan());
        assert_eq!(s.count, 100, "count is cumulative");
    }
}
