//! The framework's own modules: unique session (spec §8.5) and binding storage (§8.6).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use pitaya_cluster::BindingStorage;
use pitaya_core::{BoxFuture, Error};
use pitaya_modules::{Module, ModuleContext};

use crate::incoming::kick_or_close;
use crate::runtime::ClusterRuntime;

/// Name the unique-session module is registered under.
pub const UNIQUE_SESSION: &str = "uniqueSession";
/// Name the binding-storage module is registered under.
pub const BINDING_STORAGE: &str = "bindingsStorage";

/// Pitaya's unique-session module (`pitaya.session.unique`, on by default): binding a
/// uid kicks the older session of this process bound to it (closing it if the kick
/// cannot be queued), then, on a cluster frontend, announces the bind so that frontends
/// of the same type kick theirs. The newest login wins.
pub struct UniqueSession {
    cluster: Option<Weak<ClusterRuntime>>,
}

impl UniqueSession {
    /// The module of a server; `cluster` is its runtime in cluster mode (frontends then
    /// announce their binds to the other frontends of their type), `None` standalone.
    pub fn new(cluster: Option<Weak<ClusterRuntime>>) -> Self {
        Self { cluster }
    }
}

impl std::fmt::Debug for UniqueSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UniqueSession").field("cluster", &self.cluster.is_some()).finish()
    }
}

impl Module for UniqueSession {
    fn init<'a>(&'a self, ctx: &'a ModuleContext) -> BoxFuture<'a, Result<(), Error>> {
        let weak = ctx.sessions.downgrade();
        let cluster = self.cluster.clone().filter(|_| ctx.server.frontend);
        ctx.sessions.on_session_bind(move |session| {
            let pool = weak.upgrade();
            let cluster = cluster.as_ref().and_then(Weak::upgrade);
            async move {
                let (Some(pool), Some(uid)) = (pool, session.uid()) else { return Ok(()) };
                if let Some(old) = pool.by_uid(&uid).filter(|old| !old.ptr_eq(&session)) {
                    tracing::debug!(%uid, old = old.id(), new = session.id(), "unique session: kicking the older session");
                    kick_or_close(&old).await;
                }
                match cluster {
                    Some(core) => {
                        let echoes = core.client.session_binds_echo_in_order();
                        if echoes {
                            core.own_binds.announced(&uid);
                        }
                        let sent = core.client.broadcast_session_bind(&uid).await;
                        if sent.is_err() && echoes {
                            core.own_binds.echoed(&uid);
                        }
                        sent
                    }
                    None => Ok(()),
                }
            }
        });
        Box::pin(std::future::ready(Ok(())))
    }
}

/// A frontend's bind announcements that have not come back yet, per uid.
///
/// Frontends learn of each other's binds from announcements, which can reach a frontend
/// after a newer login of the same user was made on it: a player binds on frontend A,
/// then at once on frontend B, and A's announcement is handled on B after the new bind,
/// which B would then kick (the race behind Go Pitaya's issues #220 and #463). Where the
/// transport delivers announcements to every frontend in one order, B's own
/// announcement comes back to it too: another frontend's announcement that arrives
/// before B's own came back was ordered before it, so it is older than B's bind and B's
/// session stays (A, receiving B's announcement after its own, kicks its session). An
/// announcement that never comes back (connection lost) stops counting after
/// [`ECHO_WAIT`], so later logins elsewhere still kick.
#[derive(Debug, Default)]
pub(crate) struct OwnBinds(std::sync::Mutex<std::collections::HashMap<String, (u32, Instant)>>);

/// How long an announcement may take to come back before it is no longer waited for.
const ECHO_WAIT: Duration = Duration::from_secs(5);

impl OwnBinds {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (u32, Instant)>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This frontend announced a bind of `uid`.
    pub(crate) fn announced(&self, uid: &str) {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, (_, at)| now.duration_since(*at) < ECHO_WAIT);
        let entry = map.entry(uid.to_owned()).or_insert((0, now));
        *entry = (entry.0 + 1, now);
    }

    /// One of this frontend's announcements of `uid` came back (or was never sent).
    pub(crate) fn echoed(&self, uid: &str) {
        let mut map = self.lock();
        if let Some((count, _)) = map.get_mut(uid) {
            *count -= 1;
            if *count == 0 {
                map.remove(uid);
            }
        }
    }

    /// Whether an announcement of `uid` from another frontend, arriving now, was ordered
    /// before this frontend's own latest one.
    pub(crate) fn older_than_ours(&self, uid: &str) -> bool {
        self.lock().get(uid).is_some_and(|(_, at)| at.elapsed() < ECHO_WAIT)
    }
}

/// Keeps a [`BindingStorage`] up to date on a frontend: the binding is written after
/// each bind and removed when the session closes (spec §8.6). `start` and `stop` run the
/// storage's own lifecycle (e.g. its etcd lease). Registered by
/// `Builder::etcd_grpc_cluster` as `bindingsStorage`; other transports can return it in
/// their [`ClusterParts`](crate::ClusterParts) modules.
pub struct BindingStorageModule {
    storage: Arc<dyn BindingStorage>,
    start: StartFn,
    stop: StopFn,
}

