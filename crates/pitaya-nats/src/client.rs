//! [`NatsRpcClient`]: sends RPCs, pushes, kicks and bind announcements over NATS
//! (spec §6.3, §8.4, §8.5).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Subject;
use async_nats::client::RequestErrorKind;
use bytes::Bytes;
use pitaya_cluster::protos::{BindMsg, KickMsg, Push, Request, Response};
use pitaya_cluster::{DieSignal, RpcClient, Server, Unreachable, UnreachableKind};
use pitaya_config::model::NatsClientConfig;
use pitaya_core::{BoxFuture, Context, Error};
use prost::Message;

use crate::connection::{ConnSettings, Connection};
use crate::subjects::{
    bindings_subject, check_subject, server_subject, user_kick_subject, user_push_subject,
};
use pitaya_cluster::gate::Gate;

/// Go's text for a request nobody is subscribed to (spec §6.3).
const NO_RESPONDERS: &str = "nats: no responders available for request";

/// The RPC client of one server: its own NATS connection (spec §6.1), which holds only the
/// reply-inbox subscription that the first request creates.
///
/// Every operation is bounded: a call by its effective timeout, a publish by the
/// configured request timeout (NATS buffers publishes while it reconnects, and a full
/// buffer would otherwise block). After [`RpcClient::stop`] every operation fails.
pub struct NatsRpcClient {
    conn: Connection,
    me: Arc<Server>,
    request_timeout: Duration,
    in_flight: Gate,
    /// Each target's checked request subject by server id (with its type), so that a
    /// call neither formats nor checks it again.
    subjects: std::sync::Mutex<HashMap<String, (String, Subject)>>,
}

/// At most this many targets' subjects are kept; past it the cache starts over (servers
/// come and go, the live ones are back on their next call).
const SUBJECTS_KEPT: usize = 1024;

impl NatsRpcClient {
    /// Connects to `config.connect` with the options of spec §6.1, retrying the first
    /// connection up to `maxreconnectionretries` times. `me` is the server the client
    /// speaks for (the `server` of a `PIT-408`, the `fid` of a `BindMsg`). If the
    /// connection is later lost for good (reconnection attempts exhausted), `die` is
    /// raised; a clean close is only logged. With a negative `maxreconnectionretries` it
    /// waits until a server answers.
    ///
    /// # Errors
    /// `PIT-000` with the NATS error text when the URL is invalid or no server could be
    /// reached.
    pub async fn connect(
        config: &NatsClientConfig,
        me: Arc<Server>,
        die: DieSignal,
    ) -> Result<Self, Error> {
        let conn = Connection::open(&ConnSettings::from(config), "rpc client", die, None).await?;
        Ok(Self {
            conn,
            me,
            request_timeout: config.request_timeout,
            in_flight: Gate::default(),
            subjects: std::sync::Mutex::default(),
        })
    }

    /// `pitaya/servers/<type>/<id>` of `target`, checked.
    fn request_subject(&self, target: &Server) -> Result<Subject, Error> {
        let mut kept = self.subjects.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((server_type, subject)) = kept.get(&target.id) {
            if *server_type == target.server_type {
                return Ok(subject.clone());
            }
        }
        let subject = server_subject(&target.server_type, &target.id);
        check_subject(&subject)?;
        let subject = Subject::from(subject);
        if kept.len() >= SUBJECTS_KEPT {
            kept.clear();
        }
        kept.insert(target.id.clone(), (target.server_type.clone(), subject.clone()));
        Ok(subject)
    }

    async fn publish(&self, subject: String, payload: Vec<u8>) -> Result<(), Error> {
        check_subject(&subject)?;
        let _pass = self.in_flight.enter().ok_or_else(stopped)?;
        let publish = self.conn.client.publish(subject, Bytes::from(payload));
        match tokio::time::timeout(self.request_timeout, publish).await {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::unknown("nats: timeout publishing: the connection is down")),
        }
    }
}

impl RpcClient for NatsRpcClient {
    /// `true`: the first poll of a call reaches async-nats' command queue (or its fair
    /// wait for room) before anything else can wait, and that queue is written to the
    /// socket in order.
    fn orders_on_first_poll(&self) -> bool {
        true
    }

    /// Whether the NATS connection is up (not reconnecting, not closed).
    fn is_connected(&self) -> bool {
        self.conn.is_up()
    }

