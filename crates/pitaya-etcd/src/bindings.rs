//! [`EtcdBindingStorage`]: which frontend holds each user, kept in etcd (spec §8.6).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp,
};
use futures_util::{StreamExt, TryStreamExt, stream};
use pitaya_cluster::{BINDING_NOT_FOUND, BindingStorage, Server};
use pitaya_config::model::EtcdBindingStorageConfig;
use pitaya_core::{BoxFuture, Error};
use tokio::sync::{Notify, RwLock};
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::lease::ttl_secs;

/// HTTP/2 ping period on the etcd connection (as the discovery's), so that a silently
/// dead connection breaks the keep-alive stream instead of hanging it.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);

/// How many bindings are put back at once after the lease was replaced.
const REPUT_CONCURRENCY: usize = 16;

/// Why a binding-storage call failed. Through [`BindingStorage`] every variant becomes a
/// `PIT-000` [`Error`] whose message is this error's text (Go returns plain errors), so
/// [`NotFound`](Self::NotFound) reads exactly [`BINDING_NOT_FOUND`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindingStorageError {
    /// No binding for this uid and frontend type.
    #[error("{}", BINDING_NOT_FOUND)]
    NotFound,
    /// The configuration cannot work (no endpoint).
    #[error("etcd binding storage: invalid configuration: {0}")]
    Config(String),
    /// A call before [`EtcdBindingStorage::start`] succeeded.
    #[error("etcd binding storage: not started")]
    NotStarted,
    /// A call after [`EtcdBindingStorage::stop`]; a stopped storage cannot start again.
    #[error("etcd binding storage: stopped")]
    Stopped,
    /// An etcd call failed.
    #[error("etcd binding storage: {op}: {source}")]
    Etcd {
        /// What was being done (`connect`, `grant lease`, `put`, `get`, `delete`, ...).
        op: &'static str,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// An etcd call did not answer within `dialtimeout`.
    #[error("etcd binding storage: {op}: timed out after {after:?}")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// The bound that elapsed.
        after: Duration,
    },
}

/// [`BindingStorage`] over etcd, sharing its keys with Go Pitaya (spec §8.6).
///
/// - Key `<prefix>bindings/<frontendType>/<uid>` (`prefix` is
///   `pitaya.modules.bindingstorage.etcd.prefix`, `pitaya/` by default, independent of
///   the discovery's), value the frontend's server id as a plain string.
/// - [`start`](Self::start) grants one lease per process with TTL `leasettl` (whole
///   seconds; 5 h, i.e. 18000 s, by default) and a background task renews it about every
///   TTL/3 until [`stop`](Self::stop). Every put carries that lease.
/// - [`put`](BindingStorage::put) writes `me`'s id under `me`'s type;
///   [`remove`](BindingStorage::remove) deletes `me`'s type's key unconditionally, even
///   when it names another frontend by now (as Go); [`frontend_of`](BindingStorage::frontend_of)
///   is a plain get.
/// - Each call is bounded by `dialtimeout` ([`BindingStorageError::Timeout`]).
///
/// When etcd loses the lease (revoked, or expired while this process could not reach
/// etcd) the task grants a new one, like Go, and then, unlike Go, puts back the bindings
/// this process made and has not removed, unless another frontend has written the key
/// meanwhile. A put that meets the lost lease waits for the new one and retries once.
///
/// Stopping does not revoke the lease (Go does not either): the keys of sessions still
/// open stay until the lease expires, up to `leasettl` later.
///
/// A call dropped midway may or may not have reached etcd; it leaves nothing half done,
/// each being one etcd request.
pub struct EtcdBindingStorage {
    config: EtcdBindingStorageConfig,
    me: Arc<Server>,
    /// Serialises `start` and `stop`.
    lifecycle: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

enum State {
    Idle,
    Running(Running),
    Stopped,
}

struct Running {
    live: Arc<Live>,
    keep_alive: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.keep_alive.abort();
    }
}

/// What the calls and the keep-alive task share while the storage runs.
struct Live {
    client: Client,
    /// The process lease. Calls hold it for reading while they talk to etcd; the
    /// keep-alive task writes it when it replaces the lease, and holds it while it puts
    /// bindings back so that no remove slips between its listing and its puts.
    lease: RwLock<i64>,
    /// Uids put and not removed since start: what is put back on a new lease.
    bound: Mutex<HashSet<String>>,
    /// Raised by a put that found the lease gone: check it now, not at the next renewal.
    lease_lost: Notify,
    /// Raised by the task when a new lease is in place.
    lease_replaced: Notify,
    ttl: i64,
    dial_timeout: Duration,
    /// `<prefix>bindings/<me.type>/`
    own_prefix: String,
    me: Arc<Server>,
}

