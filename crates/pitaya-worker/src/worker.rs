//! [`Worker`]: takes RPC jobs from Redis and runs them through the cluster (Go's
//! `StartWorker` with `RegisterRPCJob`).
//!
//! Tasks: one fetcher (recovers this process's in-progress jobs, then `BRPOPLPUSH`es
//! new ones, only while a slot of `concurrency` is free), one task per running job, the
//! poller (due retries and scheduled jobs back to their queue) and, with a reporter, the
//! metrics task.

use std::sync::Arc;
use std::time::Duration;

use pitaya_core::Context;
use pitaya_metrics::Reporter;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::client::{Stats, WorkerClient};
use crate::conn::Conn;
use crate::error::WorkerError;
use crate::job::{Job, RpcCall};
use crate::keys::{Keys, RPC_QUEUE};
use crate::options::WorkerOptions;
use crate::registry::{RpcJobs, RpcSender};

/// Most jobs one poll moves per sorted set, so that one poll stays bounded.
const MAX_MOVES_PER_POLL: usize = 10_000;
/// Pause after a failed Redis call before the next one (Go: 1 s).
const REDIS_BACKOFF: Duration = Duration::from_secs(1);
/// The metrics `pool` label of the worker's own slots.
pub const POOL_LABEL: &str = "worker";

/// Moves a job from a sorted set to its queue only if this poller removed it, so that
/// several pollers never enqueue one job twice, and never lose it in between.
const MOVE_SCRIPT: &str = "if redis.call('zrem', KEYS[1], ARGV[1]) == 1 then \
    redis.call('lpush', KEYS[2], ARGV[2]) return 1 end return 0";

/// A worker, ready to start.
pub struct Worker {
    opts: WorkerOptions,
    jobs: RpcJobs,
    sender: Arc<dyn RpcSender>,
    reporter: Option<Arc<dyn Reporter>>,
}

/// A started worker; [`RunningWorker::stop`] stops it and waits for running jobs.
/// Dropping it instead stops fetching and polling soon, without waiting.
pub struct RunningWorker {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    opts: WorkerOptions,
    keys: Keys,
    jobs: RpcJobs,
    sender: Arc<dyn RpcSender>,
    /// Short commands: acknowledgements, stats, the poller; `pool` connections at most.
    conn: Arc<Conn>,
    /// Only the blocking fetch, which would hold up a multiplexed connection.
    fetch_conn: Conn,
    slots: Arc<Semaphore>,
    stats: WorkerClient,
    stopping: watch::Receiver<bool>,
}

impl Worker {
    /// A worker running `jobs` with `sender`.
    pub fn new(opts: WorkerOptions, jobs: RpcJobs, sender: impl RpcSender) -> Self {
        Self { opts, jobs, sender: Arc::new(sender), reporter: None }
    }

    /// Reports `worker_jobs_total`, `worker_jobs_retry_total`, `worker_queue_size`,
    /// `busy_workers` and `total_workers` (pool `worker`) every `metrics_period`.
    #[must_use]
    pub fn reporter(mut self, reporter: Arc<dyn Reporter>) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Starts the tasks on the current tokio runtime. Redis need not be up: the worker
    /// retries every second until it is.
    ///
    /// # Errors
    /// [`WorkerError::Address`] for an unusable Redis address.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self) -> Result<RunningWorker, WorkerError> {
        let Worker { mut opts, jobs, sender, reporter } = self;
        opts.concurrency = opts.concurrency.max(1);
        let (stop, stopping) = watch::channel(false);
        let conn = Arc::new(Conn::new(&opts)?);
        let shared = Arc::new(Shared {
            keys: Keys::new(&opts.namespace),
            stats: WorkerClient::with_conn(conn.clone(), &opts),
            conn,
            fetch_conn: Conn::with_size(&opts, 1)?,
            slots: Arc::new(Semaphore::new(opts.concurrency)),
            jobs,
            sender,
            stopping,
            opts,
        });
        let mut tasks =
            vec![tokio::spawn(fetch_loop(shared.clone())), tokio::spawn(poll_loop(shared.clone()))];
        if let Some(r) = reporter {
            tasks.push(tokio::spawn(metrics_loop(shared.clone(), r)));
        }
        tracing::info!(process = %shared.opts.process_id, concurrency = shared.opts.concurrency, "rpc worker started");
        Ok(RunningWorker { shared, stop, tasks })
    }
}

