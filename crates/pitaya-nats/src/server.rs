//! [`NatsRpcServer`]: receives RPCs, bind announcements and per-user pushes and kicks over
//! NATS and hands them to an [`RpcHandler`] (spec §6.2, §6.3, §8.5).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pitaya_cluster::protos::BindMsg;
use pitaya_cluster::{DieSignal, RpcHandler, RpcServer, Server, UserSubscription};
use pitaya_config::model::NatsServerConfig;
use pitaya_core::{BoxFuture, Error};
use prost::Message;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::connection::{ConnSettings, Connection};
use crate::ordered::{Deliver, deliver_in_order};
use crate::requests::{Dispatch, serve_requests};
use crate::subjects::{bindings_subject, check_subject, server_subject};
use crate::users::Users;

/// How long [`RpcServer::stop`] lets accepted requests run and their replies go out, and
/// how long it lets pushes being delivered finish, before it abandons them. A caller that
/// uses the default 5 s timeout has given up by then anyway.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Capacity of each subscription's channel inside async-nats. Every subscription is read
/// by a task that moves its messages at once into a queue of the configured size, so this
/// only absorbs scheduling delays; what overflows it is counted too.
pub(crate) const INTAKE_CAPACITY: usize = 4096;

/// The RPC server of one server: its own NATS connection (spec §6.1) holding the
/// subscriptions to `pitaya/servers/<type>/<id>`, `pitaya/<type>/bindings` and, on a
/// frontend, the push and kick subjects of each bound uid.
///
/// Requests are served concurrently, at most `services` at once, with up to
/// `buffer.messages` more waiting; beyond that they are dropped and counted
/// ([`Self::dropped_messages`]), as Go's NATS client drops a slow consumer's messages.
/// Pushes and kicks of one user are delivered one at a time in arrival order, with up to
/// `buffer.push` waiting per user; different users do not wait for each other.
pub struct NatsRpcServer {
    conn: Arc<Connection>,
    me: Arc<Server>,
    services: usize,
    messages: usize,
    users: Arc<Users>,
    dropped: Arc<AtomicU64>,
    load: Arc<crate::requests::QueueLoad>,
    life: tokio::sync::Mutex<Life>,
}

enum Life {
    Idle,
    Running(Running),
    Stopped,
}

/// Dropping the senders stops the tasks.
struct Running {
    stop_requests: oneshot::Sender<()>,
    requests: JoinHandle<()>,
    stop_bindings: oneshot::Sender<()>,
    bindings: JoinHandle<()>,
}

impl NatsRpcServer {
    /// Connects to `config.connect` with the options of spec §6.1, retrying the first
    /// connection up to `maxreconnectionretries` times. Nothing is subscribed until
    /// [`RpcServer::start`]. If the connection is later lost for good, `die` is raised; a
    /// clean close is only logged. With a negative `maxreconnectionretries` it waits until
    /// a server answers. A `services` of 0 is taken as 1.
    ///
    /// # Errors
    /// `PIT-000` with the NATS error text when the URL is invalid or no server could be
    /// reached.
    pub async fn connect(
        config: &NatsServerConfig,
        me: Arc<Server>,
        die: DieSignal,
    ) -> Result<Self, Error> {
        let dropped = Arc::new(AtomicU64::new(0));
        let settings = ConnSettings::from(config);
        let conn = Connection::open(&settings, "rpc server", die, Some(dropped.clone())).await?;
        let conn = Arc::new(conn);
        let users = Users::new(conn.clone(), me.server_type.clone(), config.buffer.push.get());
        if config.services == 0 {
            tracing::warn!("rpc server: services is 0; serving one request at a time");
        }
        Ok(Self {
            conn,
            me,
            services: config.services.max(1),
            messages: config.buffer.messages.get(),
            users: Arc::new(users),
            dropped,
            load: Arc::default(),
            life: tokio::sync::Mutex::new(Life::Idle),
        })
    }

