//! [`Runner`]: starts the bots with their ramp-up, waits for them, builds the [`Report`].

use std::sync::Arc;
use std::time::Duration;

use pitaya_client::{ClientError, ClientOptions, Endpoint, ResumeOptions, TlsOptions};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::bot::{self, Env};
use crate::progress::Progress;
use crate::report::Report;
use crate::spec::Spec;
use crate::stats::Stats;

/// How to run a spec, beyond the spec itself.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Server address; overrides the spec's `address`.
    pub address: Option<String>,
    /// TLS settings, required for `tls://` and `wss://` addresses.
    pub tls: Option<TlsOptions>,
    /// Draw the live progress line on stderr.
    pub progress: bool,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Neither the spec nor the options give an address.
    #[error("no server address: set `address` in the spec or pass one")]
    NoAddress,
    /// The address does not parse.
    #[error(transparent)]
    Address(ClientError),
    /// A `tls://` or `wss://` address without TLS settings.
    #[error("{0} needs TLS settings (a trusted certificate, or insecure mode)")]
    NoTls(String),
}

/// Asks a running [`Runner`] to stop: bots finish their current step, skip the rest of
/// the loop, run their teardown and disconnect. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl StopHandle {
    /// Requests the stop; idempotent.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// A spec ready to run.
#[derive(Debug)]
pub struct Runner {
    spec: Arc<Spec>,
    address: String,
    options: RunOptions,
    stop: StopHandle,
}

impl Runner {
    /// Checks the address and TLS settings.
    ///
    /// # Errors
    /// [`RunError`].
    pub fn new(spec: Spec, options: RunOptions) -> Result<Self, RunError> {
        let address =
            options.address.clone().or_else(|| spec.address.clone()).ok_or(RunError::NoAddress)?;
        let endpoint = address.parse::<Endpoint>().map_err(RunError::Address)?;
        if endpoint.tls && options.tls.is_none() {
            return Err(RunError::NoTls(address));
        }
        let (tx, _) = watch::channel(false);
        Ok(Self { spec: Arc::new(spec), address, options, stop: StopHandle(Arc::new(tx)) })
    }

    /// A handle to stop the run early (e.g. on Ctrl-C).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Runs every bot to its end and reports.
    ///
    /// Bot `i` of `n` waits `ramp_up * i / n`, connects, runs `setup`, loops over `steps`
    /// (`iterations` times, until `duration` has passed since the start, or once), runs
    /// `teardown` and closes. Each bot is one task; requests are pipelined only inside
    /// `parallel` steps. The run ends when every bot has; steps are bounded by their
    /// timeouts, so a stop or the duration limit takes effect within one step.
    pub async fn run(self) -> Report {
        let spec = self.spec.clone();
        let stats = Arc::new(Stats::default());
        let started = Instant::now();
        let client = ClientOptions {
            request_timeout: spec.request_timeout,
            connect_timeout: spec.connect_timeout,
            tls: self.options.tls.clone(),
            resume: spec.resume.then(ResumeOptions::default),
            ..ClientOptions::default()
        };
        let env = Arc::new(Env {
            spec: spec.clone(),
            stats: stats.clone(),
            address: self.address.clone(),
            client,
            deadline: spec.duration.map(|d| started + d),
        });
        let progress = self.options.progress.then(|| Progress::start(stats.clone(), spec.bots));
        let mut bots = JoinSet::new();
        for id in 0..spec.bots {
            let env = env.clone();
            let mut stop = self.stop.0.subscribe();
            let delay = ramp_delay(spec.ramp_up, id, spec.bots);
            bots.spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|stopped| *stopped) => return,
                }
                if env.deadline.is_some_and(|d| Instant::now() >= d) {
                    return;
                }
                bot::run(id, env, stop).await;
            });
        }
        while let Some(joined) = bots.join_next().await {
            if let Err(e) = joined {
                // A panicking bot is a bug of ours; the others' figures still stand.
                if e.is_panic() {
                    stats.bot_stopped_early();
                }
            }
        }
        if let Some(p) = progress {
            p.finish().await;
        }
        let elapsed = started.elapsed();
        let inner = stats.lock();
        Report::build(spec.name.clone(), self.address, spec.bots, elapsed, &inner)
    }
}

/// Runs `spec` with `options`: [`Runner::new`] then [`Runner::run`].
///
/// # Errors
/// [`RunError`] when the run cannot start.
pub async fn run(spec: Spec, options: RunOptions) -> Result<Report, RunError> {
    Ok(Runner::new(spec, options)?.run().await)
}

fn ramp_delay(ramp_up: Duration, id: usize, bots: usize) -> Duration {
    let (id, bots) =
        (u32::try_from(id).unwrap_or(u32::MAX), u32::try_from(bots).unwrap_or(u32::MAX));
    ramp_up.checked_mul(id).map(|d| d / bots.max(1)).unwrap_or(ramp_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramp_up_spreads_starts_evenly() {
        let r = Duration::from_secs(1);
        assert_eq!(ramp_delay(r, 0, 4), Duration::ZERO);
        assert_eq!(ramp_delay(r, 2, 4), Duration::from_millis(500));
        assert_eq!(ramp_delay(r, 3, 4), Duration::from_millis(750));
        assert_eq!(ramp_delay(Duration::ZERO, 3, 4), Duration::ZERO);
    }

    #[test]
    fn tls_addresses_need_tls_settings() {
        let spec = Spec::from_yaml("steps: [{request: a}]").unwrap();
        let opts = |a: &str| RunOptions { address: Some(a.into()), ..RunOptions::default() };
        assert!(matches!(Runner::new(spec.clone(), opts("wss://h/")), Err(RunError::NoTls(_))));
        assert!(matches!(Runner::new(spec.clone(), opts("ftp://h:1")), Err(RunError::Address(_))));
        assert!(matches!(
            Runner::new(spec.clone(), RunOptions::default()),
            Err(RunError::NoAddress)
        ));
        assert!(Runner::new(spec, opts("ws://127.0.0.1:1/")).is_ok());
    }
}