impl EtcdBindingStorage {
    /// A storage for the server `me`, configured by `config`
    /// (`pitaya.modules.bindingstorage.etcd.*`). Does no I/O: [`start`](Self::start)
    /// connects.
    pub fn new(config: EtcdBindingStorageConfig, me: Arc<Server>) -> Self {
        Self { config, me, lifecycle: tokio::sync::Mutex::new(()), state: Mutex::new(State::Idle) }
    }

    /// Connects, grants the process lease and starts keeping it alive. Each etcd call is
    /// bounded by `dialtimeout`. Idempotent while running.
    ///
    /// # Errors
    /// [`BindingStorageError::Config`] without endpoints, [`BindingStorageError::Stopped`]
    /// after [`stop`](Self::stop), and etcd errors and timeouts; the storage stays
    /// startable after those.
    ///
    /// Cancel safe in that the storage stays idle and startable; a lease granted before
    /// the cancellation holds no key and expires unused.
    pub async fn start(&self) -> Result<(), BindingStorageError> {
        let _lifecycle = self.lifecycle.lock().await;
        match *self.lock_state() {
            State::Idle => {}
            State::Running(_) => return Ok(()),
            State::Stopped => return Err(BindingStorageError::Stopped),
        }
        if self.config.endpoints.is_empty() {
            return Err(BindingStorageError::Config("no etcd endpoint".into()));
        }
        let dial = self.config.dial_timeout;
        let options = ConnectOptions::new()
            .with_connect_timeout(dial)
            .with_keep_alive(HTTP2_PING_INTERVAL, dial)
            .with_keep_alive_while_idle(false);
        let connect = Client::connect(&self.config.endpoints, Some(options));
        let client = bounded("connect", dial, connect).await?;
        let live = Arc::new(Live {
            client,
            lease: RwLock::new(0),
            bound: Mutex::default(),
            lease_lost: Notify::new(),
            lease_replaced: Notify::new(),
            ttl: ttl_secs(self.config.lease_ttl),
            dial_timeout: dial,
            own_prefix: bindings_prefix(&self.config.prefix, &self.me.server_type),
            me: self.me.clone(),
        });
        let lease = live.grant().await?;
        let keeper = match live.open_keeper(lease).await {
            Ok(keeper) => keeper,
            Err(error) => {
                // Holds no key yet; without this it would linger for `leasettl`.
                let mut client = live.client.clone();
                let _ = bounded("revoke lease", dial, client.lease_revoke(lease)).await;
                return Err(error);
            }
        };
        *live.lease.write().await = lease;
        tracing::info!(lease = format_args!("{lease:x}"), ttl = live.ttl, "bindings: started");
        let keep_alive = tokio::spawn(keep_alive(live.clone(), keeper));
        *self.lock_state() = State::Running(Running { live, keep_alive });
        Ok(())
    }

