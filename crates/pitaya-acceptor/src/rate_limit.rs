//! Per-connection packet rate limiting (spec §4.4) and the process-wide count of packets
//! it dropped.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::RateLimit;

static EXCEEDED_RATE_LIMITING: AtomicU64 = AtomicU64::new(0);

/// Packets dropped by rate limiting since the process started, over every connection:
/// the `exceeded_rate_limiting` metric (spec §11.1). Monotonic.
pub fn exceeded_rate_limiting_total() -> u64 {
    EXCEEDED_RATE_LIMITING.load(Ordering::Relaxed)
}

/// A GCRA limiter for one connection: `limit` packets per `interval`, bursts of `limit`.
///
/// Go uses a sliding window over the last `limit` reads; GCRA admits the same steady
/// rate and the same burst, and needs no per-packet timestamps.
pub(crate) struct PacketRateLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    quota: RateLimit,
}

impl PacketRateLimiter {
    /// `None` when `limit` cannot be enforced (see [`RateLimit`]): limiting is then off.
    pub(crate) fn new(limit: RateLimit) -> Option<Self> {
        Self::with_clock(limit, DefaultClock::default())
    }
}

impl<C: Clock> PacketRateLimiter<C> {
    /// Like [`new`](PacketRateLimiter::new) with an injected clock, for tests.
    pub(crate) fn with_clock(limit: RateLimit, clock: C) -> Option<Self> {
        let burst = NonZeroU32::new(limit.limit)?;
        // `with_period` is `None` when the step rounds to zero nanoseconds.
        let quota = Quota::with_period(limit.interval / burst.get())?.allow_burst(burst);
        Some(Self { limiter: RateLimiter::direct_with_clock(quota, clock), quota: limit })
    }

    /// Whether one more packet may pass now. A refused packet is counted in
    /// [`exceeded_rate_limiting_total`].
    pub(crate) fn admit(&self) -> bool {
        let admitted = self.limiter.check().is_ok();
        if !admitted {
            EXCEEDED_RATE_LIMITING.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }
}

impl<C: Clock> fmt::Debug for PacketRateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketRateLimiter").field("quota", &self.quota).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let clock = FakeRelativeClock::default();
        let quota = RateLimit { limit: 3, interval: Duration::from_secs(1) };
        let limiter = PacketRateLimiter::with_clock(quota, clock.clone()).unwrap();
        let before = exceeded_rate_limiting_total();
        let admitted = (0..10).filter(|_| limiter.admit()).count();
        assert_eq!(admitted, 3);
        assert!(exceeded_rate_limiting_total() >= before + 7);

        // One cell comes back every interval / limit.
        clock.advance(Duration::from_millis(334));
        assert!(limiter.admit());
        assert!(!limiter.admit());
        clock.advance(Duration::from_secs(1));
        assert_eq!((0..10).filter(|_| limiter.admit()).count(), 3);
    }

    #[test]
    fn unusable_quotas_disable_limiting() {
        assert!(
            PacketRateLimiter::new(RateLimit { limit: 0, interval: Duration::from_secs(1) })
                .is_none()
        );
        assert!(PacketRateLimiter::new(RateLimit { limit: 5, interval: Duration::ZERO }).is_none());
        assert!(PacketRateLimiter::new(RateLimit::default()).is_some());
    }
}
