//! [`WorkerClient`]: enqueues reliable RPCs (Go's `ReliableRPC`) and reads the stats.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::conn::Conn;
use crate::error::WorkerError;
use crate::job::{RetryPolicy, encode_new_job, new_jid};
use crate::keys::{Keys, RPC_QUEUE};
use crate::options::WorkerOptions;

/// Enqueues jobs. Cheap to clone; keep one in the builder's state for handlers.
#[derive(Clone)]
pub struct WorkerClient(Arc<ClientInner>);

struct ClientInner {
    conn: Arc<Conn>,
    keys: Keys,
    retry: RetryPolicy,
}

/// Worker counters as go-workers keeps them in Redis.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// `stat:processed`: attempts that succeeded.
    pub processed: u64,
    /// `stat:failed`: attempts that failed (each failed attempt of a retried job counts).
    pub failed: u64,
    /// Jobs waiting in `goretry`.
    pub retries: u64,
    /// Length of each known queue (members of `queues`).
    pub enqueued: BTreeMap<String, u64>,
}

impl WorkerClient {
    /// A client for `opts`; no connection is opened until the first call, and at most
    /// `opts.pool` are opened, more only while calls overlap (see
    /// [`WorkerOptions::pool`]).
    ///
    /// # Errors
    /// [`WorkerError::Address`] when `opts.server_url` is not a Redis address.
    pub fn new(opts: &WorkerOptions) -> Result<Self, WorkerError> {
        Ok(Self::with_conn(Arc::new(Conn::new(opts)?), opts))
    }

    /// A client on an existing pool (the worker's own, for its stats).
    pub(crate) fn with_conn(conn: Arc<Conn>, opts: &WorkerOptions) -> Self {
        Self(Arc::new(ClientInner { conn, keys: Keys::new(&opts.namespace), retry: opts.retry }))
    }

    /// Enqueues a call of `route` with the configured retry policy and returns its jid
    /// (Go's `ReliableRPC(route, metadata, reply, arg)`).
    ///
    /// `arg` and `reply` are written with their serde `Serialize` in the job's `Arg` and
    /// `Reply`; for a Go worker to read them they must serialize as Go's
    /// `encoding/json` of the protobuf structs (see the crate docs). `metadata` goes to
    /// the server choice of whichever worker runs the job.
    ///
    /// # Errors
    /// [`WorkerError::Redis`] or [`WorkerError::Timeout`] when Redis does not take the
    /// job (it is then not enqueued); [`WorkerError::Encode`] when a value cannot be JSON.
    pub async fn reliable_rpc<A: Serialize, R: Serialize>(
        &self,
        route: &str,
        metadata: &Map<String, Value>,
        reply: &R,
        arg: &A,
    ) -> Result<String, WorkerError> {
        self.reliable_rpc_with_options(route, metadata, reply, arg, &self.0.retry).await
    }

    /// As [`reliable_rpc`](Self::reliable_rpc) with its own retry policy (Go's
    /// `ReliableRPCWithOptions`).
    ///
    /// # Errors
    /// As [`reliable_rpc`](Self::reliable_rpc).
    pub async fn reliable_rpc_with_options<A: Serialize, R: Serialize>(
        &self,
        route: &str,
        metadata: &Map<String, Value>,
        reply: &R,
        arg: &A,
        retry: &RetryPolicy,
    ) -> Result<String, WorkerError> {
        let arg = serde_json::to_value(arg)?;
        let reply = serde_json::to_value(reply)?;
        let jid = new_jid();
        let job =
            encode_new_job(&jid, crate::clock::now_secs(), route, metadata, &arg, &reply, retry)?;
        self.enqueue_raw(RPC_QUEUE, job).await?;
        Ok(jid)
    }

    /// Puts an already encoded job on `queue` (`SADD queues`, `LPUSH queue:<queue>` in
    /// one transaction), e.g. one written by Go.
    ///
    /// # Errors
    /// As [`reliable_rpc`](Self::reliable_rpc).
    pub async fn enqueue_raw(&self, queue: &str, job: Vec<u8>) -> Result<(), WorkerError> {
        let keys = &self.0.keys;
        let (queues, list) = (keys.queues(), keys.queue(queue));
        self.0
            .conn
            .run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .sadd(queues, queue)
                    .ignore()
                    .lpush(list, job)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// Reads the counters.
    ///
    /// # Errors
    /// As [`reliable_rpc`](Self::reliable_rpc).
    pub async fn stats(&self) -> Result<Stats, WorkerError> {
        let keys = self.0.keys.clone();
        self.0
            .conn
            .run(|mut c| async move {
                let (processed, failed, retries, queues): (
                    Option<u64>,
                    Option<u64>,
                    u64,
                    Vec<String>,
                ) = redis::pipe()
                    .get(keys.stat("processed"))
                    .get(keys.stat("failed"))
                    .zcard(keys.retry())
                    .smembers(keys.queues())
                    .query_async(&mut c)
                    .await?;
                let mut enqueued = BTreeMap::new();
                for q in queues {
                    let len: u64 =
                        redis::cmd("LLEN").arg(keys.queue(&q)).query_async(&mut c).await?;
                    enqueued.insert(q, len);
                }
                Ok(Stats {
                    processed: processed.unwrap_or(0),
                    failed: failed.unwrap_or(0),
                    retries,
                    enqueued,
                })
            })
            .await
    }
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerClient").field("keys", &self.0.keys).finish()
    }
}
