//! [`Report`]: the figures of a run, as JSON, a text table and Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::{Inner, Latency, RouteAcc};

/// The outcome of a run. Serialized as the `--report` JSON file.
///
/// "Failed" calls are those without the expected outcome: an error reply the step did not
/// ask for (`expect_error`), no reply (`timeout`, `closed`), a failed connect or notify.
/// Error replies are counted by code (`PIT-...`) in `errors` whether expected or not;
/// client-side failures use lower-case names (`timeout`, `closed`, `connect`, `tls`,
/// `websocket`, `handshake`, `encode`, `protocol`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The spec's `name`.
    pub name: Option<String>,
    /// The server address.
    pub address: String,
    /// Bots started.
    pub bots: usize,
    /// Bots whose connection and handshake succeeded.
    pub bots_connected: u64,
    /// The first connect failure's message, if any bot failed to connect (they are counted
    /// in `errors` and `connect`, not as assertion failures).
    pub connect_error: Option<String>,
    /// Bots that stopped before the end (setup failed, connection lost, `on_failure: stop`).
    pub bots_stopped_early: u64,
    /// Wall-clock time of the run, in seconds.
    pub elapsed_secs: f64,
    /// Loop iterations run to their end (an iteration cut by the duration limit is not
    /// counted).
    pub iterations: u64,
    /// Of those, iterations in which a step failed.
    pub iterations_failed: u64,
    /// Requests sent, all routes.
    pub requests: u64,
    /// `requests / elapsed_secs`.
    pub requests_per_sec: f64,
    /// Notifies sent, all routes.
    pub notifies: u64,
    /// Failed calls (see above), connects and notifies included.
    pub failed: u64,
    /// `failed / (connects + requests + notifies)`; 0 when nothing was attempted.
    pub error_rate: f64,
    /// Errors by code, all routes, connects and notifies included.
    pub errors: BTreeMap<String, u64>,
    /// Pushes received, all routes.
    pub pushes_received: u64,
    /// Pushes the client dropped because a bot's push buffer was full.
    pub pushes_dropped: u64,
    /// Failed assertions, missing pushes and missing variables.
    pub assertion_failures: u64,
    /// The failures grouped by step and check, most frequent first, with one example.
    pub failures: Vec<FailureReport>,
    /// Latency of every reply (success or error), all routes.
    pub latency_ms: Option<Percentiles>,
    /// Connects (TCP, TLS, WebSocket upgrade and handshake).
    pub connect: RouteReport,
    /// Requests by route (after `${var}` substitution).
    pub routes: BTreeMap<String, RouteReport>,
    /// Notifies sent by route.
    pub notify_routes: BTreeMap<String, NotifyReport>,
    /// Pushes received by route.
    pub push_routes: BTreeMap<String, u64>,
    /// Session resume: drops, resumes and fresh sessions (all zero without resume).
    #[serde(default)]
    pub resume: ResumeReport,
}

/// What became of dropped connections (`drop` steps, or a network that failed by itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeReport {
    /// Connections that dropped.
    pub drops: u64,
    /// Sessions that continued on a new connection.
    pub resumed: u64,
    /// Sessions the server replaced with fresh ones.
    pub fresh_sessions: u64,
}

/// Counters of one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteReport {
    /// Calls made.
    pub requests: u64,
    /// Success replies.
    pub ok: u64,
    /// Calls without the expected outcome.
    pub failed: u64,
    /// Error replies and client-side failures by code.
    pub errors: BTreeMap<String, u64>,
    /// Reply latency; `None` when no reply came.
    pub latency_ms: Option<Percentiles>,
}

/// Counters of one notify route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifyReport {
    /// Notifies attempted.
    pub sent: u64,
    /// Failures by code (`closed`, `timeout`...).
    pub errors: BTreeMap<String, u64>,
}

/// Latency figures in milliseconds (microsecond resolution, 3 significant figures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Replies measured.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// One kind of failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureReport {
    /// The step and check: `steps[2] request room.echo: assert /n equals`.
    pub kind: String,
    /// Occurrences.
    pub count: u64,
    /// The first occurrence's message, with the values seen.
    pub example: String,
}

impl Percentiles {
    fn of(latency: &Latency) -> Option<Self> {
        let h = &latency.0;
        if h.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Self {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        })
    }
}

impl RouteReport {
    fn of(acc: &RouteAcc) -> Self {
        Self {
            requests: acc.requests,
            ok: acc.ok,
            failed: acc.failed,
            errors: acc.errors.clone(),
            latency_ms: Percentiles::of(&acc.latency),
        }
    }
}

