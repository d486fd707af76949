//! The worker against a real redis-server and a real two-server cluster in one process
//! (`MemoryCluster` through the facade): a `connector` server runs the worker, a `room`
//! server serves the remote the jobs call.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use pitaya::cluster::memory::MemoryCluster;
use pitaya::metrics::{Labels, MetricsError, Reporter};
use pitaya::worker::{RpcJobs, RunningWorker, Worker, WorkerClient, WorkerOptions};
use pitaya::{Error, Pitaya, RemoteComponent, RemoteRequest, RunningApp};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const ROUTE: &str = "room.room.join";

/// Argument of `room.room.join`, serialized as Go's `encoding/json` writes the
/// generated struct (proto names, zero values left out, int64 as a number).
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
struct JoinArg {
    #[prost(string, tag = "1")]
    #[serde(default, skip_serializing_if = "String::is_empty")]
    name: String,
    #[prost(int64, tag = "2")]
    #[serde(default, skip_serializing_if = "is_zero")]
    score: i64,
}

#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
struct JoinReply {
    #[prost(string, tag = "1")]
    #[serde(default, skip_serializing_if = "String::is_empty")]
    msg: String,
}

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's signature")]
fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Calls the remote received: when, with what, on which server.
type Calls = Arc<Mutex<Vec<(Instant, JoinArg)>>>;

struct Cluster {
    room: RunningApp,
    connector: RunningApp,
    calls: Calls,
}

/// Two servers; the remote fails its first `fail_first` calls, or every call when
/// `fail_first` is `usize::MAX`.
async fn cluster(fail_first: usize) -> Result<Cluster> {
    let mc = MemoryCluster::new();
    let calls: Calls = Arc::default();
    let failures = Arc::new(AtomicUsize::new(fail_first));
    let seen = calls.clone();
    let remote =
        RemoteComponent::new("room").remote("join", move |_r: RemoteRequest, arg: JoinArg| {
            let seen = seen.clone();
            let failures = failures.clone();
            async move {
                seen.lock().expect("lock").push((Instant::now(), arg.clone()));
                let left = failures.load(Ordering::SeqCst);
                if left > 0 {
                    if left != usize::MAX {
                        failures.store(left - 1, Ordering::SeqCst);
                    }
                    return Err(Error::new("PIT-500", "planned failure"));
                }
                Ok(JoinReply { msg: format!("joined {}", arg.name) })
            }
        });
    let room = Pitaya::builder()
        .server_type("room")
        .frontend(false)
        .remote(remote)
        .memory_cluster(&mc)
        .build()
        .map_err(pe)?
        .start()
        .await
        .map_err(pe)?;
    let connector = Pitaya::builder()
        .server_type("connector")
        .frontend(false)
        .memory_cluster(&mc)
        .build()
        .map_err(pe)?
        .start()
        .await
        .map_err(pe)?;
    Ok(Cluster { room, connector, calls })
}

/// `pitaya::Error` is not a std error (it is boxed like tonic's `Status`).
fn pe(e: Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

impl Cluster {
    fn calls(&self) -> Vec<(Instant, JoinArg)> {
        self.calls.lock().expect("lock").clone()
    }

    fn worker(&self, opts: WorkerOptions) -> Result<RunningWorker> {
        let jobs =
            RpcJobs::new().route::<JoinArg, JoinReply>(ROUTE).server_choice(|_route, meta| {
                Ok(meta.get("server").and_then(Value::as_str).map(str::to_owned))
            });
        Ok(Worker::new(opts, jobs, self.connector.handle().clone()).start()?)
    }

    async fn shutdown(self) {
        self.connector.shutdown().await;
        self.room.shutdown().await;
    }
}

/// Options on `url` under a namespace of its own, with 1 s retry delays and a 100 ms
/// poll so that retries happen within the test.
fn options(url: &str, name: &str) -> WorkerOptions {
    let mut config = pitaya::config::model::WorkerConfig::default();
    config.redis.server_url = url.to_owned();
    config.namespace = format!("wtest{}{}-{name}", std::process::id(), unique());
    config.retry.min_delay = 1;
    config.retry.max_delay = 1;
    let mut opts = WorkerOptions::from_config(&config);
    opts.process_id = format!("proc-{name}");
    opts.poll_interval = Duration::from_millis(100);
    opts.metrics_period = Duration::from_millis(100);
    opts.command_timeout = Duration::from_secs(2);
    opts
}

fn unique() -> u64 {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst) as u64
}