    /// Sends `req` to `pitaya/servers/<type>/<id>` and waits for the `Response`.
    ///
    /// The timeout is the caller's `reqTimeout`, or the configured `requesttimeout`, which
    /// is then written into the context (spec §6.3); the context becomes `req.metadata`.
    /// Cancel-safe: dropping the future abandons the request.
    ///
    /// # Errors
    /// - `PIT-408` `rpc client: request timeout` with Go's metadata when no answer came in
    ///   time, including while NATS is unreachable;
    /// - `PIT-000` `nats: no responders available for request` when nobody serves the
    ///   subject, marked [`Unreachable`] (a local source; the wire form is Go's);
    /// - `PIT-500` when the context's `reqTimeout` is not a Go duration string;
    /// - `PIT-000` when the reply is not a `Response`, the subject is invalid, or the client
    ///   is stopped.
    fn call(
        &self,
        target: &Server,
        mut ctx: Context,
        mut req: Request,
    ) -> BoxFuture<'_, Result<Response, Error>> {
        let timeout = pitaya_cluster::context::effective_timeout(&mut ctx, self.request_timeout);
        req.metadata = ctx.to_bytes();
        let subject = self.request_subject(target);
        let target_id = target.id.clone();
        Box::pin(async move {
            let timeout = timeout?;
            let subject = subject?;
            let _pass = self.in_flight.enter().ok_or_else(stopped)?;
            // One bound for the whole request, so async-nats' own timer is off (`None`, not
            // its client default): unlike async-nats' timeout, which only starts once the
            // request is queued, this one also covers a command queue that is full while
            // disconnected.
            let request =
                async_nats::Request::new().payload(Bytes::from(req.encode_to_vec())).timeout(None);
            let route = req.msg.map(|m| m.route).unwrap_or_default();
            let timed_out =
                || pitaya_cluster::timeout_error(timeout, &route, &self.me.id, &target_id);
            let reply =
                tokio::time::timeout(timeout, self.conn.client.send_request(subject, request))
                    .await
                    .map_err(|_| timed_out())?;
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) => {
                    return Err(match e.kind() {
                        // Not raised with async-nats' timer off; mapped like ours anyway.
                        RequestErrorKind::TimedOut => timed_out(),
                        // Nobody is subscribed to the target's subject: the request was
                        // delivered to no one, a sign the target is gone.
                        RequestErrorKind::NoResponders => Error::unknown(NO_RESPONDERS)
                            .with_source(Unreachable::new(UnreachableKind::NoResponders)),
                        RequestErrorKind::Other => Error::from(e),
                    });
                }
            };
            Response::decode(reply.payload).map_err(|e| {
                Error::unknown(format!("rpc client: undecodable response: {e}")).with_source(e)
            })
        })
    }

    /// Publishes `push` on `pitaya/<frontend_type>/user/<uid>/push`, whether or not anybody
    /// holds the uid (spec §8.4). `frontend_id` is not needed over NATS.
    ///
    /// # Errors
    /// `PIT-000` when the subject is invalid, the client is stopped, or the message could
    /// not be queued within the request timeout.
    fn send_push<'a>(
        &'a self,
        frontend_type: &'a str,
        _frontend_id: Option<&'a str>,
        push: Push,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let subject = user_push_subject(frontend_type, &push.uid);
        Box::pin(self.publish(subject, push.encode_to_vec()))
    }

    /// Publishes `kick` on `pitaya/<frontend_type>/user/<uid>/kick`.
    ///
    /// # Errors
    /// As [`RpcClient::send_push`].
    fn send_kick<'a>(
        &'a self,
        frontend_type: &'a str,
        kick: KickMsg,
    ) -> BoxFuture<'a, Result<(), Error>> {
        let subject = user_kick_subject(frontend_type, &kick.user_id);
        Box::pin(self.publish(subject, kick.encode_to_vec()))
    }

    /// Publishes `BindMsg{uid, fid: <this server's id>}` on `pitaya/<this type>/bindings`
    /// (spec §8.5).
    ///
    /// # Errors
    /// As [`RpcClient::send_push`].
    /// nats-server delivers one subject's messages to every subscriber in the order it
    /// received them, and echoes a connection's own messages back to it (the default).
    fn session_binds_echo_in_order(&self) -> bool {
        true
    }

    fn broadcast_session_bind<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        let bind = BindMsg { uid: uid.to_owned(), fid: self.me.id.clone() };
        let subject = bindings_subject(&self.me.server_type);
        Box::pin(async move {
            self.publish(subject, bind.encode_to_vec()).await?;
            // Flushed before the bind completes: the client then learns of its bind only
            // after nats-server has the announcement, so a second login it makes on
            // another frontend is not overtaken by this announcement and kicked.
            match tokio::time::timeout(self.request_timeout, self.conn.client.flush()).await {
                Ok(result) => result.map_err(|e| Error::unknown(format!("nats: flush: {e}"))),
                Err(_) => Err(Error::unknown("nats: timeout flushing: the connection is down")),
            }
        })
    }

    /// Refuses new operations, waits for the calls and publishes in flight (each is
    /// bounded by its own timeout, the wait by the configured request timeout), writes
    /// out what is buffered and closes the connection. Idempotent.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if !self.in_flight.is_closed() {
                // A caller's reqTimeout may exceed the configured one; those calls are
                // abandoned when the connection closes.
                if !self.in_flight.close_and_wait(self.request_timeout).await {
                    tracing::warn!("rpc client: calls still in flight at stop");
                }
            }
            self.conn.close().await;
        })
    }
}

fn stopped() -> Error {
    Error::unknown("rpc client: stopped")
}