impl Report {
    pub(crate) fn build(
        name: Option<String>,
        address: String,
        bots: usize,
        elapsed: Duration,
        inner: &Inner,
    ) -> Self {
        let routes: BTreeMap<_, _> =
            inner.requests.iter().map(|(k, v)| (k.clone(), RouteReport::of(v))).collect();
        let notify_routes: BTreeMap<_, _> = inner
            .notifies
            .iter()
            .map(|(k, v)| (k.clone(), NotifyReport { sent: v.sent, errors: v.errors.clone() }))
            .collect();
        let mut errors = BTreeMap::<String, u64>::new();
        let all_errors = routes
            .values()
            .flat_map(|r| &r.errors)
            .chain(notify_routes.values().flat_map(|n| &n.errors))
            .chain(&inner.connect.errors);
        for (code, n) in all_errors {
            *errors.entry(code.clone()).or_default() += n;
        }
        let requests = routes.values().map(|r| r.requests).sum::<u64>();
        let notifies = notify_routes.values().map(|n| n.sent).sum::<u64>();
        let failed = routes.values().map(|r| r.failed).sum::<u64>()
            + notify_routes.values().map(|n| n.errors.values().sum::<u64>()).sum::<u64>()
            + inner.connect.failed;
        let attempts = requests + notifies + inner.connect.requests;
        let mut failures: Vec<FailureReport> = inner
            .failures
            .iter()
            .map(|(kind, acc)| FailureReport {
                kind: kind.clone(),
                count: acc.count,
                example: acc.example.clone(),
            })
            .collect();
        failures.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
        let secs = elapsed.as_secs_f64();
        Self {
            name,
            address,
            bots,
            bots_connected: inner.connect.ok,
            connect_error: inner.first_connect_error.clone(),
            bots_stopped_early: inner.bots_stopped_early,
            elapsed_secs: secs,
            iterations: inner.iterations,
            iterations_failed: inner.iterations_failed,
            requests,
            requests_per_sec: if secs > 0.0 { requests as f64 / secs } else { 0.0 },
            notifies,
            failed,
            error_rate: if attempts > 0 { failed as f64 / attempts as f64 } else { 0.0 },
            errors,
            pushes_received: inner.pushes.values().sum(),
            pushes_dropped: inner.pushes_dropped,
            assertion_failures: failures.iter().map(|f| f.count).sum(),
            failures,
            latency_ms: Percentiles::of(&inner.all_requests),
            connect: RouteReport::of(&inner.connect),
            routes,
            notify_routes,
            push_routes: inner.pushes.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            resume: ResumeReport {
                drops: inner.drops,
                resumed: inner.resumed,
                fresh_sessions: inner.fresh_sessions,
            },
        }
    }

