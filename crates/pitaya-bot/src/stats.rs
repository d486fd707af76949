//! [`Stats`]: what every bot records while running, shared by all of them.
//!
//! Totals the progress line reads are atomics; everything else sits behind one mutex
//! taken once per recorded event, briefly (a map lookup by `&str` and a histogram bump),
//! which stays cheap next to a network round trip even at high request rates.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Distinct failure kinds kept with an example each; more are lumped together.
const MAX_FAILURE_KINDS: usize = 64;

/// How a request ended, for the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome<'a> {
    /// A success reply.
    Ok,
    /// An error reply the step asked for (`expect_error`).
    ExpectedError(&'a str),
    /// An error reply nobody asked for.
    Error(&'a str),
    /// No reply: `timeout`, `closed`...
    NoReply(&'a str),
}

/// Totals read by the progress line without taking the lock.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) requests: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) pushes: AtomicU64,
    pub(crate) assertion_failures: AtomicU64,
    pub(crate) bots_connected: AtomicU64,
    pub(crate) iterations: AtomicU64,
}

/// Everything recorded during a run.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) live: Live,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) requests: HashMap<String, RouteAcc>,
    pub(crate) notifies: HashMap<String, NotifyAcc>,
    pub(crate) pushes: HashMap<String, u64>,
    pub(crate) pushes_dropped: u64,
    pub(crate) connect: RouteAcc,
    pub(crate) all_requests: Latency,
    pub(crate) failures: HashMap<String, FailureAcc>,
    pub(crate) iterations: u64,
    pub(crate) iterations_failed: u64,
    pub(crate) bots_stopped_early: u64,
    pub(crate) first_connect_error: Option<String>,
    pub(crate) drops: u64,
    pub(crate) resumed: u64,
    pub(crate) fresh_sessions: u64,
}

/// Counters of one request route (or of connecting).
#[derive(Debug, Default)]
pub(crate) struct RouteAcc {
    pub(crate) requests: u64,
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) latency: Latency,
}

/// Counters of one notify route.
#[derive(Debug, Default)]
pub(crate) struct NotifyAcc {
    pub(crate) sent: u64,
    pub(crate) errors: BTreeMap<String, u64>,
}

/// One kind of failure: how often, and the first message seen.
#[derive(Debug)]
pub(crate) struct FailureAcc {
    pub(crate) count: u64,
    pub(crate) example: String,
}

/// Latencies in microseconds.
#[derive(Debug)]
pub(crate) struct Latency(pub(crate) Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        // An auto-resizing histogram: any latency fits. Three significant figures is
        // within hdrhistogram's accepted 0..=5, so creation cannot fail.
        Self(Histogram::new(3).expect("3 significant figures are accepted"))
    }
}

impl Latency {
    fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        // `record` grows the histogram (`saturating_record` would clamp to its current
        // range instead); it fails only past what hdrhistogram can index, never for a
        // real latency.
        let _ = self.0.record(micros);
    }
}

impl RouteAcc {
    fn record(&mut self, latency: Option<Duration>, outcome: Outcome<'_>) {
        self.requests += 1;
        if let Some(d) = latency {
            self.latency.record(d);
        }
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::ExpectedError(code) => *self.errors.entry(code.to_owned()).or_default() += 1,
            Outcome::Error(code) | Outcome::NoReply(code) => {
                self.failed += 1;
                *self.errors.entry(code.to_owned()).or_default() += 1;
            }
        }
    }
}

impl Stats {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking bot leaves counters that are still meaningful.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connect attempt; `error` is the failure's counter name and message.
    pub(crate) fn connect(&self, latency: Duration, error: Option<(&str, String)>) {
        let mut inner = self.lock();
        match error {
            None => {
                self.live.bots_connected.fetch_add(1, Ordering::Relaxed);
                inner.connect.record(Some(latency), Outcome::Ok);
            }
            Some((code, message)) => {
                self.live.failed.fetch_add(1, Ordering::Relaxed);
                inner.connect.record(None, Outcome::NoReply(code));
                inner.first_connect_error.get_or_insert(message);
            }
        }
    }