fn prefix(opts: &WorkerOptions) -> String {
    format!("{}:", opts.namespace)
}

async fn redis_conn(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    Ok(redis::Client::open(url)?.get_multiplexed_async_connection().await?)
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn arg(name: &str, score: i64) -> JoinArg {
    JoinArg { name: name.to_owned(), score }
}

async fn stat(c: &mut redis::aio::MultiplexedConnection, key: &str) -> u64 {
    c.get::<_, Option<u64>>(key).await.ok().flatten().unwrap_or(0)
}

#[derive(Default)]
struct Gauges(Mutex<BTreeMap<(String, Labels), f64>>);

fn unknown(name: &str) -> MetricsError {
    MetricsError::UnknownMetric {
        kind: pitaya::metrics::MetricKind::Summary,
        name: name.to_owned(),
    }
}

impl Reporter for Gauges {
    fn report_summary(&self, m: &str, _: &Labels, _: f64) -> Result<(), MetricsError> {
        Err(unknown(m))
    }
    fn report_histogram(&self, m: &str, _: &Labels, _: f64) -> Result<(), MetricsError> {
        Err(unknown(m))
    }
    fn report_count(&self, m: &str, _: &Labels, _: f64) -> Result<(), MetricsError> {
        Err(unknown(m))
    }
    fn report_gauge(&self, m: &str, labels: &Labels, v: f64) -> Result<(), MetricsError> {
        self.0.lock().expect("lock").insert((m.to_owned(), labels.clone()), v);
        Ok(())
    }
}

impl Gauges {
    fn get(&self, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: Labels =
            labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        self.0.lock().expect("lock").get(&(metric.to_owned(), labels)).copied()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_job_has_go_layout_and_runs_on_the_other_server() -> Result<()> {
    let url = pitaya_test_services::shared_redis_url();
    let cluster = cluster(0).await?;
    let mut opts = options(&url, "layout");
    opts.concurrency = 2;
    let ns = prefix(&opts);
    let client = WorkerClient::new(&opts)?;
    let room_id = cluster.room.handle().server().context("cluster mode")?.id.clone();
    let mut meta = Map::new();
    meta.insert("server".into(), Value::from(room_id.clone()));
    meta.insert("a<b".into(), Value::from(1));

    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
    let jid = client
        .reliable_rpc(ROUTE, &meta, &JoinReply::default(), &arg("ann", 1_234_567_890_123))
        .await?;
    let mut redis = redis_conn(&url).await?;
    let queued: Vec<String> = redis.lrange(format!("{ns}queue:rpc"), 0, -1).await?;
    assert_eq!(queued.len(), 1);
    let job = &queued[0];
    // enqueued_at is the only part not known in advance: take its text, check it.
    let at_text = job
        .split_once(r#""enqueued_at":"#)
        .and_then(|(_, rest)| rest.split_once(','))
        .map(|(at, _)| at)
        .context("enqueued_at")?;
    let at: f64 = at_text.parse()?;
    assert!(at_text.contains('.') && at >= before - 1.0 && at < before + 60.0, "{at_text}");
    assert_eq!(jid.len(), 24);
    assert!(jid.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{jid}");
    let expected = format!(
        concat!(
            r#"{{"queue":"rpc","class":"","args":{{"Route":"room.room.join","#,
            r#""Metadata":{{"a\u003cb":1,"server":"{room}"}},"#,
            r#""Arg":{{"name":"ann","score":1234567890123}},"Reply":{{}}}},"#,
            r#""jid":"{jid}","enqueued_at":{at},"retry":true,"retry_max":2,"#,
            r#""retry_options":{{"exp":5,"min_delay":1,"max_delay":1,"max_rand":0}},"#,
            r#""connection_options":{{"Address":"","Password":"","Database":"","ProcessID":"","#,
            r#""Namespace":"","PoolSize":0,"PoolInterval":0,"DialOptions":null}}}}"#
        ),
        room = room_id,
        jid = jid,
        at = at_text
    );
    assert_eq!(job, &expected);
    let queues: Vec<String> = redis.smembers(format!("{ns}queues")).await?;
    assert_eq!(queues, vec!["rpc".to_owned()]);

    client.reliable_rpc(ROUTE, &meta, &JoinReply::default(), &arg("bob", 2)).await?;
    client.reliable_rpc(ROUTE, &Map::new(), &JoinReply::default(), &arg("cid", 0)).await?;

    let gauges = Arc::new(Gauges::default());
    let jobs = RpcJobs::new().route::<JoinArg, JoinReply>(ROUTE).server_choice(|_route, meta| {
        Ok(meta.get("server").and_then(Value::as_str).map(str::to_owned))
    });
    let worker = Worker::new(opts, jobs, cluster.connector.handle().clone())
        .reporter(gauges.clone())
        .start()?;
    let calls = eventually("three calls", Duration::from_secs(10), || {
        let calls = cluster.calls();
        async move { (calls.len() == 3).then_some(calls) }
    })
    .await?;
    let mut names: Vec<(String, i64)> = calls.into_iter().map(|(_, a)| (a.name, a.score)).collect();
    names.sort();
    assert_eq!(names, [("ann".into(), 1_234_567_890_123), ("bob".into(), 2), ("cid".into(), 0)]);

    eventually("stat:processed = 3", Duration::from_secs(5), || {
        let mut r = redis.clone();
        let key = format!("{ns}stat:processed");
        async move { (stat(&mut r, &key).await == 3).then_some(()) }
    })
    .await?;
    let stats = worker.stats().await?;
    assert_eq!((stats.processed, stats.failed, stats.retries), (3, 0, 0));
    assert_eq!(stats.enqueued.get("rpc"), Some(&0));
    let in_progress: u64 = redis.llen(format!("{ns}queue:rpc:proc-layout:inprogress")).await?;
    assert_eq!(in_progress, 0);
    let day_keys: Vec<String> = redis.keys(format!("{ns}stat:processed:*")).await?;
    assert_eq!(day_keys.len(), 1);
    assert_eq!(day_keys[0].len(), format!("{ns}stat:processed:YYYY-MM-DD").len());

    eventually("worker gauges", Duration::from_secs(5), || {
        let g = gauges.clone();
        async move {
            let ok = g.get("worker_jobs_total", &[("status", "ok")])? == 3.0
                && g.get("worker_jobs_total", &[("status", "failed")])? == 0.0
                && g.get("total_workers", &[("pool", "worker")])? == 2.0
                && g.get("worker_queue_size", &[("queue", "rpc")])? == 0.0
                && g.get("worker_jobs_retry_total", &[])? == 0.0
                && g.get("busy_workers", &[("pool", "worker")]).is_some();
            ok.then_some(())
        }
    })
    .await?;

    worker.stop().await;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_job_is_retried_after_the_delay_then_succeeds() -> Result<()> {
    let url = pitaya_test_services::shared_redis_url();
    let cluster = cluster(2).await?;
    let opts = options(&url, "retry");
    let ns = prefix(&opts);
    let client = WorkerClient::new(&opts)?;
    let worker = cluster.worker(opts)?;
    client.reliable_rpc(ROUTE, &Map::new(), &JoinReply::default(), &arg("ann", 0)).await?;

    let calls = eventually("three attempts", Duration::from_secs(15), || {
        let calls = cluster.calls();
        async move { (calls.len() >= 3).then_some(calls) }
    })
    .await?;
    // Retry delay is min(count^5 + 1, 1) = 1 s for both retries.
    for pair in calls.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(gap >= Duration::from_millis(950), "retry came after {gap:?}");
    }
    let mut redis = redis_conn(&url).await?;
    eventually("stat:processed = 1", Duration::from_secs(5), || {
        let mut r = redis.clone();
        let key = format!("{ns}stat:processed");
        async move { (stat(&mut r, &key).await == 1).then_some(()) }
    })
    .await?;
    assert_eq!(stat(&mut redis, &format!("{ns}stat:failed")).await, 2);
    // No fourth attempt: the job is done.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(cluster.calls().len(), 3);
    let retries: u64 = redis.zcard(format!("{ns}goretry")).await?;
    assert_eq!(retries, 0);

    worker.stop().await;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_is_dropped_after_its_last_retry() -> Result<()> {
    let url = pitaya_test_services::shared_redis_url();
    let cluster = cluster(usize::MAX).await?;
    let mut opts = options(&url, "giveup");
    opts.retry.max = 1;
    let ns = prefix(&opts);
    let client = WorkerClient::new(&opts)?;
    let worker = cluster.worker(opts)?;
    let jid =
        client.reliable_rpc(ROUTE, &Map::new(), &JoinReply::default(), &arg("ann", 0)).await?;

    // After the first failure the job waits in goretry with go-workers' failure fields.
    let mut redis = redis_conn(&url).await?;
    let retried: String = eventually("job in goretry", Duration::from_secs(5), || {
        let mut r = redis.clone();
        let key = format!("{ns}goretry");
        async move { r.zrange::<_, Vec<String>>(key, 0, 0).await.ok()?.into_iter().next() }
    })
    .await?;
    let job: Value = serde_json::from_str(&retried)?;
    assert_eq!(job["jid"], jid.as_str());
    assert_eq!(job["retry_count"], 0);
    assert_eq!(job["queue"], "rpc");
    assert_eq!(job["error_class"], "");
    assert!(job["error_message"].as_str().unwrap_or_default().contains("planned failure"), "{job}");
    let failed_at = job["failed_at"].as_str().unwrap_or_default();
    assert!(failed_at.len() == 23 && failed_at.ends_with(" UTC"), "{failed_at}");
    // Keys sorted, as Go re-encodes a job map.
    let keys: Vec<&String> = job.as_object().context("object")?.keys().collect();
    let positions: Vec<usize> =
        keys.iter().filter_map(|k| retried.find(&format!("\"{k}\":"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{retried}");

    // Runs: first, retry 0, retry 1; then 1 < 1 is false and the job is gone.
    eventually("stat:failed = 3", Duration::from_secs(15), || {
        let mut r = redis.clone();
        let key = format!("{ns}stat:failed");
        async move { (stat(&mut r, &key).await == 3).then_some(()) }
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(cluster.calls().len(), 3);
    let retries: u64 = redis.zcard(format!("{ns}goretry")).await?;
    let queued: u64 = redis.llen(format!("{ns}queue:rpc")).await?;
    let in_progress: u64 = redis.llen(format!("{ns}queue:rpc:proc-giveup:inprogress")).await?;
    assert_eq!((retries, queued, in_progress), (0, 0, 0));
    assert_eq!(stat(&mut redis, &format!("{ns}stat:failed")).await, 3);
    assert_eq!(stat(&mut redis, &format!("{ns}stat:processed")).await, 0);

    worker.stop().await;
    cluster.shutdown().await;
    Ok(())
}

/// A job as a Go Pitaya server writes it (from spec §10), with `retry` as a number.
fn go_job(ns_free_arg: &str) -> String {
    job_with(ns_free_arg, r#""retry":2"#, 1)
}

/// A job in go-workers' layout with its own retry fields (the text between
/// `enqueued_at` and `retry_options`) and `max_delay` (`min_delay` is 10 s, so a job
/// that waits for it does not retry within a test).
fn job_with(arg: &str, retry: &str, max_delay: u32) -> String {
    format!(
        concat!(
            r#"{{"queue":"rpc","class":"","args":{{"Route":"room.room.join","Metadata":null,"#,
            r#""Arg":{arg},"Reply":{{}}}},"jid":"a1b2c3d4e5f60718293a4b5c","#,
            r#""enqueued_at":1718000000.123456,{retry},"#,
            r#""retry_options":{{"exp":5,"min_delay":10,"max_delay":{max},"max_rand":0}},"#,
            r#""connection_options":{{"Address":"","Password":"","Database":"","ProcessID":"","#,
            r#""Namespace":"","PoolSize":0,"PoolInterval":0,"DialOptions":null}}}}"#
        ),
        arg = arg,
        retry = retry,
        max = max_delay,
    )
}

/// Waits until `stat:failed` reaches `n`, then a few more polls, and checks it stayed.
async fn settle_failed(url: &str, ns: &str, n: u64) -> Result<()> {
    let redis = redis_conn(url).await?;
    let key = format!("{ns}stat:failed");
    eventually(&format!("stat:failed = {n}"), Duration::from_secs(10), || {
        let (mut r, key) = (redis.clone(), key.clone());
        async move { (stat(&mut r, &key).await >= n).then_some(()) }
    })
    .await?;
    // The poll runs every 100 ms: a further retry would show within this.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(stat(&mut redis.clone(), &key).await, n, "{key}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_written_job_runs_a_bad_argument_is_retried_and_non_json_is_dropped() -> Result<()> {
    let url = pitaya_test_services::shared_redis_url();
    let cluster = cluster(0).await?;
    let opts = options(&url, "gojob");
    let ns = prefix(&opts);
    let client = WorkerClient::new(&opts)?;
    client.enqueue_raw("rpc", go_job(r#"{"name":"gopher","score":7}"#).into_bytes()).await?;
    // As in go-workers, an argument that does not decode follows the retry rules:
    // retry 2 gives 1 + 3 attempts (max_delay 0: each retry at the next poll).
    client.enqueue_raw("rpc", job_with(r#"{"name":5}"#, r#""retry":2"#, 0).into_bytes()).await?;
    // Deliberately unlike go-workers, text that is not JSON is dropped and counted.
    client.enqueue_raw("rpc", b"not json".to_vec()).await?;
    let worker = cluster.worker(opts)?;

    settle_failed(&url, &ns, 5).await?;
    let mut redis = redis_conn(&url).await?;
    assert_eq!(stat(&mut redis, &format!("{ns}stat:processed")).await, 1);
    let calls = cluster.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, arg("gopher", 7));
    let retries: u64 = redis.zcard(format!("{ns}goretry")).await?;
    let queued: u64 = redis.llen(format!("{ns}queue:rpc")).await?;
    let in_progress: u64 = redis.llen(format!("{ns}queue:rpc:proc-gojob:inprogress")).await?;
    assert_eq!((retries, queued, in_progress), (0, 0, 0));

    worker.stop().await;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_delay_zero_retries_at_the_next_poll() -> Result<()> {
    let url = pitaya_test_services::shared_redis_url();
    let cluster = cluster(1).await?;
    let mut opts = options(&url, "maxdelay0");
    // go-workers bounds the delay by max_delay even when it is 0; were 0 "no bound",
    // the retry would wait min_delay, 10 s.
    opts.retry.min_delay = 10;
    opts.retry.max_delay = 0;
    let client = WorkerClient::new(&opts)?;
    let worker = cluster.worker(opts)?;
    client.reliable_rpc(ROUTE, &Map::new(), &JoinReply::default(), &arg("ann", 0)).await?;

    let calls = eventually("the retry", Duration::from_secs(5), || {
        let calls = cluster.calls();
        async move { (calls.len() == 2).then_some(calls) }
    })
    .await?;
    assert_eq!(calls[1].1, arg("ann", 0));

    worker.stop().await;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_retry_max_wins_zero_included() -> Result<()> {
    let url = pitaya_test_services::shared_redis_url();
    let cluster = cluster(usize::MAX).await?;
    let opts = options(&url, "retrymax");
    let ns = prefix(&opts);
    let client = WorkerClient::new(&opts)?;
    // retry_max 0 written out: no retry at all (only an absent retry_max gives 25).
    let none = job_with(r#"{"name":"zero"}"#, r#""retry":true,"retry_max":0"#, 0);
    // The Sidekiq form `retry: 5` turns retry on, and retry_max 1 sets the limit.
    let one = job_with(r#"{"name":"five"}"#, r#""retry":5,"retry_max":1"#, 0);
    client.enqueue_raw("rpc", none.into_bytes()).await?;
    client.enqueue_raw("rpc", one.into_bytes()).await?;
    let worker = cluster.worker(opts)?;

    // zero: 1 attempt; five: first, retry 0, retry 1 (then 1 < 1 is false).
    settle_failed(&url, &ns, 4).await?;
    let mut counts = BTreeMap::<String, usize>::new();
    for (_, a) in cluster.calls() {
        *counts.entry(a.name).or_default() += 1;
    }
    assert_eq!(counts, BTreeMap::from([("five".to_owned(), 3), ("zero".to_owned(), 1)]));
    let mut redis = redis_conn(&url).await?;
    let retries: u64 = redis.zcard(format!("{ns}goretry")).await?;
    assert_eq!(retries, 0);

    worker.stop().await;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_left_in_progress_run_at_start_up() -> Result<()> {
    let url = pitaya_test_services::shared_redis_url();
    let cluster = cluster(0).await?;
    let opts = options(&url, "recover");
    let ns = prefix(&opts);
    let mut redis = redis_conn(&url).await?;
    // As if a worker of this host was killed mid-job, and one of another host too.
    let mine = format!("{ns}queue:rpc:proc-recover:inprogress");
    let theirs = format!("{ns}queue:rpc:other-host:inprogress");
    let _: () = redis.lpush(&mine, go_job(r#"{"name":"left"}"#)).await?;
    let _: () = redis.lpush(&theirs, go_job(r#"{"name":"theirs"}"#)).await?;
    let worker = cluster.worker(opts)?;

    let calls = eventually("the recovered job", Duration::from_secs(10), || {
        let calls = cluster.calls();
        async move { (!calls.is_empty()).then_some(calls) }
    })
    .await?;
    assert_eq!(calls[0].1, arg("left", 0));
    eventually("in-progress list emptied", Duration::from_secs(5), || {
        let mut r = redis.clone();
        let key = mine.clone();
        async move { (r.llen::<_, u64>(key).await.ok()? == 0).then_some(()) }
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.calls().len(), 1, "another host's jobs are left alone");
    let theirs_left: u64 = redis.llen(&theirs).await?;
    assert_eq!(theirs_left, 1);

    worker.stop().await;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_fails_while_redis_is_down_and_the_worker_carries_on() -> Result<()> {
    let mut server = pitaya_test_services::Redis::start();
    let url = server.url();
    let cluster = cluster(0).await?;
    let opts = options(&url, "restart");
    let client = WorkerClient::new(&opts)?;
    let worker = cluster.worker(opts)?;
    client.reliable_rpc(ROUTE, &Map::new(), &JoinReply::default(), &arg("before", 0)).await?;
    eventually("first job", Duration::from_secs(10), || {
        let n = cluster.calls().len();
        async move { (n == 1).then_some(()) }
    })
    .await?;

    server.stop();
    let down =
        client.reliable_rpc(ROUTE, &Map::new(), &JoinReply::default(), &arg("lost", 0)).await;
    assert!(down.is_err(), "enqueue while redis is down must fail, got {down:?}");

    server.restart();
    // The client reconnects on its own; a call may still see the old connection fail.
    let mut enqueued = None;
    for _ in 0..40 {
        match client.reliable_rpc(ROUTE, &Map::new(), &JoinReply::default(), &arg("after", 0)).await
        {
            Ok(jid) => {
                enqueued = Some(jid);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    assert!(enqueued.is_some(), "enqueue did not recover after the restart");
    let calls = eventually("job after the restart", Duration::from_secs(15), || {
        let calls = cluster.calls();
        async move { (calls.len() == 2).then_some(calls) }
    })
    .await?;
    assert_eq!(calls[1].1, arg("after", 0));

    worker.stop().await;
    cluster.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_job_runs_once_due() -> Result<()> {
    let url = pitaya_test_services::shared_redis_url();
    let cluster = cluster(0).await?;
    let opts = options(&url, "schedule");
    let ns = prefix(&opts);
    let mut redis = redis_conn(&url).await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs_f64();
    let _: () =
        redis.zadd(format!("{ns}schedule"), go_job(r#"{"name":"later"}"#), now + 1.0).await?;
    let worker = cluster.worker(opts)?;

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(cluster.calls().is_empty(), "a job scheduled 1 s ahead ran early");
    let calls = eventually("the scheduled job", Duration::from_secs(10), || {
        let calls = cluster.calls();
        async move { (!calls.is_empty()).then_some(calls) }
    })
    .await?;
    assert_eq!(calls[0].1, arg("later", 0));
    let left: u64 = redis.zcard(format!("{ns}schedule")).await?;
    assert_eq!(left, 0);

    worker.stop().await;
    cluster.shutdown().await;
    Ok(())
}

/// Connections open on the Redis at `observer` (the observer's own included).
async fn connections(observer: &mut redis::aio::MultiplexedConnection) -> usize {
    let list: String =
        redis::cmd("CLIENT").arg("LIST").query_async(observer).await.unwrap_or_default();
    list.lines().filter(|l| !l.trim().is_empty()).count()
}

/// Waits until `connections` is `n`, then checks it stays there a little longer.
async fn expect_connections(
    observer: &redis::aio::MultiplexedConnection,
    n: usize,
    what: &str,
) -> Result<()> {
    let got = eventually(what, Duration::from_secs(5), || {
        let mut o = observer.clone();
        async move { (connections(&mut o).await == n).then_some(()) }
    })
    .await;
    let now = connections(&mut observer.clone()).await;
    got.with_context(|| format!("{what}: {now} connections, expected {n}"))?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections(&mut observer.clone()).await, n, "{what}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pool_bounds_the_connections_opened() -> Result<()> {
    // A Redis of its own: every connection on it is this test's.
    let server = pitaya_test_services::Redis::start();
    let url = server.url();
    let observer = redis_conn(&url).await?;
    expect_connections(&observer, 1, "the observer alone").await?;
    let job = || go_job(r#"{"name":"pooled"}"#).into_bytes();

    // Five calls at once on a pool of 3: three connections, no more.
    let mut opts = options(&url, "pool3");
    opts.pool = 3;
    let busy = WorkerClient::new(&opts)?;
    let (a, b, c, d, e) = tokio::join!(
        busy.enqueue_raw("rpc", job()),
        busy.enqueue_raw("rpc", job()),
        busy.enqueue_raw("rpc", job()),
        busy.enqueue_raw("rpc", job()),
        busy.enqueue_raw("rpc", job()),
    );
    for r in [a, b, c, d, e] {
        r?;
    }
    expect_connections(&observer, 1 + 3, "a pool of 3 under load").await?;

    // One call at a time needs one connection, whatever the size.
    let quiet = WorkerClient::new(&opts)?;
    for _ in 0..5 {
        quiet.enqueue_raw("rpc", job()).await?;
    }
    expect_connections(&observer, 1 + 3 + 1, "a pool of 3, one call at a time").await?;

    // 0 counts as 1, as in go-workers.
    opts.pool = 0;
    let zero = WorkerClient::new(&opts)?;
    let (a, b, c) = tokio::join!(
        zero.enqueue_raw("rpc", job()),
        zero.enqueue_raw("rpc", job()),
        zero.enqueue_raw("rpc", job()),
    );
    for r in [a, b, c] {
        r?;
    }
    expect_connections(&observer, 1 + 3 + 1 + 1, "a pool of 0").await?;

    // A worker with pool 1 and 4 jobs at a time: one connection for its commands (stats
    // included) and one for the blocking fetch.
    let cluster = cluster(0).await?;
    let mut opts = options(&url, "poolworker");
    opts.pool = 1;
    opts.concurrency = 4;
    let ns = prefix(&opts);
    let enqueue = WorkerClient::new(&opts)?;
    for i in 0..8 {
        enqueue.reliable_rpc(ROUTE, &Map::new(), &JoinReply::default(), &arg("w", i)).await?;
    }
    expect_connections(&observer, 1 + 3 + 1 + 1 + 1, "the enqueueing client").await?;
    let worker = cluster.worker(opts)?;
    eventually("8 jobs processed", Duration::from_secs(10), || {
        let mut r = observer.clone();
        let key = format!("{ns}stat:processed");
        async move { (stat(&mut r, &key).await == 8).then_some(()) }
    })
    .await?;
    worker.stats().await?;
    expect_connections(&observer, 1 + 3 + 1 + 1 + 1 + 2, "a worker with pool 1").await?;

    worker.stop().await;
    cluster.shutdown().await;
    drop(server);
    Ok(())
}