    /// Stops renewing the lease, without revoking it (spec §8.6): keys still in etcd stay
    /// until the lease expires, `leasettl` after its last renewal. Later calls fail with
    /// [`BindingStorageError::Stopped`], so stop the storage after the sessions are
    /// closed, letting their removes through. Calls in flight finish. Idempotent.
    pub async fn stop(&self) {
        let _lifecycle = self.lifecycle.lock().await;
        let state = std::mem::replace(&mut *self.lock_state(), State::Stopped);
        if let State::Running(mut running) = state {
            running.keep_alive.abort();
            let _ = (&mut running.keep_alive).await;
            tracing::info!("bindings: stopped (lease left to expire)");
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live(&self) -> Result<Arc<Live>, BindingStorageError> {
        match &*self.lock_state() {
            State::Idle => Err(BindingStorageError::NotStarted),
            State::Running(running) => Ok(running.live.clone()),
            State::Stopped => Err(BindingStorageError::Stopped),
        }
    }

    async fn frontend_of_inner(
        &self,
        uid: &str,
        frontend_type: &str,
    ) -> Result<String, BindingStorageError> {
        let live = self.live()?;
        let key = format!("{}{uid}", bindings_prefix(&self.config.prefix, frontend_type));
        let mut kv = live.client.kv_client();
        let resp = bounded("get", live.dial_timeout, kv.get(key, None)).await?;
        let kv = resp.kvs().first().ok_or(BindingStorageError::NotFound)?;
        Ok(String::from_utf8_lossy(kv.value()).into_owned())
    }

    async fn put_inner(&self, uid: &str) -> Result<(), BindingStorageError> {
        let live = self.live()?;
        let key = live.key(uid);
        let dial = live.dial_timeout;
        let put = async {
            let mut retried = false;
            loop {
                let lease = live.lease.read().await;
                let mut kv = live.client.kv_client();
                let options = PutOptions::new().with_lease(*lease);
                match kv.put(key.as_str(), live.me.id.as_str(), Some(options)).await {
                    Ok(_) => {
                        live.lock_bound().insert(uid.to_owned());
                        return Ok(());
                    }
                    Err(source) if !retried && is_lease_not_found(&source) => {
                        tracing::warn!("bindings: etcd lost our lease, waiting for a new one");
                        let replaced = live.lease_replaced.notified();
                        tokio::pin!(replaced);
                        replaced.as_mut().enable();
                        drop(lease);
                        live.lease_lost.notify_one();
                        replaced.await;
                        retried = true;
                    }
                    Err(source) => return Err(source),
                }
            }
        };
        match tokio::time::timeout(dial, put).await {
            Ok(result) => result.map_err(|source| BindingStorageError::Etcd { op: "put", source }),
            Err(_) => Err(BindingStorageError::Timeout { op: "put", after: dial }),
        }
    }

    async fn remove_inner(&self, uid: &str) -> Result<(), BindingStorageError> {
        let live = self.live()?;
        let key = live.key(uid);
        let delete = async {
            let _lease = live.lease.read().await;
            // Forgotten first: even if the delete fails, the session is gone and its
            // binding must not be put back on a new lease.
            live.lock_bound().remove(uid);
            live.client.kv_client().delete(key, None).await
        };
        bounded("delete", live.dial_timeout, delete).await.map(drop)
    }
}

impl BindingStorage for EtcdBindingStorage {
    /// See [`BindingStorage::frontend_of`]: a plain get of
    /// `<prefix>bindings/<frontend_type>/<uid>`, bounded by `dialtimeout`.
    fn frontend_of<'a>(
        &'a self,
        uid: &'a str,
        frontend_type: &'a str,
    ) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(async move { Ok(self.frontend_of_inner(uid, frontend_type).await?) })
    }

    /// See [`BindingStorage::put`]: puts this server's id under its own type with the
    /// process lease, bounded by `dialtimeout`.
    fn put<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { Ok(self.put_inner(uid).await?) })
    }

    /// See [`BindingStorage::remove`]: deletes `<prefix>bindings/<own type>/<uid>`
    /// whatever it holds, bounded by `dialtimeout`.
    fn remove<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { Ok(self.remove_inner(uid).await?) })
    }
}

impl std::fmt::Debug for EtcdBindingStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdBindingStorage")
            .field("prefix", &self.config.prefix)
            .field("server", &self.me.id)
            .finish_non_exhaustive()
    }
}

/// `<prefix>bindings/<frontend_type>/`: plain concatenation, as Go's namespaced client.
fn bindings_prefix(prefix: &str, frontend_type: &str) -> String {
    format!("{prefix}bindings/{frontend_type}/")
}

fn is_lease_not_found(error: &etcd_client::Error) -> bool {
    // etcd: "etcdserver: requested lease not found"; the client's keep-alive: "lease not
    // found".
    error.to_string().contains("lease not found")
}