impl RunningWorker {
    /// Jobs running now.
    pub fn busy(&self) -> usize {
        self.shared.opts.concurrency - self.shared.slots.available_permits()
    }

    /// The counters kept in Redis.
    ///
    /// # Errors
    /// When Redis does not answer.
    pub async fn stats(&self) -> Result<Stats, WorkerError> {
        self.shared.stats.stats().await
    }

    /// Stops fetching, lets the running jobs finish and records their outcome, then
    /// stops the poller. A job whose outcome cannot be written (Redis away) stays in the
    /// in-progress list and runs again at the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let all = u32::try_from(self.shared.opts.concurrency).unwrap_or(u32::MAX);
        // Every running job holds a slot: having them all means none is left.
        let _ = self.shared.slots.acquire_many(all).await;
        for t in self.tasks {
            let _ = t.await;
        }
        tracing::info!(process = %self.shared.opts.process_id, "rpc worker stopped");
    }
}

impl Shared {
    fn stopped(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Sleeps `d`; `true` when the worker is stopping (sooner).
    async fn pause(&self, d: Duration) -> bool {
        let mut stopping = self.stopping.clone();
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => true,
            () = tokio::time::sleep(d) => self.stopped(),
        }
    }

    fn in_progress(&self) -> String {
        self.keys.in_progress(RPC_QUEUE, &self.opts.process_id)
    }
}

async fn fetch_loop(shared: Arc<Shared>) {
    let in_progress = shared.in_progress();
    // Spec §10: jobs this process took and never finished (it was killed) run first.
    let old: Vec<String> = loop {
        let key = in_progress.clone();
        match shared
            .conn
            .run(|mut c| async move {
                redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query_async(&mut c).await
            })
            .await
        {
            Ok(old) => break old,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the in-progress jobs");
                if shared.pause(REDIS_BACKOFF).await {
                    return;
                }
            }
        }
    };
    if !old.is_empty() {
        tracing::info!(count = old.len(), "recovering in-progress jobs");
    }
    for raw in old {
        let Ok(slot) = shared.slots.clone().acquire_owned().await else { return };
        if shared.stopped() {
            return;
        }
        let s = shared.clone();
        tokio::spawn(async move {
            process(&s, raw).await;
            drop(slot);
        });
    }

    let queue = shared.keys.queue(RPC_QUEUE);
    let mut stopping = shared.stopping.clone();
    while !shared.stopped() {
        let slot = tokio::select! {
            slot = shared.slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
            _ = stopping.wait_for(|s| *s) => return,
        };
        // Not raced with the stop signal: a fetch cancelled after Redis moved the job
        // would strand it in the in-progress list until the next start.
        let (src, dst) = (queue.clone(), in_progress.clone());
        let fetched: Result<Option<String>, WorkerError> = shared
            .fetch_conn
            .run(|mut c| async move {
                redis::cmd("BRPOPLPUSH").arg(src).arg(dst).arg(1).query_async(&mut c).await
            })
            .await;
        match fetched {
            Ok(Some(raw)) => {
                let s = shared.clone();
                tokio::spawn(async move {
                    process(&s, raw).await;
                    drop(slot);
                });
            }
            Ok(None) => drop(slot),
            Err(e) => {
                drop(slot);
                tracing::warn!(error = %e, "cannot fetch jobs");
                if shared.pause(REDIS_BACKOFF).await {
                    return;
                }
            }
        }
    }
}

