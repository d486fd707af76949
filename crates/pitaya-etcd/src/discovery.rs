//! [`EtcdServiceDiscovery`]: the public handle, its lifecycle and its lookups.

use std::sync::Arc;

use etcd_client::{Client, GetOptions};
use pitaya_cluster::{DieSignal, SdListener, Server, ServiceDiscovery};
use pitaya_config::model::EtcdSdConfig;
use pitaya_core::{BoxFuture, Error};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::SdError;
use crate::shared::{Shared, connect};
use crate::{lease, sync, watch};

/// The key Go's `IsConnected` reads. Any answer, even "no such key", proves etcd serves
/// reads; the key is never written.
const HEALTH_CHECK_KEY: &str = "health-check";

/// [`ServiceDiscovery`] over etcd, sharing one cluster with Go Pitaya servers (spec §5).
///
/// [`start`](ServiceDiscovery::start) registers this server under
/// `<prefix>servers/<type>/<id>` on a lease of `heartbeat.ttl`, lists the cluster and
/// watches it. Two background tasks then run until [`stop`](ServiceDiscovery::stop):
/// one keeps the lease alive and registers again when it is lost (raising the
/// [`DieSignal`] when that fails `grantlease.maxretries` times), the other applies
/// etcd's events, syncs every `syncservers.interval` and re-creates a broken watch.
/// Both back off while etcd is unreachable.
///
/// Lookups read an in-memory view and never wait on etcd. This server is in the view,
/// and listeners are told about it, from a successful `start()` until `stop()`.
///
/// A discovery starts once: `start()` after `stop()` fails with [`SdError::Stopped`].
/// Dropping it without `stop()` aborts its tasks without revoking the lease, so peers
/// see this server leave only when the lease expires.
pub struct EtcdServiceDiscovery {
    shared: Arc<Shared>,
    run: Mutex<Run>,
}

enum Run {
    Idle,
    // Boxed: the etcd client alone is a few KiB.
    Running(Box<Running>),
    Stopped,
}

struct Running {
    client: Client,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

impl EtcdServiceDiscovery {
    /// A discovery for `server` configured by `config`
    /// (`pitaya.cluster.sd.etcd.*`). Does not connect: [`start`](ServiceDiscovery::start)
    /// does. `die` is raised when the registration is lost for good.
    pub fn new(config: EtcdSdConfig, server: Server, die: DieSignal) -> Self {
        Self { shared: Arc::new(Shared::new(config, server, die)), run: Mutex::new(Run::Idle) }
    }

    /// The etcd key this server is registered under: `<prefix>servers/<type>/<id>`.
    pub fn key(&self) -> &str {
        &self.shared.own_key
    }

    /// Whether etcd serves reads right now (Go's `IsConnected`): a Get of the key
    /// `health-check` (outside the prefix, as Go reads it) with limit 1 must answer,
    /// whatever it finds, within `revoke.timeout` (5 s by default, the bound Go uses).
    ///
    /// `false` when etcd errors or is too slow, and before [`start`](ServiceDiscovery::start)
    /// or after [`stop`](ServiceDiscovery::stop) (Go also answers `false` without a
    /// client). Never waits longer than `revoke.timeout`; cancel safe.
    pub async fn is_connected(&self) -> bool {
        let timeout = self.shared.config.revoke.timeout;
        let check = async {
            // Cloned out (a cheap handle on the same channel) so that the lock is not
            // held across the call: start and stop wait on it.
            let mut client = match &*self.run.lock().await {
                Run::Running(running) => running.client.clone(),
                Run::Idle | Run::Stopped => return false,
            };
            let options = GetOptions::new().with_limit(1);
            match client.get(HEALTH_CHECK_KEY, Some(options)).await {
                Ok(_) => true,
                Err(error) => {
                    tracing::debug!(%error, "sd: etcd health check failed");
                    false
                }
            }
        };
        tokio::time::timeout(timeout, check).await.unwrap_or_else(|_| {
            tracing::debug!(?timeout, "sd: etcd health check timed out");
            false
        })
    }