    /// Why this run should count as failed: no bot connected, assertion failures, or an
    /// error rate above `max_error_rate` (a fraction, e.g. `0.01`). Empty when it passed.
    pub fn verdict(&self, max_error_rate: Option<f64>) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.bots_connected == 0 {
            let why = self.connect_error.as_deref().unwrap_or("no attempt");
            reasons.push(format!("no bot connected ({why})"));
        }
        if self.assertion_failures > 0 {
            reasons.push(format!("{} assertion failure(s)", self.assertion_failures));
        }
        if let Some(max) = max_error_rate {
            if self.error_rate > max {
                reasons.push(format!("error rate {:.4} above {max}", self.error_rate));
            }
        }
        reasons
    }

    /// A human-readable summary: totals, then one line per route.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let name = self.name.as_deref().map(|n| format!(" {n}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "pitaya-bot{name} against {}: {} bots ({} connected, {} stopped early), {:.2}s, {} iterations ({} failed)",
            self.address,
            self.bots,
            self.bots_connected,
            self.bots_stopped_early,
            self.elapsed_secs,
            self.iterations,
            self.iterations_failed,
        );
        let _ = writeln!(
            out,
            "{} requests ({:.0}/s), {} notifies, {} failed (error rate {:.4}), {} pushes received ({} dropped), {} assertion failures",
            self.requests,
            self.requests_per_sec,
            self.notifies,
            self.failed,
            self.error_rate,
            self.pushes_received,
            self.pushes_dropped,
            self.assertion_failures,
        );
        if self.resume.drops > 0 {
            let r = &self.resume;
            let _ = writeln!(
                out,
                "{} connections dropped: {} resumed, {} fresh sessions",
                r.drops, r.resumed, r.fresh_sessions
            );
        }
        let w = self
            .routes
            .keys()
            .chain(self.notify_routes.keys())
            .chain(self.push_routes.keys())
            .map(|k| k.len() + 7)
            .max()
            .unwrap_or(0)
            .max(30);
        let _ = writeln!(
            out,
            "\n{:<w$} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}  errors",
            "route", "requests", "ok", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        let rows = std::iter::once(("(connect)", &self.connect))
            .chain(self.routes.iter().map(|(k, v)| (k.as_str(), v)));
        for (route, r) in rows {
            let p = |f: fn(&Percentiles) -> f64| {
                r.latency_ms.as_ref().map(|l| format!("{:.3}", f(l))).unwrap_or_else(|| "-".into())
            };
            let errors = r.errors.iter().map(|(c, n)| format!("{c}={n}")).collect::<Vec<_>>();
            let _ = writeln!(
                out,
                "{route:<w$} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9}  {}",
                r.requests,
                r.ok,
                r.failed,
                p(|l| l.p50),
                p(|l| l.p90),
                p(|l| l.p99),
                p(|l| l.max),
                errors.join(" "),
            );
        }
        for (route, n) in &self.notify_routes {
            let errors = n.errors.iter().map(|(c, k)| format!("{c}={k}")).collect::<Vec<_>>();
            let label = format!("notify {route}");
            let _ = writeln!(out, "{label:<w$} {:>9} sent  {}", n.sent, errors.join(" "));
        }
        for (route, n) in &self.push_routes {
            let label = format!("push {route}");
            let _ = writeln!(out, "{label:<w$} {n:>9} received");
        }
        if let Some(e) = &self.connect_error {
            let _ = writeln!(out, "\nfirst connect error: {e}");
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "\nfailures:");
            for f in &self.failures {
                let _ = writeln!(out, "  {} x{}: {}", f.kind, f.count, f.example);
            }
        }
        out
    }

    /// The figures in Prometheus text exposition format (version 0.0.4), metric names
    /// prefixed `pitaya_bot_`, latency as a summary in seconds.
    pub fn prometheus(&self) -> String {
        let mut text = String::new();
        let out = &mut text;
        head(out, "requests_total", "counter", "Requests sent, by route.");
        for (route, r) in &self.routes {
            let _ = writeln!(
                out,
                "pitaya_bot_requests_total{{route=\"{}\"}} {}",
                esc(route),
                r.requests
            );
        }
        head(
            out,
            "request_errors_total",
            "counter",
            "Error replies and failures by route and code.",
        );
        for (route, r) in &self.routes {
            for (code, n) in &r.errors {
                let _ = writeln!(
                    out,
                    "pitaya_bot_request_errors_total{{route=\"{}\",code=\"{}\"}} {n}",
                    esc(route),
                    esc(code)
                );
            }
        }
        head(out, "request_latency_seconds", "summary", "Reply latency by route.");
        for (route, r) in &self.routes {
            let Some(l) = &r.latency_ms else { continue };
            let route = esc(route);
            for (q, v) in [("0.5", l.p50), ("0.9", l.p90), ("0.99", l.p99), ("1", l.max)] {
                let _ = writeln!(
                    out,
                    "pitaya_bot_request_latency_seconds{{route=\"{route}\",quantile=\"{q}\"}} {}",
                    v / 1000.0
                );
            }
            let _ = writeln!(
                out,
                "pitaya_bot_request_latency_seconds_sum{{route=\"{route}\"}} {}",
                l.mean * l.count as f64 / 1000.0
            );
            let _ = writeln!(
                out,
                "pitaya_bot_request_latency_seconds_count{{route=\"{route}\"}} {}",
                l.count
            );
        }
        head(out, "notifies_total", "counter", "Notifies sent, by route.");
        for (route, n) in &self.notify_routes {
            let _ =
                writeln!(out, "pitaya_bot_notifies_total{{route=\"{}\"}} {}", esc(route), n.sent);
        }
        head(out, "pushes_received_total", "counter", "Pushes received, by route.");
        for (route, n) in &self.push_routes {
            let _ =
                writeln!(out, "pitaya_bot_pushes_received_total{{route=\"{}\"}} {n}", esc(route));
        }
        head(out, "errors_total", "counter", "Errors by code, all routes.");
        for (code, n) in &self.errors {
            let _ = writeln!(out, "pitaya_bot_errors_total{{code=\"{}\"}} {n}", esc(code));
        }
        let scalars: [(&str, &str, &str, f64); 11] = [
            (
                "assertion_failures_total",
                "counter",
                "Failed assertions and missing pushes.",
                self.assertion_failures as f64,
            ),
            ("failed_total", "counter", "Calls without the expected outcome.", self.failed as f64),
            ("error_rate", "gauge", "Failed calls over attempted calls.", self.error_rate),
            ("bots", "gauge", "Bots started.", self.bots as f64),
            ("bots_connected", "gauge", "Bots connected.", self.bots_connected as f64),
            ("iterations_total", "counter", "Loop iterations completed.", self.iterations as f64),
            ("drops_total", "counter", "Connections dropped.", self.resume.drops as f64),
            ("resumed_total", "counter", "Sessions resumed.", self.resume.resumed as f64),
            (
                "fresh_sessions_total",
                "counter",
                "Sessions replaced by fresh ones after a drop.",
                self.resume.fresh_sessions as f64,
            ),
            ("duration_seconds", "gauge", "Run duration.", self.elapsed_secs),
            (
                "requests_per_second",
                "gauge",
                "Requests per second over the run.",
                self.requests_per_sec,
            ),
        ];
        for (name, kind, help, value) in scalars {
            head(out, name, kind, help);
            let _ = writeln!(out, "pitaya_bot_{name} {value}");
        }
        text
    }
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP pitaya_bot_{name} {help}\n# TYPE pitaya_bot_{name} {kind}");
}

/// Escapes a label value (backslash, quote, newline).
fn esc(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
