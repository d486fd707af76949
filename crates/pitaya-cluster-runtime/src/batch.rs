//! Pushes to many users in one message per frontend (`sys.pushbatch`), between
//! pitaya-rs servers only.
//!
//! Go's path (spec §8.4) sends one message per uid: over NATS a publish on the user's
//! subject, over gRPC a binding lookup and a call each. When every frontend of the wanted
//! type is a pitaya-rs server, a push to many uids instead goes as one User RPC
//! `sys.pushbatch` to each frontend of the type, which pushes to the uids it holds and
//! says which it reached. Whether a frontend serves `sys.pushbatch` is asked once per
//! server with an empty batch: a Go frontend answers `PIT-404` (no such remote), and as
//! long as one frontend of the type does not serve it, pushes to that type take Go's
//! path for every uid, so nobody gets a push twice.
//!
//! Wire form (protobuf, only between pitaya-rs servers): the argument is `PushBatch`
//! (`route` = 1, `uids` = 2, `data` = 3), the reply `PushBatchReply` (`delivered` = 1,
//! `failed` = 2).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pitaya_cluster::Server;
use pitaya_core::{Context, Error, codes};
use prost::Message;

use crate::runtime::ClusterRuntime;

/// The route frontends serve batched pushes on (a `sys` remote, like Go's own).
pub(crate) const ROUTE: &str = "sys.pushbatch";

/// The argument of `sys.pushbatch`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PushBatch {
    /// The push route.
    #[prost(string, tag = "1")]
    pub(crate) route: String,
    /// The users to push to; the receiver pushes to those it holds.
    #[prost(string, repeated, tag = "2")]
    pub(crate) uids: Vec<String>,
    /// The payload, serialized by the sender.
    #[prost(bytes = "bytes", tag = "3")]
    pub(crate) data: Bytes,
}

/// The reply of `sys.pushbatch`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PushBatchReply {
    /// Users held by the receiver whose push was queued.
    #[prost(string, repeated, tag = "1")]
    pub(crate) delivered: Vec<String>,
    /// Users held by the receiver whose push failed (connection closing).
    #[prost(string, repeated, tag = "2")]
    pub(crate) failed: Vec<String>,
}

/// How many frontends' answers are remembered at most.
const MAX_KNOWN: usize = 1024;
/// How long a frontend that did not answer the question is taken as not serving batched
/// pushes before it is asked again: a silent frontend must not delay every push.
const UNSURE_FOR: Duration = Duration::from_secs(30);
/// How long the question may take.
const ASK_TIMEOUT: &str = "2s";

/// Which frontends serve `sys.pushbatch`, by server id, as they answered: `true` or
/// `false` for good, or, when the question got no answer, `false` until a moment passes.
#[derive(Default)]
pub(crate) struct Capable(Mutex<HashMap<String, (bool, Option<Instant>)>>);

impl Capable {
    fn get(&self, id: &str) -> Option<bool> {
        let known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match known.get(id) {
            Some((capable, None)) => Some(*capable),
            Some((capable, Some(until))) if Instant::now() < *until => Some(*capable),
            _ => None,
        }
    }

    /// Remembers the answer; `for_a_while` for a guess made without one.
    fn set(&self, id: &str, capable: bool, for_a_while: bool) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Servers come and go; forgetting them all now and then bounds the table, and
        // each live one is asked again once.
        if known.len() >= MAX_KNOWN {
            known.clear();
        }
        let until = for_a_while.then(|| Instant::now() + UNSURE_FOR);
        known.insert(id.to_owned(), (capable, until));
    }
}