    async fn start_inner(&self) -> Result<(), SdError> {
        let mut run = self.run.lock().await;
        match *run {
            Run::Idle => {}
            Run::Running(_) => return Ok(()),
            Run::Stopped => return Err(SdError::Stopped),
        }
        let shared = &self.shared;
        shared.validate()?;
        let mut client = connect(&shared.config).await?;
        match bootstrap(shared, &mut client).await {
            Ok((registration, stream, revision)) => {
                let cancel = CancellationToken::new();
                let mut tasks = JoinSet::new();
                let keeper = lease::keep_registered(shared.clone(), client.clone(), registration);
                let watcher =
                    watch::watch_servers(shared.clone(), client.clone(), stream, revision);
                for task in [Box::pin(keeper) as BoxFuture<'static, ()>, Box::pin(watcher)] {
                    let cancel = cancel.clone();
                    tasks.spawn(async move {
                        cancel.run_until_cancelled(task).await;
                    });
                }
                *run = Run::Running(Box::new(Running { client, cancel, tasks }));
                tracing::info!(key = %shared.own_key, "sd: registered in etcd");
                Ok(())
            }
            Err(error) => {
                lease::revoke_all(shared, &client).await;
                // Nothing will keep the view up to date: empty it, telling listeners.
                for id in shared.view.ids() {
                    shared.view.remove(&id);
                }
                Err(error)
            }
        }
    }

    async fn stop_inner(&self) {
        let mut run = self.run.lock().await;
        let Run::Running(mut running) = std::mem::replace(&mut *run, Run::Stopped) else {
            return;
        };
        // Tasks first, so that nothing renews or re-puts our key after the revoke.
        running.cancel.cancel();
        while running.tasks.join_next().await.is_some() {}
        lease::revoke_all(&self.shared, &running.client).await;
        self.shared.view.remove(&self.shared.me.id);
        tracing::info!(key = %self.shared.own_key, "sd: deregistered from etcd");
        // Spec §5.3: give peers time to see the DELETE before the server goes away.
        tokio::time::sleep(self.shared.config.shutdown.delay).await;
    }
}

/// Registers, puts this server in the view, lists the cluster, and watches from just
/// after that listing.
async fn bootstrap(
    shared: &Shared,
    client: &mut Client,
) -> Result<(lease::Registration, etcd_client::WatchStream, i64), SdError> {
    let registration = lease::register(shared, client).await?;
    shared.view.add(shared.me.clone());
    let revision = sync::sync(shared, client, true).await?;
    let stream = watch::open_watch(shared, client, revision + 1).await?;
    Ok((registration, stream, revision))
}

impl ServiceDiscovery for EtcdServiceDiscovery {
    fn this_server(&self) -> &Arc<Server> {
        &self.shared.me
    }

    /// See [`ServiceDiscovery::start`]. Each etcd call is bounded by `dialtimeout`.
    /// Idempotent while running.
    ///
    /// Not cancel safe: dropping the future midway can leave the key in etcd until its
    /// lease expires.
    fn start(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move { self.start_inner().await.map_err(Error::from) })
    }

    /// See [`ServiceDiscovery::stop`]. Stops both tasks, revokes the lease (bounded by
    /// `revoke.timeout`; peers see the DELETE at once), removes this server from the
    /// view, then sleeps `shutdown.delay`. Later calls return at once.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.stop_inner())
    }

    fn server(&self, id: &str) -> Option<Arc<Server>> {
        self.shared.view.server(id)
    }

    fn servers_by_type(&self, server_type: &str) -> Vec<Arc<Server>> {
        self.shared.view.servers_by_type(server_type)
    }

    fn servers(&self) -> Vec<Arc<Server>> {
        self.shared.view.servers()
    }

    /// See [`ServiceDiscovery::add_listener`]. Later events come from the discovery's
    /// watch task, one at a time. A listener must not call `add_listener` from its
    /// callbacks (that deadlocks); a panic in a callback is logged and skipped.
    fn add_listener(&self, listener: Arc<dyn SdListener>) {
        self.shared.view.add_listener(listener);
    }

    /// See [`EtcdServiceDiscovery::is_connected`].
    fn is_connected(&self) -> BoxFuture<'_, bool> {
        Box::pin(EtcdServiceDiscovery::is_connected(self))
    }
}

impl std::fmt::Debug for EtcdServiceDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdServiceDiscovery")
            .field("key", &self.shared.own_key)
            .finish_non_exhaustive()
    }
}
