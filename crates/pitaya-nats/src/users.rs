//! [`Users`]: the per-user push and kick subscriptions of a frontend (spec §6.2, §8.3),
//! counted per uid.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use pitaya_cluster::protos::{KickMsg, Push};
use pitaya_cluster::{RpcHandler, UserSubscription};
use pitaya_core::Error;
use prost::Message;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::connection::Connection;
use crate::ordered::{Deliver, deliver_in_order};
use crate::subjects::{check_subject, user_kick_subject, user_push_subject};

/// The user subscriptions of one server. One pair of NATS subscriptions and one delivery
/// task per uid, however many [`UserSubscription`]s hold it: a uid bound again on this
/// frontend before the old session's close releases it must not receive twice.
pub(crate) struct Users {
    conn: Arc<Connection>,
    server_type: String,
    capacity: usize,
    dropped: Arc<AtomicU64>,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    handler: Option<Arc<dyn RpcHandler>>,
    closed: bool,
    entries: HashMap<String, Entry>,
}

struct Entry {
    refs: usize,
    /// Dropping it stops the delivery task.
    _stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

enum UserMsg {
    Push(async_nats::Message),
    Kick(async_nats::Message),
}

impl Users {
    pub(crate) fn new(conn: Arc<Connection>, server_type: String, capacity: usize) -> Self {
        Self { conn, server_type, capacity, dropped: Arc::default(), inner: Mutex::default() }
    }

    /// Messages dropped because a user's buffer was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets where pushes and kicks go; subscriptions are refused until then.
    pub(crate) fn start(&self, handler: Arc<dyn RpcHandler>) {
        self.lock().handler = Some(handler);
    }

    /// Subscribes `uid`'s push and kick subjects for this server's type, or counts one
    /// more holder of an existing subscription. Resolves once NATS has the subscriptions.
    pub(crate) async fn subscribe(self: &Arc<Self>, uid: &str) -> Result<UserSubscription, Error> {
        let push_subject = user_push_subject(&self.server_type, uid);
        let kick_subject = user_kick_subject(&self.server_type, uid);
        check_subject(&push_subject)?;
        check_subject(&kick_subject)?;
        let handler = {
            let mut inner = self.lock();
            let handler = inner.usable()?;
            if let Some(entry) = inner.entries.get_mut(uid) {
                entry.refs += 1;
                return Ok(self.guard(uid));
            }
            handler
        };
        let push = self.conn.client.subscribe(push_subject).await.map_err(Error::from)?;
        let kick = self.conn.client.subscribe(kick_subject).await.map_err(Error::from)?;
        // A push sent once the bind completes must find the subscription.
        self.conn.sync().await;
        let mut inner = self.lock();
        inner.usable()?;
        if let Some(entry) = inner.entries.get_mut(uid) {
            // Another bind of the uid won the race; these subscriptions unsubscribe as
            // they drop.
            entry.refs += 1;
            return Ok(self.guard(uid));
        }
        let intake = futures_util::stream::select(push.map(UserMsg::Push), kick.map(UserMsg::Kick));
        let (stop_tx, stop) = oneshot::channel();
        let task = tokio::spawn(deliver_in_order(
            intake,
            self.capacity,
            deliverer(handler, uid.to_owned()),
            stop,
            self.dropped.clone(),
            "user messages",
        ));
        inner.entries.insert(uid.to_owned(), Entry { refs: 1, _stop: stop_tx, task });
        Ok(self.guard(uid))
    }

    /// Refuses new subscriptions, stops every delivery task and waits up to `bound` for
    /// the deliveries in progress.
    pub(crate) async fn close(&self, bound: Duration) {
        let entries = {
            let mut inner = self.lock();
            inner.closed = true;
            std::mem::take(&mut inner.entries)
        };
        let tasks: Vec<_> = entries.into_values().map(|e| e.task).collect();
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(bound, all).await.is_err() {
            tracing::warn!("nats: user deliveries still running at stop; aborted");
            aborts.iter().for_each(tokio::task::AbortHandle::abort);
        }
    }

    fn guard(self: &Arc<Self>, uid: &str) -> UserSubscription {
        let users: Weak<Self> = Arc::downgrade(self);
        let uid = uid.to_owned();
        UserSubscription::new(move || {
            if let Some(users) = users.upgrade() {
                users.release(&uid);
            }
        })
    }

    fn release(&self, uid: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get_mut(uid) {
            entry.refs = entry.refs.saturating_sub(1);
            if entry.refs == 0 {
                // Dropping the entry drops its stop sender: the task stops delivering and
                // its NATS subscriptions unsubscribe as they drop.
                inner.entries.remove(uid);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    fn usable(&self) -> Result<Arc<dyn RpcHandler>, Error> {
        if self.closed {
            return Err(Error::unknown("rpc server: stopped"));
        }
        self.handler.clone().ok_or_else(|| Error::unknown("rpc server: not started"))
    }
}

fn deliverer(handler: Arc<dyn RpcHandler>, uid: String) -> Deliver<UserMsg> {
    Box::new(move |msg| match msg {
        UserMsg::Push(m) => match Push::decode(m.payload) {
            Ok(push) => {
                let delivery = handler.handle_push(push);
                let uid = uid.clone();
                Some(Box::pin(async move {
                    if let Err(e) = delivery.await {
                        tracing::debug!(%uid, error = %e, "nats: push not delivered");
                    }
                }))
            }
            Err(e) => {
                tracing::warn!(%uid, error = %e, "nats: undecodable push dropped");
                None
            }
        },
        UserMsg::Kick(m) => match KickMsg::decode(m.payload) {
            Ok(kick) => {
                let delivery = handler.handle_kick(kick);
                let uid = uid.clone();
                Some(Box::pin(async move {
                    if let Err(e) = delivery.await {
                        tracing::debug!(%uid, error = %e, "nats: kick not delivered");
                    }
                }))
            }
            Err(e) => {
                tracing::warn!(%uid, error = %e, "nats: undecodable kick dropped");
                None
            }
        },
    })
}