/// Runs one job and records the outcome.
async fn process(shared: &Arc<Shared>, raw: String) {
    let job = match Job::parse(raw.clone()) {
        Ok(job) => job,
        Err(e) => {
            // Not a JSON object: no worker, Go or Rust, can ever run it. go-workers leaves
            // text that is not JSON in the in-progress list for good (re-read at every
            // start, seen by nobody); it is dropped here, logged whole and counted in
            // `stat:failed`, so that it shows in the failed-jobs metric. (JSON that is not
            // an object fails in Go too, with no retry, and is dropped the same way.)
            tracing::error!(error = %e, job = %raw, "dropping an unreadable job");
            finish(shared, &raw, Outcome::Failed(None)).await;
            return;
        }
    };
    let jid = job.jid().to_owned();
    // Every failure of a readable job follows the job's retry rules, as in go-workers
    // (Pitaya panics on any error and the retry middleware catches it): an argument that
    // does not decode here may decode on another server of a mixed-version cluster, and
    // a Go and a Rust worker sharing the queue must give a job the same fate.
    let (route, attempt) = match job.rpc_call() {
        Ok(call) => {
            let route = call.route.clone();
            let s = shared.clone();
            // A separate task, so that a panic in user code fails the job (as in Go)
            // instead of losing the slot.
            let result = match tokio::spawn(async move { run(&s, call).await }).await {
                Ok(result) => result,
                Err(e) => Err(format!("job panicked: {e}")),
            };
            (route, result)
        }
        Err(e) => (String::new(), Err(e)),
    };
    let error = match attempt {
        Ok(()) => {
            tracing::debug!(%jid, "rpc job done");
            finish(shared, &raw, Outcome::Processed).await;
            return;
        }
        Err(error) => error,
    };
    if !job.retries_left() {
        tracing::error!(%jid, %route, %error, "rpc job failed with no retries left; dropping it");
        finish(shared, &raw, Outcome::Failed(None)).await;
        return;
    }
    let mut job = job;
    let now = crate::clock::now_secs();
    let count = job.mark_failed(RPC_QUEUE, &error, now);
    let opts = job.retry_options();
    let rand = match opts.max_rand {
        0 => 0,
        n => pitaya_core::context::random_u64() % n,
    };
    let delay = opts.delay(count, rand);
    tracing::warn!(%jid, %route, retry_count = count, delay_s = delay, %error, "rpc job failed, will retry");
    #[expect(clippy::cast_precision_loss, reason = "delays are far below 2^52 s")]
    let at = now + delay as f64;
    match job.to_json() {
        Ok(json) => finish(shared, &raw, Outcome::Failed(Some((at, json)))).await,
        Err(e) => {
            tracing::error!(%jid, error = %e, "cannot encode the job for retry; dropping it");
            finish(shared, &raw, Outcome::Failed(None)).await;
        }
    }
}

/// One attempt: decode, choose the server, call, check the reply. The error is the
/// job's `error_message`.
async fn run(shared: &Shared, call: RpcCall) -> Result<(), String> {
    let prepared =
        shared.jobs.prepare(&call.route, &call.metadata, &call.arg).map_err(|e| e.to_string())?;
    let ctx = Context::new();
    let reply = shared
        .sender
        .rpc(&ctx, prepared.server_id.as_deref(), &call.route, prepared.data)
        .await
        .map_err(|e| format!("rpc failed: {e}"))?;
    shared
        .jobs
        .check_reply(&call.route, &reply)
        .map_err(|e| format!("cannot decode the reply: {e}"))
}

enum Outcome {
    Processed,
    /// With the retry score and the updated job when it is retried.
    Failed(Option<(f64, Vec<u8>)>),
}

/// Counts the outcome, schedules the retry and removes the job from the in-progress
/// list, in one transaction so that a crash in between neither loses nor doubles it.
/// Retried until Redis takes it or the worker stops.
async fn finish(shared: &Shared, raw: &str, outcome: Outcome) {
    let day = crate::clock::day(crate::clock::now_secs());
    let metric = match outcome {
        Outcome::Processed => "processed",
        Outcome::Failed(_) => "failed",
    };
    let mut pipe = redis::pipe();
    pipe.atomic()
        .incr(shared.keys.stat(metric), 1)
        .ignore()
        .incr(shared.keys.stat_day(metric, &day), 1)
        .ignore();
    if let Outcome::Failed(Some((at, json))) = &outcome {
        pipe.zadd(shared.keys.retry(), json.as_slice(), *at).ignore();
    }
    pipe.lrem(shared.in_progress(), -1, raw).ignore();
    loop {
        let p = pipe.clone();
        match shared.conn.run(|mut c| async move { p.query_async::<()>(&mut c).await }).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a job's outcome; trying again");
                if shared.pause(REDIS_BACKOFF).await {
                    tracing::warn!(
                        "worker stopping: the job stays in progress and runs again at the next start"
                    );
                    return;
                }
            }
        }
    }
}

