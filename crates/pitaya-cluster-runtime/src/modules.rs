//! The framework's own modules: unique session (spec §8.5) and binding storage (§8.6).

use std::sync::{Arc, Weak};

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
                    Some(core) => core.client.broadcast_session_bind(&uid).await,
                    None => Ok(()),
                }
            }
        });
        Box::pin(std::future::ready(Ok(())))
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
