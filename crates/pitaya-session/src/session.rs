//! [`Session`]: one client's state on a frontend.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use pitaya_codec::HandshakeRequest;
use pitaya_core::Error;
use pitaya_serialize::session_data::{self, SessionData};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::pool::PoolInner;
use crate::{NetworkEntity, lock, messages};

type CloseCallback = Box<dyn FnOnce(&Session) + Send>;

/// A client session. Cheap to clone: clones share the same state.
///
/// Created by [`SessionPool::create`](crate::SessionPool::create); ids count from 1 per
/// process (spec §8.1).
#[derive(Clone)]
pub struct Session(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) id: i64,
    pub(crate) uid: Mutex<Option<Arc<str>>>,
    data: Mutex<Data>,
    handshake: Mutex<Option<Arc<HandshakeRequest>>>,
    entity: Arc<dyn NetworkEntity>,
    on_close: Mutex<Vec<CloseCallback>>,
    /// Values other layers keep per session, one per type (see [`Session::extension`]).
    extensions: Mutex<Vec<Box<dyn std::any::Any + Send + Sync>>>,
    pub(crate) closed: AtomicBool,
    pub(crate) pool: Weak<PoolInner>,
}

/// A session's data, the entry [`Session::set_lazily`] has not put in it yet, and, once
/// asked for and until the data changes, its encoding.
struct Data {
    map: SessionData,
    deferred: Option<(&'static str, &'static str)>,
    encoded: Option<Bytes>,
}

impl Data {
    fn materialize(&mut self) {
        if let Some((key, value)) = self.deferred.take() {
            self.map.insert(key.to_owned(), Value::from(value));
        }
    }
}

impl Session {
    pub(crate) fn new(id: i64, entity: Arc<dyn NetworkEntity>, pool: Weak<PoolInner>) -> Self {
        Self(Arc::new(Inner {
            id,
            uid: Mutex::new(None),
            data: Mutex::new(Data { map: SessionData::new(), deferred: None, encoded: None }),
            handshake: Mutex::new(None),
            entity,
            on_close: Mutex::new(Vec::new()),
            extensions: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            pool,
        }))
    }

    /// The session id, unique in this process.
    pub fn id(&self) -> i64 {
        self.0.id
    }

    /// The bound uid, if any.
    pub fn uid(&self) -> Option<Arc<str>> {
        lock(&self.0.uid).clone()
    }

    /// Binds `uid` to this session (spec §8.1): rejects an empty uid and a second bind,
    /// runs the pool's on-bind callbacks (undoing the bind if one fails), closes any other
    /// session of this process bound to the same uid, indexes this one, then runs the
    /// after-bind callbacks.
    ///
    /// A backend's relayed session (spec §8.3) runs this server's on-bind callbacks, then
    /// binds on the frontend (`sys.bindsession`), then runs the after-bind callbacks, as
    /// Go does; it is never indexed here. A failure at any step undoes the bind.
    ///
    /// # Errors
    /// `PIT-000` `illegal uid` or `session is already bound to an uid`; a callback's
    /// error; `PIT-000` `session not found` when the session closed meanwhile.
    pub async fn bind(&self, uid: &str) -> Result<(), Error> {
        match (self.0.entity.bind_remote(uid), self.0.pool.upgrade()) {
            (Some(remote), Some(pool)) => pool.bind_remote(self, uid, remote).await,
            (Some(remote), None) => {
                self.claim_uid(uid)?;
                remote.await.inspect_err(|_| self.release_uid())
            }
            (None, Some(pool)) => pool.bind(self, uid).await,
            (None, None) => self.claim_uid(uid).map(|_| ()),
        }
    }

    /// Sets the uid if none is set yet.
    pub(crate) fn claim_uid(&self, uid: &str) -> Result<Arc<str>, Error> {
        if uid.is_empty() {
            return Err(Error::unknown(messages::ILLEGAL_UID));
        }
        let mut slot = lock(&self.0.uid);
        if slot.is_some() {
            return Err(Error::unknown(messages::ALREADY_BOUND));
        }
        let uid: Arc<str> = Arc::from(uid);
        *slot = Some(uid.clone());
        Ok(uid)
    }

