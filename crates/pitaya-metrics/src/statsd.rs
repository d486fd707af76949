//! [`StatsdReporter`]: DogStatsD lines over UDP, as Go Pitaya's DataDog client sends them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pitaya_config::model::MetricsConfig;

use crate::names::label;
use crate::reporter::pairs;
use crate::{Labels, MetricKind, MetricsError, Reporter};

/// Sends `<prefix><name>:<value>|<type>[|@<rate>][|#<tags>]` datagrams to
/// `pitaya.metrics.statsd.host` (spec §11.4).
///
/// * Tags: `serverType:<type>`, then each const label `k:v` (sorted by name), then the
///   call's labels (sorted by name). Like Go's, this reporter is schemaless: any metric name
///   and labels are sent, so it never returns [`MetricsError::UnknownMetric`].
/// * Gauge `|g`, count `|c` (the count truncated to an integer, as Go's `int64(count)`),
///   summary `|ms` with the value as given, i.e. nanoseconds (as Go), written with six
///   decimals as datadog-go's `TimeInMilliseconds` does (`1500.000000`), histogram `|h`.
///   Gauges and histograms use the shortest form (`0.5`, `3`).
/// * Sample rate `pitaya.metrics.statsd.rate`: below 1, a report is sent with that
///   probability and carries `|@<rate>`.
///
/// Sending never blocks and never fails the call: the socket is non-blocking and a datagram
/// that cannot be sent (no agent, full buffer) is dropped with a debug trace.
#[derive(Debug)]
pub struct StatsdReporter {
    socket: UdpSocket,
    prefix: String,
    rate: f64,
    /// `serverType:<type>,k:v,...`
    base_tags: String,
    rng: AtomicU64,
}

impl StatsdReporter {
    /// Opens a UDP socket towards `config.statsd.host` for a server of type `server_type`.
    ///
    /// # Errors
    /// [`MetricsError::Io`] when the host does not resolve or the socket cannot be opened.
    pub fn new(server_type: &str, config: &MetricsConfig) -> Result<Self, MetricsError> {
        let target = config.statsd.host.to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "statsd host resolves to no address")
        })?;
        let local = if target.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let socket = UdpSocket::bind(local)?;
        socket.connect(target)?;
        socket.set_nonblocking(true)?;
        let mut base = BTreeMap::new();
        base.extend(config.const_labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut base_tags = format!("{}:{server_type}", label::SERVER_TYPE);
        for (k, v) in base {
            base_tags.push_str(&format!(",{k}:{v}"));
        }
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Ok(Self {
            socket,
            prefix: config.statsd.prefix.clone(),
            rate: config.statsd.rate,
            base_tags,
            rng: AtomicU64::new(seed | 1),
        })
    }

    /// Sends one line; `labels` in any order (tags come out sorted by name).
    fn send(&self, metric: &str, value: &str, kind: &str, labels: &[(&str, &str)]) {
        if self.rate < 1.0 && self.next_unit() >= self.rate {
            return;
        }
        let mut sorted = labels.to_vec();
        sorted.sort_unstable();
        let line =
            format_line(&self.prefix, metric, value, kind, self.rate, &self.base_tags, &sorted);
        if let Err(e) = self.socket.send(line.as_bytes()) {
            tracing::debug!(error = %e, metric, "statsd datagram dropped");
        }
    }

    /// A uniform number in `[0, 1)` from a xorshift64 state; sampling needs no better.
    fn next_unit(&self) -> f64 {
        let step = |mut x: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let prev = self
            .rng
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .unwrap_or(1);
        (step(prev) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Go's `strconv.FormatFloat(v, 'f', precision, 64)`; `None` is Go's `-1` (shortest).
pub(crate) fn go_fixed(v: f64, precision: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() };
    }
    match precision {
        Some(p) => format!("{v:.p$}"),
        None => format!("{v}"),
    }
}

/// One DogStatsD line. `base_tags` is already `k:v,...`; `labels` follow it in the order
/// given.
pub(crate) fn format_line(
    prefix: &str,
    metric: &str,
    value: &str,
    kind: &str,
    rate: f64,
    base_tags: &str,
    labels: &[(&str, &str)],
) -> String {
    let mut line = format!("{prefix}{metric}:{value}|{kind}");
    if rate < 1.0 {
        let _ = write!(line, "|@{rate}");
    }
    if !base_tags.is_empty() || !labels.is_empty() {
        line.push_str("|#");
        line.push_str(base_tags);
        let mut first = base_tags.is_empty();
        for (k, v) in labels {
            if !first {
                line.push(',');
            }
            first = false;
            let _ = write!(line, "{k}:{v}");
        }
    }
    line
}

/// The value as the kind's statsd line writes it, with the line's type.
fn value_and_type(kind: MetricKind, value: f64) -> (String, &'static str) {
    match kind {
        // datadog-go's `TimeInMilliseconds` writes six decimals (`'f', 6`).
        MetricKind::Summary => (go_fixed(value, Some(6)), "ms"),
        MetricKind::Histogram => (go_fixed(value, None), "h"),
        // Go: `client.Count(metric, int64(count), ...)`; `as` saturates, NaN becomes 0.
        MetricKind::Counter => ((value as i64).to_string(), "c"),
        MetricKind::Gauge => (go_fixed(value, None), "g"),
    }
}

impl Reporter for StatsdReporter {
    fn report_summary(
        &self,
        metric: &str,
        labels: &Labels,
        value: f64,
    ) -> Result<(), MetricsError> {
        self.report(MetricKind::Summary, metric, &pairs(labels), value)
    }

    fn report_histogram(
        &self,
        metric: &str,
        labels: &Labels,
        value: f64,
    ) -> Result<(), MetricsError> {
        self.report(MetricKind::Histogram, metric, &pairs(labels), value)
    }

    fn report_count(&self, metric: &str, labels: &Labels, count: f64) -> Result<(), MetricsError> {
        self.report(MetricKind::Counter, metric, &pairs(labels), count)
    }

    fn report_gauge(&self, metric: &str, labels: &Labels, value: f64) -> Result<(), MetricsError> {
        self.report(MetricKind::Gauge, metric, &pairs(labels), value)
    }

    fn report(
        &self,
        kind: MetricKind,
        metric: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) -> Result<(), MetricsError> {
        let (value, line_type) = value_and_type(kind, value);
        self.send(metric, &value, line_type, labels);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_rate_and_tags() {
        let line =
            format_line("pitaya.", "x", "1", "c", 0.5, "serverType:c", &[("a", "1"), ("b", "2")]);
        assert_eq!(line, "pitaya.x:1|c|@0.5|#serverType:c,a:1,b:2");
        assert_eq!(format_line("", "x", "1.5", "g", 1.0, "", &[]), "x:1.5|g");
        assert_eq!(go_fixed(1500.0, Some(6)), "1500.000000");
        assert_eq!(go_fixed(3.0, None), "3");
        assert_eq!(go_fixed(f64::NEG_INFINITY, None), "-Inf");
    }
}