type StartFn = Box<dyn Fn() -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;
type StopFn = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

impl BindingStorageModule {
    /// A module keeping `storage` up to date; `start` and `stop` run at the module's
    /// `init` and `shutdown`.
    pub fn new<S, Fs, Ft>(
        storage: Arc<S>,
        start: impl Fn(Arc<S>) -> Fs + Send + Sync + 'static,
        stop: impl Fn(Arc<S>) -> Ft + Send + Sync + 'static,
    ) -> Self
    where
        S: BindingStorage,
        Fs: std::future::Future<Output = Result<(), Error>> + Send + 'static,
        Ft: std::future::Future<Output = ()> + Send + 'static,
    {
        let (a, b) = (storage.clone(), storage.clone());
        Self {
            storage,
            start: Box::new(move || Box::pin(start(a.clone()))),
            stop: Box::new(move || Box::pin(stop(b.clone()))),
        }
    }
}

impl std::fmt::Debug for BindingStorageModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindingStorageModule").finish_non_exhaustive()
    }
}

impl Module for BindingStorageModule {
    fn init<'a>(&'a self, ctx: &'a ModuleContext) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            (self.start)().await?;
            if ctx.server.frontend {
                let storage = self.storage.clone();
                ctx.sessions.after_session_bind(move |session| {
                    let storage = storage.clone();
                    async move {
                        match session.uid() {
                            Some(uid) => storage.put(&uid).await,
                            None => Ok(()),
                        }
                    }
                });
                let storage = self.storage.clone();
                ctx.sessions.on_session_close(move |session| {
                    if let Some(uid) = session.uid() {
                        let storage = storage.clone();
                        // Close callbacks are synchronous; the delete goes on in the
                        // background (it is unconditional, as in Go).
                        tokio::spawn(async move {
                            if let Err(e) = storage.remove(&uid).await {
                                tracing::warn!(%uid, error = %e, "cannot remove the user's binding");
                            }
                        });
                    }
                });
            }
            Ok(())
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        (self.stop)()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use pitaya_cluster::{DieSignal, Server};
    use pitaya_session::{NetworkEntity, SessionPool};

    use super::*;

    /// A connection whose kick packet can never be queued (dead or stuck).
    #[derive(Default)]
    struct KickFails {
        closes: AtomicUsize,
    }

    impl NetworkEntity for KickFails {
        fn push(&self, _: &str, _: Bytes) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn respond(&self, _: u64, _: Bytes, _: bool) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn kick(&self) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Err(Error::new(pitaya_core::codes::CLIENT_CLOSED_REQUEST, "stuck")) })
        }
        fn close(&self) {
            self.closes.fetch_add(1, Ordering::SeqCst);
        }
        fn remote_addr(&self) -> Option<SocketAddr> {
            None
        }
    }

    /// Another frontend's announcement counts as older than ours until ours came back,
    /// and only for as long as an echo may take.
    #[test]
    fn own_binds_order_announcements_until_they_come_back() {
        let binds = OwnBinds::default();
        assert!(!binds.older_than_ours("u"), "nothing announced: a remote bind is newer");
        binds.announced("u");
        binds.announced("u");
        assert!(binds.older_than_ours("u"));
        assert!(!binds.older_than_ours("v"));
        binds.echoed("u");
        assert!(binds.older_than_ours("u"), "the second announcement is still out");
        binds.echoed("u");
        assert!(!binds.older_than_ours("u"));
        binds.echoed("u");
        assert!(!binds.older_than_ours("u"), "an extra echo changes nothing");
        // One that never comes back stops counting.
        binds.lock().insert("w".into(), (1, Instant::now() - ECHO_WAIT));
        assert!(!binds.older_than_ours("w"));
    }

    /// Go's TestUniqueSession_ShouldSucceedIfKickFails: the newer login wins even when
    /// the older session cannot be sent its kick; that session is closed instead.
    #[tokio::test]
    async fn unique_session_bind_succeeds_when_the_kick_fails() {
        let pool = SessionPool::new();
        let ctx = ModuleContext {
            server: Arc::new(Server::new("connector", true, Default::default())),
            sessions: pool.clone(),
            die: DieSignal::new(),
        };
        Module::init(&UniqueSession::new(None), &ctx).await.unwrap();
        let old_conn = Arc::new(KickFails::default());
        let old = pool.create(old_conn.clone());
        old.bind("u").await.unwrap();
        let new = pool.create(Arc::new(KickFails::default()));
        new.bind("u").await.expect("the newer login binds");
        assert!(pool.by_uid("u").unwrap().ptr_eq(&new));
        // Closed twice: by the unique-session module after the failed kick, then by the
        // bind replacing the uid's index entry (real connections make close idempotent).
        assert_eq!(old_conn.closes.load(Ordering::SeqCst), 2);
    }
}