    pub(crate) fn request(&self, route: &str, latency: Option<Duration>, outcome: Outcome<'_>) {
        self.live.requests.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Error(_) | Outcome::NoReply(_)) {
            self.live.failed.fetch_add(1, Ordering::Relaxed);
        }
        let mut inner = self.lock();
        if let Some(d) = latency {
            inner.all_requests.record(d);
        }
        match inner.requests.get_mut(route) {
            Some(acc) => acc.record(latency, outcome),
            None => {
                let mut acc = RouteAcc::default();
                acc.record(latency, outcome);
                inner.requests.insert(route.to_owned(), acc);
            }
        }
    }

    pub(crate) fn notify(&self, route: &str, error: Option<&str>) {
        if error.is_some() {
            self.live.failed.fetch_add(1, Ordering::Relaxed);
        }
        let mut inner = self.lock();
        if !inner.notifies.contains_key(route) {
            inner.notifies.insert(route.to_owned(), NotifyAcc::default());
        }
        if let Some(acc) = inner.notifies.get_mut(route) {
            acc.sent += 1;
            if let Some(code) = error {
                *acc.errors.entry(code.to_owned()).or_default() += 1;
            }
        }
    }

    pub(crate) fn push(&self, route: &str) {
        self.live.pushes.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        match inner.pushes.get_mut(route) {
            Some(n) => *n += 1,
            None => {
                inner.pushes.insert(route.to_owned(), 1);
            }
        }
    }

    pub(crate) fn pushes_dropped(&self, n: u64) {
        self.lock().pushes_dropped += n;
    }

    /// A failed assertion, missing push or missing variable. `kind` groups failures
    /// (step and check), `message` is the detail of this occurrence.
    pub(crate) fn failure(&self, kind: &str, message: impl FnOnce() -> String) {
        self.live.assertion_failures.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        let full = inner.failures.len() >= MAX_FAILURE_KINDS && !inner.failures.contains_key(kind);
        let kind = if full { "(other failures)" } else { kind };
        match inner.failures.get_mut(kind) {
            Some(acc) => acc.count += 1,
            None => {
                let example = message();
                inner.failures.insert(kind.to_owned(), FailureAcc { count: 1, example });
            }
        }
    }

    pub(crate) fn iteration(&self, failed: bool) {
        self.live.iterations.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.lock();
        inner.iterations += 1;
        if failed {
            inner.iterations_failed += 1;
        }
    }

    /// A resume event of a bot's client.
    pub(crate) fn resume_event(&self, event: &pitaya_client::ResumeEvent) {
        let mut inner = self.lock();
        match event {
            pitaya_client::ResumeEvent::Dropped { .. } => inner.drops += 1,
            pitaya_client::ResumeEvent::Resumed { .. } => inner.resumed += 1,
            pitaya_client::ResumeEvent::FreshSession { .. } => inner.fresh_sessions += 1,
            _ => {}
        }
    }

    pub(crate) fn bot_stopped_early(&self) {
        self.lock().bots_stopped_early += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_of_any_size_are_kept() {
        let stats = Stats::default();
        for ms in [1, 3, 5_000, 120_000] {
            stats.request("r", Some(Duration::from_millis(ms)), Outcome::Ok);
        }
        stats.request("r", None, Outcome::NoReply("timeout"));
        stats.request("r", Some(Duration::from_millis(2)), Outcome::Error("PIT-500"));
        stats.request("r", Some(Duration::from_millis(2)), Outcome::ExpectedError("PIT-404"));
        let inner = stats.lock();
        let r = &inner.requests["r"];
        assert_eq!((r.requests, r.ok, r.failed), (7, 4, 2));
        assert_eq!(r.errors.len(), 3);
        let h = &r.latency.0;
        assert_eq!(h.len(), 6);
        assert!(h.max() >= 119_000_000 && h.max() <= 121_000_000, "{}", h.max());
        assert_eq!(stats.live.failed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn failure_kinds_are_capped() {
        let stats = Stats::default();
        for i in 0..MAX_FAILURE_KINDS + 10 {
            stats.failure(&format!("kind {i}"), || format!("example {i}"));
        }
        stats.failure("kind 0", || unreachable!("the example is taken once"));
        let inner = stats.lock();
        assert_eq!(inner.failures.len(), MAX_FAILURE_KINDS + 1);
        assert_eq!(inner.failures["(other failures)"].count, 10);
        assert_eq!(inner.failures["kind 0"].count, 2);
        assert_eq!(stats.live.assertion_failures.load(Ordering::Relaxed), 75);
    }
}