async fn bounded<T>(
    op: &'static str,
    after: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, BindingStorageError> {
    match tokio::time::timeout(after, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(BindingStorageError::Etcd { op, source }),
        Err(_) => Err(BindingStorageError::Timeout { op, after }),
    }
}

/// An open keep-alive stream on one lease.
struct Keeper {
    keeper: LeaseKeeper,
    responses: LeaseKeepAliveStream,
}

impl Live {
    fn key(&self, uid: &str) -> String {
        format!("{}{uid}", self.own_prefix)
    }

    fn lock_bound(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.bound.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn grant(&self) -> Result<i64, BindingStorageError> {
        let mut leases = self.client.lease_client();
        let grant = leases.grant(self.ttl, None);
        Ok(bounded("grant lease", self.dial_timeout, grant).await?.id())
    }

    /// Opens a keep-alive stream; the client sends the first renewal and fails with
    /// "lease not found" when etcd no longer has the lease.
    async fn open_keeper(&self, lease: i64) -> Result<Keeper, BindingStorageError> {
        let mut leases = self.client.lease_client();
        let open = leases.keep_alive(lease);
        let (keeper, responses) = bounded("keep lease alive", self.dial_timeout, open).await?;
        Ok(Keeper { keeper, responses })
    }

    async fn renew(&self, keeper: &mut Keeper) -> Result<(), BindingStorageError> {
        let op = "keep lease alive";
        keeper
            .keeper
            .keep_alive()
            .await
            .map_err(|source| BindingStorageError::Etcd { op, source })?;
        match bounded(op, self.dial_timeout, keeper.responses.message()).await? {
            Some(resp) if resp.ttl() > 0 => Ok(()),
            Some(_) => Err(BindingStorageError::Etcd {
                op,
                source: etcd_client::Error::LeaseKeepAliveError("lease not found".into()),
            }),
            None => Err(BindingStorageError::Etcd {
                op,
                source: etcd_client::Error::LeaseKeepAliveError("stream closed".into()),
            }),
        }
    }

    /// Puts back, on `lease`, every binding still held whose key is gone. A key that
    /// exists was written since by another frontend (or by us) and is left alone.
    async fn reput(&self, lease: i64) -> Result<(), BindingStorageError> {
        let uids: Vec<String> = self.lock_bound().iter().cloned().collect();
        let count = uids.len();
        stream::iter(uids)
            .map(|uid| async move {
                let key = self.key(&uid);
                let txn = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(
                        key.as_str(),
                        self.me.id.as_str(),
                        Some(PutOptions::new().with_lease(lease)),
                    )]);
                let mut kv = self.client.kv_client();
                bounded("put back", self.dial_timeout, kv.txn(txn)).await.map(drop)
            })
            .buffer_unordered(REPUT_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        tracing::info!(count, lease = format_args!("{lease:x}"), "bindings: put back on new lease");
        Ok(())
    }

    /// One recovery attempt: keeps the current lease when etcd still has it (an etcd
    /// restart keeps leases), otherwise grants a new one and puts the bindings back.
    /// `reput` stays set until putting back succeeds.
    async fn recover_once(&self, reput: &mut bool) -> Result<Keeper, BindingStorageError> {
        let current = *self.lease.read().await;
        let keeper = match self.open_keeper(current).await {
            Ok(keeper) => keeper,
            Err(BindingStorageError::Etcd { source, .. }) if is_lease_not_found(&source) => {
                let lease = self.grant().await?;
                let keeper = self.open_keeper(lease).await?;
                *self.lease.write().await = lease;
                *reput = true;
                tracing::info!(lease = format_args!("{lease:x}"), "bindings: new etcd lease");
                self.lease_replaced.notify_waiters();
                keeper
            }
            Err(error) => return Err(error),
        };
        if *reput {
            let lease = self.lease.write().await;
            self.reput(*lease).await?;
            *reput = false;
        }
        Ok(keeper)
    }
}

/// The keep-alive task: renews about every TTL/3 (as Go's client), at once when a put
/// met a lost lease, and recovers with backoff until it succeeds. Ends when aborted.
async fn keep_alive(live: Arc<Live>, mut keeper: Keeper) {
    let period = Duration::from_secs(live.ttl.unsigned_abs()) / 3;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let renewed = tokio::select! {
            () = tokio::time::sleep(period) => live.renew(&mut keeper).await,
            () = live.lease_lost.notified() => live.renew(&mut keeper).await,
        };
        let Err(error) = renewed else { continue };
        tracing::warn!(%error, "bindings: error renewing etcd lease, recovering");
        let mut reput = false;
        keeper = loop {
            match live.recover_once(&mut reput).await {
                Ok(keeper) => break keeper,
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, retry_in = ?delay, "bindings: could not recover lease");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        backoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_matches_go() {
        assert_eq!(bindings_prefix("pitaya/", "connector"), "pitaya/bindings/connector/");
        assert_eq!(bindings_prefix("pv1", "connector"), "pv1bindings/connector/");
    }

    #[test]
    fn not_found_reads_as_go() {
        assert_eq!(BindingStorageError::NotFound.to_string(), BINDING_NOT_FOUND);
        let error = Error::from(BindingStorageError::NotFound);
        assert_eq!((error.code(), error.message()), ("PIT-000", BINDING_NOT_FOUND));
    }
}