async fn poll_loop(shared: Arc<Shared>) {
    loop {
        for key in [shared.keys.retry(), shared.keys.schedule()] {
            if let Err(e) = move_due(&shared, &key).await {
                tracing::warn!(error = %e, key = %key, "cannot move due jobs");
            }
        }
        if shared.pause(shared.opts.poll_interval).await {
            return;
        }
    }
}

/// Moves the due jobs of sorted set `key` back to their queues, with a fresh
/// `enqueued_at` (go-workers' poller).
async fn move_due(shared: &Shared, key: &str) -> Result<(), WorkerError> {
    for _ in 0..MAX_MOVES_PER_POLL {
        let now = crate::clock::now_secs();
        let k = key.to_owned();
        let due: Vec<String> = shared
            .conn
            .run(|mut c| async move {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(k)
                    .arg("-inf")
                    .arg(now)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let Some(member) = due.into_iter().next() else { return Ok(()) };
        let (queue, json) = match Job::parse(member.clone()) {
            Ok(mut job) => {
                job.set_enqueued_at(now);
                (job.queue(shared.keys.prefix()), job.to_json()?)
            }
            Err(e) => {
                tracing::error!(error = %e, job = %member, "dropping an unreadable scheduled job");
                let k = key.to_owned();
                shared
                    .conn
                    .run(|mut c| async move {
                        redis::cmd("ZREM").arg(k).arg(member).query_async::<()>(&mut c).await
                    })
                    .await?;
                continue;
            }
        };
        let (k, dst) = (key.to_owned(), shared.keys.queue(&queue));
        let queues = shared.keys.queues();
        shared
            .conn
            .run(|mut c| async move {
                redis::cmd("SADD").arg(queues).arg(&queue).query_async::<()>(&mut c).await?;
                redis::cmd("EVAL")
                    .arg(MOVE_SCRIPT)
                    .arg(2)
                    .arg(k)
                    .arg(dst)
                    .arg(member)
                    .arg(json)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
    }
    Ok(())
}

async fn metrics_loop(shared: Arc<Shared>, reporter: Arc<dyn Reporter>) {
    use pitaya_metrics::{MetricKind, names};
    loop {
        if shared.pause(shared.opts.metrics_period).await {
            return;
        }
        let report = |metric: &str, labels: &[(&str, &str)], value: f64| {
            if let Err(e) = reporter.report(MetricKind::Gauge, metric, labels, value) {
                tracing::debug!(metric, error = %e, "cannot report a worker metric");
            }
        };
        let total = shared.opts.concurrency;
        let busy = total - shared.slots.available_permits();
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        {
            report(names::WORKER_POOL_BUSY_WORKERS, &[("pool", POOL_LABEL)], busy as f64);
            report(names::WORKER_POOL_TOTAL_WORKERS, &[("pool", POOL_LABEL)], total as f64);
        }
        match shared.stats.stats().await {
            Ok(stats) => {
                #[expect(clippy::cast_precision_loss, reason = "counters far below 2^52")]
                {
                    report(names::WORKER_JOBS_RETRY, &[], stats.retries as f64);
                    report(names::WORKER_JOBS_TOTAL, &[("status", "ok")], stats.processed as f64);
                    report(names::WORKER_JOBS_TOTAL, &[("status", "failed")], stats.failed as f64);
                    for (queue, len) in &stats.enqueued {
                        report(names::WORKER_QUEUE_SIZE, &[("queue", queue)], *len as f64);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot read worker stats"),
        }
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("opts", &self.opts).field("jobs", &self.jobs).finish()
    }
}

impl std::fmt::Debug for RunningWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningWorker")
            .field("process_id", &self.shared.opts.process_id)
            .field("busy", &self.busy())
            .finish()
    }
}
