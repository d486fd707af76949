//! Reliable RPC through Redis workers, job-compatible with Go Pitaya (spec §10).
//!
//! **Layer:** implementations (the table in `xtask/src/layers.rs`): may depend on crates of
//! the foundation, serialization, core, services and contracts layers.
//!
//! A server enqueues an RPC as a job in Redis ([`WorkerClient::reliable_rpc`], Go's
//! `ReliableRPC`); a [`Worker`] on any server takes it, decodes the argument with the
//! route's registered types ([`RpcJobs`]), chooses the server and makes the cluster RPC
//! through an [`RpcSender`] (the facade implements it for `pitaya::AppHandle`). A job
//! that fails is retried after a delay, up to its retry limit, then dropped.
//!
//! ```no_run
//! # use pitaya_worker::{RpcJobs, Worker, WorkerClient, WorkerOptions, RpcSender};
//! # #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
//! # struct Join { #[prost(string, tag = "1")] #[serde(default)] name: String }
//! # async fn demo(sender: impl RpcSender) -> Result<(), pitaya_worker::WorkerError> {
//! let opts = WorkerOptions::from_config(&pitaya_config::model::WorkerConfig::default());
//! let client = WorkerClient::new(&opts)?;
//! let arg = Join { name: "ann".into() };
//! let jid = client.reliable_rpc("room.room.join", &Default::default(), &Join::default(), &arg).await?;
//!
//! let jobs = RpcJobs::new().route::<Join, Join>("room.room.join");
//! let running = Worker::new(opts, jobs, sender).start()?;
//! // ...
//! running.stop().await;
//! # Ok(()) }
//! ```
//!
//! # Go compatibility
//! Jobs are go-workers v1.2.1 jobs, so a Go Pitaya worker runs jobs enqueued here and
//! this worker runs jobs enqueued by Go:
//! - keys `<ns>queues`, `<ns>queue:rpc`, `<ns>queue:rpc:<process>:inprogress`,
//!   `<ns>goretry`, `<ns>schedule`, `<ns>stat:{processed,failed}[:YYYY-MM-DD]`, with
//!   `<ns>` = `namespace:` or nothing;
//! - the job JSON is written field for field as Go writes it (`queue, class, args, jid,
//!   enqueued_at, retry, retry_max, retry_options, connection_options`; `args` holds
//!   `Route, Metadata, Arg, Reply`); jobs are read in any key order, with `retry` as a
//!   bool or a number (see the retry rules below);
//! - a failure sets `queue`, `error_message`, `error_class`, `retry_count` (0 the first
//!   time, with `failed_at`; then +1, with `retried_at`) and goes to `goretry` at
//!   `now + min(count^exp + min_delay + rand(max_rand)*(count+1), max_delay)` seconds
//!   while `retry_count < retry_max`; Pitaya's defaults make a job run up to 4 times,
//!   10 s apart. After the last failure the job is gone (go-workers has no dead set);
//!   every failed attempt counts in `stat:failed`;
//! - re-queued jobs are re-encoded with sorted keys, as Go re-encodes a job it holds as
//!   a map.
//!
//! # Retry rules, as go-workers v1.2.1 applies them
//! Go and Rust workers share one queue, so a job must meet the same fate whichever
//! worker takes it. These follow go-workers to the letter ([`Job::retry_limit`],
//! [`Job::retry_options`]):
//! - `retry: true` allows 25 retries; `retry: N` (Sidekiq's integer form) turns retry on
//!   with N; an integer `retry_max` then sets the number in both cases, so `retry: 5,
//!   retry_max: 2` allows 2 and an explicit `retry_max: 0` none. Pitaya leaves
//!   `retry_max` out when `pitaya.worker.retry.max` is 0 (`omitempty`), which both read
//!   back as 25.
//! - `max_delay` bounds the delay even when it is 0: `pitaya.worker.retry.maxDelay: 0`
//!   retries at the next poll. Only an absent `max_delay` means no bound.
//! - Every failure of a readable job is retried by these rules, including an argument
//!   that does not decode as the route's type, an unknown route and missing `args`
//!   (Pitaya panics on each): another server of a mixed-version cluster may know the
//!   type, and the retries are bounded anyway.
//!
//! `pitaya.worker.redis.pool` bounds the Redis connections, as in Go, but what it bounds
//! differs because commands are multiplexed here: see [`WorkerOptions::pool`].
//!
//! # Deliberate differences
//! All on the failure path, each where go-workers loses or hides a job:
//! - A job that is not JSON is dropped, logged at error level with its full text and
//!   counted in `stat:failed`. go-workers logs it and leaves it in the in-progress list
//!   for good: no worker can ever run it, it is re-read at every start and it shows in
//!   no metric. (JSON that is not an object fails in Go as well and is dropped.)
//! - Outcome, retry and acknowledgement are written in one transaction, and the poller
//!   moves a job with one script, so that no crash loses or doubles a job between two
//!   commands. go-workers acknowledges a failed job even when its `ZADD` to `goretry`
//!   failed, which loses it.
//! - A delay too large for Go's duration (about 292 years) saturates; Go's conversion
//!   wraps and retries such a job at an arbitrary time, often at once. A fractional
//!   `max_rand` below 1 counts as 0 (Go panics in its retry handler and loses the job).
//!
//! # The argument contract
//! `args.Arg` and `args.Reply` are Go `encoding/json` of the generated protobuf structs:
//! keys are proto field names, zero values left out (`omitempty`), int64 are numbers,
//! bytes base64, enums numbers, nested messages objects. A Rust type for a route is a
//! prost message with serde derives that follow those rules: serde names equal to the
//! proto field names, `#[serde(default)]` on every field (Go omits zero values) and,
//! to write jobs a Go worker reads byte for byte, `skip_serializing_if` on zero values
//! and a base64 `with` module on `bytes` fields. The worker reads `Arg` with
//! `Deserialize`, encodes it with prost and sends those bytes; the reply's bytes must
//! decode as the route's reply type.
//!
//! # Delivery
//! At least once: a job taken by a worker that dies before recording the outcome stays
//! in that process's in-progress list and runs again when a worker with the same
//! process id (the host name by default) starts.
//!
//! # Layout
//! | module | what |
//! |---|---|
//! | `client` | [`WorkerClient`]: enqueue, stats |
//! | `worker` | [`Worker`], [`RunningWorker`]: fetch, run, retry, poll, metrics |
//! | `registry` | [`RpcJobs`] and [`RpcSender`]: per-route types, server choice, the RPC |
//! | `job` | the job JSON, retry rules and delay |
//! | `keys` | Redis key names |
//! | `options` | [`WorkerOptions`] from `pitaya.worker.*` |
//! | `conn` | the pool of lazily opened, reconnecting Redis connections (`pool`) |

mod client;
mod clock;
mod conn;
mod error;
pub mod job;
pub mod keys;
mod options;
mod registry;
mod worker;

pub use client::{Stats, WorkerClient};
pub use error::WorkerError;
pub use job::{Job, RetryOptions, RetryPolicy, RpcCall};
pub use options::WorkerOptions;
pub use registry::{PrepareError, PreparedCall, RpcJobs, RpcSender, ServerChoice};
pub use worker::{POOL_LABEL, RunningWorker, Worker};
