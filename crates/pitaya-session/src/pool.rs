//! [`SessionPool`]: creation, lookup by id and uid, app-wide callbacks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use pitaya_codec::HandshakeRequest;
use pitaya_core::{BoxFuture, Error};

use crate::{NetworkEntity, Session, lock, messages};

type BindCallback = Arc<dyn Fn(Session) -> BoxFuture<'static, Result<(), Error>> + Send + Sync>;
type CloseCallback = Arc<dyn Fn(&Session) + Send + Sync>;

/// Checks a client's handshake before the server accepts it. An error makes the server
/// answer code 400 and close the connection (spec §1.3).
pub type HandshakeValidator =
    Arc<dyn Fn(&Session, &HandshakeRequest) -> Result<(), Error> + Send + Sync>;

/// All sessions of this process. Cheap to clone.
#[derive(Clone, Default)]
pub struct SessionPool(Arc<PoolInner>);

/// A [`SessionPool`] reference that does not keep it alive.
#[derive(Clone, Debug)]
pub struct WeakSessionPool(std::sync::Weak<PoolInner>);

impl WeakSessionPool {
    /// The pool, if it still exists.
    pub fn upgrade(&self) -> Option<SessionPool> {
        self.0.upgrade().map(SessionPool)
    }
}

#[derive(Default)]
pub(crate) struct PoolInner {
    next_id: AtomicI64,
    index: Mutex<Index>,
    /// Changes whenever the uid index does (a bind, the close of a bound session), under
    /// the index lock: see [`SessionPool::uid_generation`].
    uid_generation: AtomicU64,
    callbacks: RwLock<Callbacks>,
}

#[derive(Default)]
struct Index {
    by_id: HashMap<i64, Session>,
    by_uid: HashMap<Arc<str>, Session>,
}

#[derive(Default, Clone)]
struct Callbacks {
    on_bind: Vec<BindCallback>,
    after_bind: Vec<BindCallback>,
    on_close: Vec<CloseCallback>,
    validators: Vec<(String, HandshakeValidator)>,
}