impl ClusterRuntime {
    /// Pushes `data` to `uids` on the frontends of `frontend_type` other than this
    /// server with one `sys.pushbatch` each, when every one of them serves it (asked once
    /// per server) and that takes fewer messages than Go's path; `None` otherwise, and the
    /// caller takes Go's path. Returns the uids that failed: those a frontend failed to
    /// push to, and, when a frontend could not be asked, those no frontend reached.
    pub(crate) async fn push_batched(
        &self,
        route: &str,
        data: &Bytes,
        uids: &[String],
        frontend_type: &str,
    ) -> Option<Vec<String>> {
        let fronts: Vec<Arc<Server>> = self
            .discovery
            .servers_by_type(frontend_type)
            .into_iter()
            .filter(|s| s.id != self.me.id)
            .collect();
        if !self.push_batch || fronts.is_empty() || uids.len() <= fronts.len() {
            return None;
        }
        for front in &fronts {
            if !self.serves_batches(front).await {
                return None;
            }
        }
        let batch = PushBatch { route: route.to_owned(), uids: uids.to_vec(), data: data.clone() };
        let arg = Bytes::from(batch.encode_to_vec());
        let calls = fronts.iter().map(|front| self.call_batch(front, Context::new(), arg.clone()));
        let replies = futures_util::future::join_all(calls).await;
        let mut failed: HashSet<String> = HashSet::new();
        let mut delivered: HashSet<String> = HashSet::new();
        let mut unsure = false;
        for reply in replies {
            match reply {
                Ok(r) => {
                    failed.extend(r.failed);
                    delivered.extend(r.delivered);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "batched push to a frontend failed");
                    unsure = true;
                }
            }
        }
        // As Go's NATS path, a user nobody holds is not a failure; but when a frontend
        // could not be asked, the users nobody reached may have been there.
        Some(
            uids.iter()
                .filter(|u| failed.contains(*u) || (unsure && !delivered.contains(*u)))
                .cloned()
                .collect(),
        )
    }

    /// Whether `front` serves `sys.pushbatch`: asked with an empty batch the first time
    /// and remembered. No answer within 2 s (or a transport error) counts as "no" for a
    /// while, so that a silent frontend delays pushes to its type once per 30 s at most.
    async fn serves_batches(&self, front: &Server) -> bool {
        if let Some(known) = self.capable.get(&front.id) {
            return known;
        }
        let mut ctx = Context::new();
        ctx.insert(pitaya_core::context::REQ_TIMEOUT, ASK_TIMEOUT);
        let empty = PushBatch::default().encode_to_vec();
        match self.call_batch(front, ctx, empty.into()).await {
            Ok(_) => {
                self.capable.set(&front.id, true, false);
                true
            }
            Err(e) if e.code() == codes::NOT_FOUND => {
                tracing::debug!(server = %front.id, "frontend serves no batched pushes: Go's path for its type");
                self.capable.set(&front.id, false, false);
                false
            }
            Err(e) => {
                tracing::debug!(server = %front.id, error = %e, "cannot tell whether a frontend serves batched pushes");
                self.capable.set(&front.id, false, true);
                false
            }
        }
    }

    async fn call_batch(
        &self,
        front: &Server,
        ctx: Context,
        arg: Bytes,
    ) -> Result<PushBatchReply, Error> {
        let reply = self.user_rpc(front, ctx, ROUTE.to_owned(), arg).await?;
        PushBatchReply::decode(reply).map_err(|e| Error::unknown(format!("bad {ROUTE} reply: {e}")))
    }

    /// Serves `sys.pushbatch`: pushes to the batch's users this server holds, all at once.
    pub(crate) async fn sys_push_batch(&self, arg: Bytes) -> Result<Bytes, Error> {
        let batch = PushBatch::decode(arg).map_err(|e| Error::bad_request(e.to_string()))?;
        let held = if self.me.frontend {
            self.pool.by_uids(batch.uids.iter().map(String::as_str)).1
        } else {
            Vec::new()
        };
        // Encoded once per wire variant and queued on every connection without waiting,
        // as a local broadcast is: a member whose queue is full does not hold up the others.
        let push = pitaya_session::SharedPush::new(&batch.route, batch.data.clone());
        let local: Vec<_> = batch
            .uids
            .iter()
            .map(String::as_str)
            .zip(&held)
            .filter_map(|(uid, s)| s.as_ref().map(|s| (uid, Some(s))))
            .collect();
        let failed = pitaya_session::fan_out(local.iter().copied(), &push).await;
        let failed_set: std::collections::HashSet<&str> =
            failed.iter().map(String::as_str).collect();
        let delivered = local
            .iter()
            .filter(|(uid, _)| !failed_set.contains(uid))
            .map(|(uid, _)| (*uid).to_owned())
            .collect();
        let reply = PushBatchReply { delivered, failed };
        Ok(reply.encode_to_vec().into())
    }
}
