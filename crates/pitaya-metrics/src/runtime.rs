//! [`spawn_runtime_reporter`]: Go's `ReportSysMetrics` for a tokio process.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::{Labels, Reporter, names};

/// The periodic task of [`spawn_runtime_reporter`]. Dropping it (or [`Self::stop`]) ends
/// the task; nothing is reported after that.
#[derive(Debug)]
pub struct RuntimeReporter {
    task: JoinHandle<()>,
}

impl RuntimeReporter {
    /// Stops reporting (same as dropping).
    pub fn stop(self) {}
}

impl Drop for RuntimeReporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every `period` (first report at once), reports the gauges
/// [`names::GOROUTINES`] = live tokio tasks of the current runtime and, on Linux,
/// [`names::HEAP_SIZE`] = resident memory in bytes (`VmRSS` of `/proc/self/status`; not
/// reported where it cannot be read). [`names::HEAP_OBJECTS`] has no tokio equivalent and is
/// not published. Report errors are traced at debug level and do not stop the task.
///
/// Must be called inside a tokio runtime. A zero `period` is raised to one millisecond.
pub fn spawn_runtime_reporter(reporter: Arc<dyn Reporter>, period: Duration) -> RuntimeReporter {
    let period = period.max(Duration::from_millis(1));
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let none = Labels::new();
        loop {
            tick.tick().await;
            let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
            let mut results = vec![reporter.report_gauge(names::GOROUTINES, &none, tasks as f64)];
            if let Some(rss) = resident_bytes() {
                results.push(reporter.report_gauge(names::HEAP_SIZE, &none, rss as f64));
            }
            for e in results.into_iter().filter_map(Result::err) {
                tracing::debug!(error = %e, "runtime metrics report failed");
            }
        }
    });
    RuntimeReporter { task }
}

/// Resident set size in bytes from `/proc/self/status` (`VmRSS: <n> kB`), which gives the
/// same number as `statm`'s resident pages × page size without needing the page size.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 =
        line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}