    /// Requests dropped since connecting: the buffer of `buffer.messages` waiting requests
    /// was full, or the NATS client could not hand a message over in time. Go reports the
    /// same figure as the `dropped_messages` gauge.
    pub fn dropped_messages(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Pushes and kicks dropped since connecting because a user's buffer of `buffer.push`
    /// messages was full.
    pub fn dropped_user_messages(&self) -> u64 {
        self.users.dropped()
    }
}

impl RpcServer for NatsRpcServer {
    /// Subscribes `pitaya/servers/<type>/<id>` (no queue group) and `pitaya/<type>/bindings`
    /// and starts serving. Resolves once the NATS server has both subscriptions, so a
    /// request sent afterwards finds a responder.
    ///
    /// Requests that are not a `protos.Request`, or have no `msg`, are dropped with a
    /// warning and no reply, so their caller times out (spec §6.3). Otherwise
    /// `msg.reply` is set from the NATS reply subject and the handler's `Response` is
    /// published there. A `BindMsg` goes to [`RpcHandler::handle_bind`]; its errors are
    /// logged.
    ///
    /// # Errors
    /// When called twice or after `stop`, or when the subscriptions fail.
    fn start(&self, handler: Arc<dyn RpcHandler>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let mut life = self.life.lock().await;
            match *life {
                Life::Idle => {}
                Life::Running(_) => return Err(Error::unknown("rpc server: already started")),
                Life::Stopped => return Err(Error::unknown("rpc server: stopped")),
            }
            let requests_subject = server_subject(&self.me.server_type, &self.me.id);
            let bindings_subject = bindings_subject(&self.me.server_type);
            check_subject(&requests_subject)?;
            check_subject(&bindings_subject)?;
            let client = &self.conn.client;
            let requests = client.subscribe(requests_subject).await.map_err(Error::from)?;
            let bindings = client.subscribe(bindings_subject).await.map_err(Error::from)?;
            self.conn.sync().await;
            self.users.start(handler.clone());

            let dispatch = Dispatch {
                handler: handler.clone(),
                client: client.clone(),
                services: self.services,
                capacity: self.messages,
                dropped: self.dropped.clone(),
                load: self.load.clone(),
                session_hash: foldhash::fast::RandomState::default(),
            };
            let (stop_requests, stop) = oneshot::channel();
            let requests = tokio::spawn(serve_requests(requests, dispatch, stop));
            let (stop_bindings, stop) = oneshot::channel();
            let bindings = tokio::spawn(deliver_in_order(
                bindings,
                self.messages,
                bind_deliverer(handler),
                stop,
                Arc::default(),
                "bindings",
            ));
            *life = Life::Running(Running { stop_requests, requests, stop_bindings, bindings });
            Ok(())
        })
    }

    /// Subscribes `pitaya/<this type>/user/<uid>/push` and `.../kick` and delivers what
    /// arrives to [`RpcHandler::handle_push`] and [`RpcHandler::handle_kick`], in order.
    /// Resolves once the NATS server has the subscriptions. Further calls for a uid
    /// already subscribed only count a holder; NATS unsubscribes when the last returned
    /// [`UserSubscription`] drops, and nothing is delivered after that.
    ///
    /// # Errors
    /// Before `start` or after `stop`, when the uid cannot be part of a NATS subject
    /// (whitespace, control characters, an empty or wildcard token), or when subscribing
    /// fails.
    fn subscribe_user<'a>(
        &'a self,
        uid: &'a str,
    ) -> BoxFuture<'a, Result<UserSubscription, Error>> {
        Box::pin(self.users.subscribe(uid))
    }

    /// Stops receiving (unsubscribes), lets the requests already accepted run and their
    /// replies go out, lets the pushes being delivered finish, all within
    /// [`STOP_TIMEOUT`], aborts what is left, and closes the connection after writing out
    /// what it buffered. No task of this server outlives it. Idempotent.
    /// Whether the NATS connection is up (not reconnecting, not closed).
    fn is_connected(&self) -> bool {
        self.conn.is_up()
    }

    /// `true`: the answer goes to the request's own reply subject, as Go's backend
    /// `ResponseMID` publishes it.
    fn answers_early(&self) -> bool {
        true
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut life = self.life.lock().await;
            match std::mem::replace(&mut *life, Life::Stopped) {
                Life::Stopped => return,
                Life::Idle => {}
                Life::Running(running) => {
                    let Running { stop_requests, requests, stop_bindings, bindings } = running;
                    drop((stop_requests, stop_bindings));
                    // The request task bounds its own drain by STOP_TIMEOUT; the margin
                    // only guards against a bug there.
                    join_bounded(requests, STOP_TIMEOUT + Duration::from_secs(1), "requests").await;
                    join_bounded(bindings, STOP_TIMEOUT, "bindings").await;
                }
            }
            self.users.close(STOP_TIMEOUT).await;
            self.conn.close().await;
        })
    }

    fn dropped_messages(&self) -> u64 {
        // Requests and per-user pushes and kicks alike: Go's gauge counts every message
        // its server connection dropped.
        NatsRpcServer::dropped_messages(self) + self.dropped_user_messages()
    }

    fn load(&self) -> pitaya_cluster::RpcServerLoad {
        let waiting = self.load.waiting.load(Ordering::Relaxed);
        let running = self.load.running.load(Ordering::Relaxed);
        pitaya_cluster::RpcServerLoad {
            request_queue_free: Some(self.messages.saturating_sub(waiting)),
            workers: Some((running, self.services)),
        }
    }
}

async fn join_bounded(mut task: JoinHandle<()>, bound: Duration, what: &'static str) {
    match tokio::time::timeout(bound, &mut task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(what, error = %e, "rpc server: task failed"),
        Err(_) => {
            tracing::warn!(what, "rpc server: task still running at stop; aborted");
            task.abort();
            let _aborted = task.await;
        }
    }
}

fn bind_deliverer(handler: Arc<dyn RpcHandler>) -> Deliver<async_nats::Message> {
    Box::new(move |msg| match BindMsg::decode(msg.payload) {
        Ok(bind) => {
            let delivery = handler.handle_bind(bind);
            Some(Box::pin(async move {
                if let Err(e) = delivery.await {
                    tracing::warn!(error = %e, "rpc server: bind announcement failed");
                }
            }))
        }
        Err(e) => {
            tracing::warn!(error = %e, "rpc server: undecodable bind announcement dropped");
            None
        }
    })
}