    pub(crate) fn release_uid(&self) {
        *lock(&self.0.uid) = None;
    }

    /// Stores `value` under `key`, JSON-encoded as Go would store it.
    ///
    /// # Errors
    /// `PIT-000` when the value cannot be represented as JSON.
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        let value = serde_json::to_value(value)?;
        self.edit_data(|data| data.insert(key.to_owned(), value));
        Ok(())
    }

    /// Stores the string `value` under `key` as [`set`](Self::set) would, except that
    /// nothing is allocated until the data is first read or written (by any method of
    /// this session): every observer sees it as if it had been set now. For what the
    /// framework sets on every session, such as the `ipversion` of the handshake, which
    /// would otherwise cost each idle connection a map node of some 650 bytes.
    pub fn set_lazily(&self, key: &'static str, value: &'static str) {
        let mut data = lock(&self.0.data);
        data.materialize();
        data.deferred = Some((key, value));
        data.encoded = None;
    }

    /// Runs `f` on the data, with any [`set_lazily`](Self::set_lazily) entry in it.
    fn with_data<R>(&self, f: impl FnOnce(&SessionData) -> R) -> R {
        let mut data = lock(&self.0.data);
        data.materialize();
        f(&data.map)
    }

    /// Runs `f` on the data to change it: the kept encoding no longer holds.
    fn edit_data<R>(&self, f: impl FnOnce(&mut SessionData) -> R) -> R {
        let mut data = lock(&self.0.data);
        data.materialize();
        data.encoded = None;
        f(&mut data.map)
    }

    /// Reads `key` as a `T`. `None` when absent or when it does not decode as `T`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let value = self.with_data(|data| data.get(key).cloned())?;
        serde_json::from_value(value).ok()
    }

    /// The raw JSON value under `key`.
    pub fn get_value(&self, key: &str) -> Option<Value> {
        self.with_data(|data| data.get(key).cloned())
    }

    /// Whether `key` is set.
    pub fn has(&self, key: &str) -> bool {
        self.with_data(|data| data.contains_key(key))
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        if !self.has(key) {
            return None;
        }
        self.edit_data(|data| data.remove(key))
    }

    /// A copy of all the data.
    pub fn data(&self) -> SessionData {
        self.with_data(|data| data.clone())
    }

    /// Replaces all the data.
    pub fn set_data(&self, data: SessionData) {
        self.edit_data(|old| *old = data);
    }

    /// The data as it travels between servers (spec §8.2).
    ///
    /// The encoding is kept until the data changes: a frontend sends it with every message
    /// it forwards, and most messages change nothing.
    pub fn encoded_data(&self) -> Bytes {
        let mut data = lock(&self.0.data);
        data.materialize();
        let Data { map, encoded, .. } = &mut *data;
        encoded.get_or_insert_with(|| session_data::encode(map).into()).clone()
    }

    /// Replaces the data with a decoded copy of `bytes`; `null` means empty.
    ///
    /// # Errors
    /// `PIT-000` when the bytes are not a JSON object.
    pub fn set_encoded_data(&self, bytes: &[u8]) -> Result<(), Error> {
        let map = session_data::decode(bytes)?;
        // An object's bytes are the encoding of what they decoded to: kept for sending it
        // on (`null` decodes to the empty map, which encodes as `{}`).
        let encoded = (bytes.first() == Some(&b'{')).then(|| Bytes::copy_from_slice(bytes));
        *lock(&self.0.data) = Data { map, deferred: None, encoded };
        Ok(())
    }

    /// Sends this session's data to the frontend that owns it (Go's `PushToFront`). On
    /// the frontend itself there is nothing to send.
    ///
    /// # Errors
    /// The RPC's error, e.g. `session not found` when the client has left.
    pub async fn push_to_front(&self) -> Result<(), Error> {
        let uid = self.uid();
        self.0.entity.push_session(uid.as_deref(), self.encoded_data().to_vec()).await
    }

    /// The id of the frontend server holding this session's connection, when this
    /// session was relayed from it (a backend's session).
    pub fn frontend_id(&self) -> Option<&str> {
        self.0.entity.frontend().map(|(id, _)| id)
    }

    /// The session's id on its frontend: [`id`](Self::id) on the frontend itself.
    pub fn frontend_session_id(&self) -> i64 {
        self.0.entity.frontend().map_or(self.0.id, |(_, id)| id)
    }

    /// The client's handshake, once received. Never forwarded to backends (spec §1.3).
    pub fn handshake(&self) -> Option<Arc<HandshakeRequest>> {
        lock(&self.0.handshake).clone()
    }

    /// Records the client's handshake (a second handshake replaces the first).
    pub fn set_handshake(&self, handshake: HandshakeRequest) {
        *lock(&self.0.handshake) = Some(Arc::new(handshake));
    }

    /// Free slots of the connection's bounded queues right now (see
    /// [`NetworkEntity::queue_free`]); `None` for a session without a client connection.
    pub fn queue_free(&self) -> Option<crate::QueueFree> {
        self.0.entity.queue_free()
    }

    /// The client's address, when known.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.0.entity.remote_addr()
    }

    /// Pushes `data` on `route` to this client.
    ///
    /// # Errors
    /// `PIT-499` when the connection is closed or was closed for being too slow.
    pub async fn push(&self, route: &str, data: impl Into<Bytes>) -> Result<(), Error> {
        self.0.entity.push(route, data.into()).await
    }

    /// Queues `push` without waiting (see [`NetworkEntity::try_push_shared`]): for
    /// broadcasts, where one slow client must not hold up the others.
    ///
    /// `None` when the session's entity cannot do this; use [`push`](Self::push).
    ///
    /// # Errors
    /// `PIT-499` when the connection is closed, or was just closed because its outgoing
    /// queue had been full for `pitaya.buffer.agent.conntimeout`.
    pub fn try_push_shared(&self, push: &crate::SharedPush) -> Option<Result<(), Error>> {
        self.0.entity.try_push_shared(push)
    }

    /// Answers request `id` directly (handlers normally just return their reply).
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub async fn respond(&self, id: u64, data: impl Into<Bytes>, error: bool) -> Result<(), Error> {
        self.0.entity.respond(id, data.into(), error).await
    }

    /// Sends the client a kick packet and closes the connection.
    ///
    /// # Errors
    /// As [`push`](Self::push).
    pub async fn kick(&self) -> Result<(), Error> {
        self.0.entity.kick().await
    }

    /// Closes the connection without a kick packet. The close callbacks run once the
    /// connection is gone.
    pub fn close(&self) {
        self.0.entity.close();
    }

    /// Whether the session is closed.
    pub fn is_closed(&self) -> bool {
        self.0.closed.load(Ordering::Acquire)
    }

    /// The value of type `T` another layer keeps with this session (for instance the
    /// cluster runtime's backend per server type), if one was set. Values are not session
    /// data: they are never sent to other servers, and they are dropped with the session.
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        lock(&self.0.extensions).iter().find_map(|v| (**v).downcast_ref::<T>()).cloned()
    }

    /// Sets the value of type `T` kept with this session, replacing the previous one.
    pub fn set_extension<T: Send + Sync + 'static>(&self, value: T) {
        let mut values = lock(&self.0.extensions);
        match values.iter_mut().find(|v| (***v).is::<T>()) {
            Some(slot) => *slot = Box::new(value),
            None => values.push(Box::new(value)),
        }
    }

    /// Registers `f` to run once when the session closes (before the pool's callbacks).
    /// On an already closed session it runs at once.
    pub fn on_close(&self, f: impl FnOnce(&Session) + Send + 'static) {
        let mut callbacks = lock(&self.0.on_close);
        if self.is_closed() {
            drop(callbacks);
            f(self);
        } else {
            callbacks.push(Box::new(f));
        }
    }

    pub(crate) fn take_close_callbacks(&self) -> Vec<CloseCallback> {
        std::mem::take(&mut *lock(&self.0.on_close))
    }

    /// Whether two handles are the same session.
    pub fn ptr_eq(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.0.id)
            .field("uid", &self.uid())
            .field("closed", &self.is_closed())
            .finish()
    }
}