impl SessionPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle that does not keep the pool alive, for callbacks the pool itself stores.
    pub fn downgrade(&self) -> WeakSessionPool {
        WeakSessionPool(Arc::downgrade(&self.0))
    }

    /// Creates and indexes a session talking through `entity`.
    pub fn create(&self, entity: Arc<dyn NetworkEntity>) -> Session {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session::new(id, entity, Arc::downgrade(&self.0));
        lock(&self.0.index).by_id.insert(id, session.clone());
        session
    }

    /// Creates a session that is not indexed: a backend's temporary copy of a frontend
    /// session, living for one request (spec §8.3). It takes the next id of this
    /// process, starts with the frontend's `uid` when it has one, and binding it goes
    /// through `entity` ([`NetworkEntity::bind_remote`]) between this pool's on-bind and
    /// after-bind callbacks. `entity` must bind remotely: one that does not would be
    /// indexed on bind like a session of [`create`](Self::create).
    pub fn create_detached(&self, entity: Arc<dyn NetworkEntity>, uid: Option<&str>) -> Session {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Session::new(id, entity, Arc::downgrade(&self.0));
        if let Some(uid) = uid.filter(|u| !u.is_empty()) {
            let _ = session.claim_uid(uid);
        }
        session
    }

    /// The session with `id`.
    pub fn get(&self, id: i64) -> Option<Session> {
        lock(&self.0.index).by_id.get(&id).cloned()
    }

    /// The session bound to `uid` in this process.
    pub fn by_uid(&self, uid: &str) -> Option<Session> {
        lock(&self.0.index).by_uid.get(uid).cloned()
    }

    /// The sessions bound to `uids` in this process, in order, all looked up under one
    /// lock, with the [`uid_generation`](Self::uid_generation) they are valid for.
    pub fn by_uids<'a>(
        &self,
        uids: impl IntoIterator<Item = &'a str>,
    ) -> (u64, Vec<Option<Session>>) {
        let index = lock(&self.0.index);
        let found = uids.into_iter().map(|uid| index.by_uid.get(uid).cloned()).collect();
        (self.0.uid_generation.load(Ordering::Acquire), found)
    }

    /// A number that changes whenever a uid is bound or a bound session closes: what was
    /// resolved by uid at one generation (see [`by_uids`](Self::by_uids)) is still
    /// accurate while the generation is the same, so broadcasters can cache it.
    pub fn uid_generation(&self) -> u64 {
        self.0.uid_generation.load(Ordering::Acquire)
    }

    /// Number of open sessions.
    pub fn count(&self) -> usize {
        lock(&self.0.index).by_id.len()
    }

    /// A snapshot of all open sessions.
    pub fn sessions(&self) -> Vec<Session> {
        lock(&self.0.index).by_id.values().cloned().collect()
    }

    /// Closes every session's connection (shutdown). Close callbacks run as each
    /// connection ends.
    pub fn close_all(&self) {
        for session in self.sessions() {
            session.close();
        }
    }

    /// Runs `f` when a session binds a uid, in registration order, before the session is
    /// indexed by uid. An error undoes the bind and is returned to the binder.
    pub fn on_session_bind<F, Fut>(&self, f: F)
    where
        F: Fn(Session) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), Error>> + Send + 'static,
    {
        let cb: BindCallback = Arc::new(move |s| Box::pin(f(s)));
        self.write_callbacks(|c| c.on_bind.push(cb));
    }

    /// Runs `f` after a session was bound and indexed (binding storage writes here).
    /// Errors are returned to the binder, but the bind stays.
    pub fn after_session_bind<F, Fut>(&self, f: F)
    where
        F: Fn(Session) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), Error>> + Send + 'static,
    {
        let cb: BindCallback = Arc::new(move |s| Box::pin(f(s)));
        self.write_callbacks(|c| c.after_bind.push(cb));
    }

    /// Runs `f` when any session closes, after that session's own close callbacks.
    pub fn on_session_close(&self, f: impl Fn(&Session) + Send + Sync + 'static) {
        self.write_callbacks(|c| c.on_close.push(Arc::new(f)));
    }

    /// Adds a handshake validator. Validators run in registration order (Go walks a map,
    /// in random order) and the first failure rejects the handshake.
    pub fn add_handshake_validator(
        &self,
        name: impl Into<String>,
        f: impl Fn(&Session, &HandshakeRequest) -> Result<(), Error> + Send + Sync + 'static,
    ) {
        let name = name.into();
        let validator: HandshakeValidator = Arc::new(f);
        self.write_callbacks(|c| c.validators.push((name, validator)));
    }

    /// Runs the handshake validators.
    ///
    /// # Errors
    /// The first validator's error, with the validator's name in the metadata key
    /// `validator`.
    pub fn validate_handshake(
        &self,
        session: &Session,
        hs: &HandshakeRequest,
    ) -> Result<(), Error> {
        let validators = self.read_callbacks(|c| c.validators.clone());
        for (name, validator) in validators {
            validator(session, hs).map_err(|e| e.with_metadata("validator", name))?;
        }
        Ok(())
    }

    /// Marks `session` closed, removes it from the indexes and runs its close callbacks,
    /// then the pool's. Called by the connection owner when the connection has ended;
    /// idempotent.
    pub fn remove(&self, session: &Session) {
        {
            let mut index = lock(&self.0.index);
            if session.0.closed.swap(true, Ordering::AcqRel) {
                return;
            }
            index.by_id.remove(&session.id());
            if let Some(uid) = session.uid() {
                // A newer session may already own this uid: leave its entry alone.
                if index.by_uid.get(&uid).is_some_and(|s| s.ptr_eq(session)) {
                    index.by_uid.remove(&uid);
                    self.0.uid_generation.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        for cb in session.take_close_callbacks() {
            cb(session);
        }
        for cb in self.read_callbacks(|c| c.on_close.clone()) {
            cb(session);
        }
    }

    /// Marks `session` closed and removes it from the indexes **without** running any
    /// close callback: for a session that never became the client's, such as the one a
    /// connection starts with before its handshake resumes an older session
    /// (`docs/resume.md`). A bound session is removed as by [`remove`](Self::remove).
    pub fn discard(&self, session: &Session) {
        if session.uid().is_some() {
            return self.remove(session);
        }
        let mut index = lock(&self.0.index);
        if !session.0.closed.swap(true, Ordering::AcqRel) {
            index.by_id.remove(&session.id());
            drop(index);
            drop(session.take_close_callbacks());
        }
    }

    fn write_callbacks(&self, f: impl FnOnce(&mut Callbacks)) {
        let mut guard = self.0.callbacks.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard);
    }

    fn read_callbacks<T>(&self, f: impl FnOnce(&Callbacks) -> T) -> T {
        f(&self.0.callbacks.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl PoolInner {
    pub(crate) async fn bind(self: Arc<Self>, session: &Session, uid: &str) -> Result<(), Error> {
        let pool = SessionPool(self);
        let uid = session.claim_uid(uid)?;
        pool.run_on_bind(session).await?;
        let replaced = {
            let mut index = lock(&pool.0.index);
            // Checked under the index lock, which remove() also takes: a session that
            // closed while the callbacks ran must not be indexed again.
            if session.is_closed() {
                drop(index);
                session.release_uid();
                return Err(Error::unknown(messages::NOT_FOUND));
            }
            pool.0.uid_generation.fetch_add(1, Ordering::AcqRel);
            index.by_uid.insert(uid, session.clone())
        };
        if let Some(old) = replaced.filter(|old| !old.ptr_eq(session)) {
            tracing::debug!(uid = %session.uid().unwrap_or_default(), old = old.id(), new = session.id(), "closing older session bound to the same uid");
            old.close();
        }
        for cb in pool.read_callbacks(|c| c.after_bind.clone()) {
            cb(session.clone()).await?;
        }
        Ok(())
    }
}

impl PoolInner {
    /// The bind of a backend's relayed session: this server's own on-bind callbacks
    /// first, then `remote` (the frontend's `sys.bindsession`), then the after-bind
    /// callbacks, as Go's backend `Bind` does (spec §8.3). The session is not indexed:
    /// it lives for one request, and uid lookups only work on frontends.
    pub(crate) async fn bind_remote(
        self: Arc<Self>,
        session: &Session,
        uid: &str,
        remote: BoxFuture<'_, Result<(), Error>>,
    ) -> Result<(), Error> {
        let pool = SessionPool(self);
        session.claim_uid(uid)?;
        pool.run_on_bind(session).await?;
        remote.await.inspect_err(|_| session.release_uid())?;
        // As on a frontend, an after-bind error is returned but the bind stays: the
        // frontend already holds it. (Go clears the backend's copy of the uid, which
        // then disagrees with the frontend's; no peer sees either.)
        for cb in pool.read_callbacks(|c| c.after_bind.clone()) {
            cb(session.clone()).await?;
        }
        Ok(())
    }
}

impl SessionPool {
    /// Runs the on-bind callbacks in order; the first error releases the uid the caller
    /// claimed and is returned.
    async fn run_on_bind(&self, session: &Session) -> Result<(), Error> {
        for cb in self.read_callbacks(|c| c.on_bind.clone()) {
            cb(session.clone()).await.inspect_err(|_| session.release_uid())?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool").field("sessions", &self.count()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicUsize;

    use bytes::Bytes;

    use super::*;

    /// An entity that records what it was asked to do; close ends the session as an
    /// agent would.
    #[derive(Default)]
    struct Recorder {
        pool: Mutex<Option<(SessionPool, Session)>>,
        pushes: Mutex<Vec<(String, Bytes)>>,
        kicks: AtomicUsize,
    }

    impl NetworkEntity for Recorder {
        fn push(&self, route: &str, data: Bytes) -> BoxFuture<'_, Result<(), Error>> {
            lock(&self.pushes).push((route.to_owned(), data));
            Box::pin(async { Ok(()) })
        }
        fn respond(&self, _: u64, _: Bytes, _: bool) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn kick(&self) -> BoxFuture<'_, Result<(), Error>> {
            self.kicks.fetch_add(1, Ordering::SeqCst);
            self.close();
            Box::pin(async { Ok(()) })
        }
        fn close(&self) {
            if let Some((pool, session)) = lock(&self.pool).take() {
                pool.remove(&session);
            }
        }
        fn remote_addr(&self) -> Option<SocketAddr> {
            None
        }
    }

    fn session(pool: &SessionPool) -> (Session, Arc<Recorder>) {
        let rec = Arc::new(Recorder::default());
        let s = pool.create(rec.clone());
        *lock(&rec.pool) = Some((pool.clone(), s.clone()));
        (s, rec)
    }

    #[tokio::test]
    async fn ids_start_at_one_and_lookups_work() {
        let pool = SessionPool::new();
        let (a, _) = session(&pool);
        let (b, _) = session(&pool);
        assert_eq!((a.id(), b.id()), (1, 2));
        assert!(pool.get(2).unwrap().ptr_eq(&b));
        a.bind("ana").await.unwrap();
        assert!(pool.by_uid("ana").unwrap().ptr_eq(&a));
        assert_eq!(pool.count(), 2);
    }

    #[tokio::test]
    async fn the_uid_generation_moves_on_bind_and_on_close_of_a_bound_session() {
        let pool = SessionPool::new();
        let (a, rec_a) = session(&pool);
        let (_b, rec_b) = session(&pool);
        let start = pool.uid_generation();
        a.bind("ana").await.unwrap();
        let (bound, found) = pool.by_uids(["ana", "bob"]);
        assert!(bound != start && bound == pool.uid_generation());
        assert!(found[0].as_ref().is_some_and(|s| s.ptr_eq(&a)) && found[1].is_none());
        // An unbound session's close leaves the uid index, and the generation, alone.
        rec_b.close();
        assert_eq!(pool.uid_generation(), bound);
        rec_a.close();
        assert_ne!(pool.uid_generation(), bound);
        assert!(pool.by_uids(["ana"]).1[0].is_none());
    }

    #[tokio::test]
    async fn second_bind_and_empty_uid_fail_with_gos_messages() {
        let pool = SessionPool::new();
        let (s, _) = session(&pool);
        assert_eq!(s.bind("").await.unwrap_err().message(), "illegal uid");
        s.bind("u1").await.unwrap();
        let e = s.bind("u2").await.unwrap_err();
        assert_eq!((e.code(), e.message()), ("PIT-000", "session is already bound to an uid"));
        assert_eq!(s.uid().as_deref(), Some("u1"));
    }

    #[tokio::test]
    async fn failing_bind_callback_undoes_the_bind() {
        let pool = SessionPool::new();
        pool.on_session_bind(|s| async move {
            if s.uid().as_deref() == Some("banned") {
                Err(Error::new("PIT-403", "banned"))
            } else {
                Ok(())
            }
        });
        let (s, _) = session(&pool);
        assert_eq!(s.bind("banned").await.unwrap_err().code(), "PIT-403");
        assert_eq!(s.uid(), None);
        assert!(pool.by_uid("banned").is_none());
        s.bind("ok").await.unwrap();
    }

    /// A backend's relayed session: its bind is an RPC to the frontend, logged as
    /// `remote <uid>`; it fails for uid `refused`.
    struct Relayed(Arc<Mutex<Vec<String>>>);

    impl NetworkEntity for Relayed {
        fn push(&self, _: &str, _: Bytes) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn respond(&self, _: u64, _: Bytes, _: bool) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn kick(&self) -> BoxFuture<'_, Result<(), Error>> {
            Box::pin(async { Ok(()) })
        }
        fn close(&self) {}
        fn remote_addr(&self) -> Option<SocketAddr> {
            None
        }
        fn bind_remote(&self, uid: &str) -> Option<BoxFuture<'_, Result<(), Error>>> {
            let uid = uid.to_owned();
            Some(Box::pin(async move {
                lock(&self.0).push(format!("remote {uid}"));
                if uid == "refused" { Err(Error::unknown("refused by frontend")) } else { Ok(()) }
            }))
        }
    }

    /// Spec §8.3, as Go's backend `Bind`: the backend's own on-bind callbacks run before
    /// `sys.bindsession`, the after-bind ones after it; a failing callback stops the bind
    /// before the frontend is asked, and a refusal by the frontend undoes it.
    #[tokio::test]
    async fn backend_bind_runs_its_callbacks_around_the_frontend_bind() {
        let pool = SessionPool::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        pool.on_session_bind(move |s| {
            let uid = s.uid().unwrap_or_default();
            lock(&l).push(format!("on_bind {uid}"));
            async move {
                if &*uid == "banned" { Err(Error::new("PIT-403", "banned")) } else { Ok(()) }
            }
        });
        let l = log.clone();
        pool.after_session_bind(move |s| {
            lock(&l).push(format!("after_bind {}", s.uid().unwrap_or_default()));
            async { Ok(()) }
        });
        let s = pool.create_detached(Arc::new(Relayed(log.clone())), None);
        s.bind("ana").await.unwrap();
        assert_eq!(*lock(&log), ["on_bind ana", "remote ana", "after_bind ana"]);
        assert!(pool.by_uid("ana").is_none(), "backend sessions are not indexed");

        lock(&log).clear();
        let s = pool.create_detached(Arc::new(Relayed(log.clone())), None);
        assert_eq!(s.bind("banned").await.unwrap_err().code(), "PIT-403");
        assert_eq!(s.uid(), None);
        assert_eq!(*lock(&log), ["on_bind banned"], "the frontend must not be asked");

        lock(&log).clear();
        assert_eq!(s.bind("refused").await.unwrap_err().message(), "refused by frontend");
        assert_eq!(s.uid(), None);
        assert_eq!(*lock(&log), ["on_bind refused", "remote refused"]);
    }

    #[tokio::test]
    async fn rebinding_a_uid_closes_the_older_session_and_late_close_keeps_the_new_one() {
        let pool = SessionPool::new();
        let closed = Arc::new(AtomicUsize::new(0));
        let c = closed.clone();
        pool.on_session_close(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let (old, _) = session(&pool);
        let (new, _) = session(&pool);
        old.bind("u").await.unwrap();
        new.bind("u").await.unwrap();
        assert!(old.is_closed());
        assert!(pool.by_uid("u").unwrap().ptr_eq(&new));
        // The old connection's close arriving again changes nothing.
        pool.remove(&old);
        assert!(pool.by_uid("u").unwrap().ptr_eq(&new));
        assert_eq!(closed.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn close_callbacks_run_once_in_order() {
        let pool = SessionPool::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = order.clone();
        pool.on_session_close(move |_| lock(&o).push("pool"));
        let (s, _) = session(&pool);
        let o = order.clone();
        s.on_close(move |_| lock(&o).push("session"));
        s.bind("x").await.unwrap();
        s.close();
        s.close();
        assert_eq!(*lock(&order), ["session", "pool"]);
        assert!(pool.by_uid("x").is_none() && pool.get(s.id()).is_none());
        let o = order.clone();
        s.on_close(move |_| lock(&o).push("late"));
        assert_eq!(lock(&order).last(), Some(&"late"));
    }

    #[tokio::test]
    async fn bind_of_a_closed_session_fails() {
        let pool = SessionPool::new();
        let (s, _) = session(&pool);
        s.close();
        assert_eq!(s.bind("z").await.unwrap_err().message(), "session not found");
        assert!(pool.by_uid("z").is_none());
    }

    #[tokio::test]
    async fn extensions_are_one_per_type_and_replaced() {
        let pool = SessionPool::new();
        let (s, _) = session(&pool);
        assert_eq!(s.extension::<u32>(), None);
        s.set_extension(7u32);
        s.set_extension(String::from("x"));
        s.set_extension(8u32);
        assert_eq!((s.extension::<u32>(), s.extension::<String>()), (Some(8), Some("x".into())));
        assert_eq!(s.extension::<u64>(), None);
    }

    #[test]
    fn a_lazily_set_entry_is_seen_by_every_reader_and_writer() {
        let pool = SessionPool::new();
        let (s, _) = session(&pool);
        s.set_lazily("ipversion", "ipv4");
        assert_eq!(s.get::<String>("ipversion").as_deref(), Some("ipv4"));
        s.set("level", &3).unwrap();
        assert_eq!(&s.encoded_data()[..], br#"{"ipversion":"ipv4","level":3}"#);

        let (s, _) = session(&pool);
        s.set_lazily("ipversion", "ipv6");
        assert!(s.has("ipversion"));
        let (s, _) = session(&pool);
        s.set_lazily("ipversion", "ipv6");
        assert_eq!(s.remove("ipversion"), Some(serde_json::Value::from("ipv6")));
        assert!(s.data().is_empty());
        // Replacing the data replaces a lazy entry too, as it would a set one.
        let (s, _) = session(&pool);
        s.set_lazily("ipversion", "ipv4");
        s.set_encoded_data(br#"{"a":1}"#).unwrap();
        assert_eq!(&s.encoded_data()[..], br#"{"a":1}"#);
        // A second lazy entry keeps the first.
        let (s, _) = session(&pool);
        s.set_lazily("a", "1");
        s.set_lazily("b", "2");
        assert_eq!(&s.encoded_data()[..], br#"{"a":"1","b":"2"}"#);
    }

    #[tokio::test]
    async fn data_push_kick_and_validators() {
        let pool = SessionPool::new();
        let (s, rec) = session(&pool);
        s.set("ipversion", "ipv4").unwrap();
        s.set("level", &3).unwrap();
        assert_eq!(s.get::<u32>("level"), Some(3));
        assert_eq!(s.get::<String>("level"), None);
        assert_eq!(&s.encoded_data()[..], br#"{"ipversion":"ipv4","level":3}"#);
        s.set_encoded_data(b"null").unwrap();
        assert!(s.data().is_empty());
        assert_eq!(&s.encoded_data()[..], b"{}");
        // The kept encoding follows every change.
        s.set_encoded_data(br#"{"b":[1],"a":"x"}"#).unwrap();
        assert_eq!(&s.encoded_data()[..], br#"{"b":[1],"a":"x"}"#);
        s.set("c", &true).unwrap();
        assert_eq!(&s.encoded_data()[..], br#"{"a":"x","b":[1],"c":true}"#);
        assert_eq!(s.remove("b"), Some(serde_json::json!([1])));
        assert_eq!(s.remove("b"), None);
        assert_eq!(&s.encoded_data()[..], br#"{"a":"x","c":true}"#);
        s.set_data(serde_json::Map::new());
        assert_eq!(&s.encoded_data()[..], b"{}");
        s.push("onMessage", &b"hi"[..]).await.unwrap();
        assert_eq!(lock(&rec.pushes)[0].0, "onMessage");

        pool.add_handshake_validator("version", |_, hs| {
            if hs.sys.client_version.is_empty() {
                Err(Error::unknown("missing version"))
            } else {
                Ok(())
            }
        });
        let e = pool.validate_handshake(&s, &HandshakeRequest::default()).unwrap_err();
        assert_eq!(e.metadata()["validator"], "version");

        s.kick().await.unwrap();
        assert_eq!(rec.kicks.load(Ordering::SeqCst), 1);
        assert!(s.is_closed());
    }
}
