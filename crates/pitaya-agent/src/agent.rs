//! [`serve`]: runs one connection from handshake to close.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use pitaya_acceptor::{ConnError, Connection, PacketReader};
use pitaya_codec::{
    HandshakeRequest, HandshakeResponse, Message, MessageCodec, MessageType, Packet, PacketType,
    Route, RouteDict,
};
use pitaya_core::{BoxFuture, Error};
use pitaya_serialize::Serializer;
use pitaya_session::{Session, SessionPool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tracing::Instrument;

use crate::AgentConfig;
use crate::control::{Control, Signal};
use crate::dispatch::{ClientMessage, Dispatch, Dispatched, Tracked};
use crate::entity::{AgentEntity, Outgoing};
use crate::resume::{Parked, Registry, Resume};
use crate::routes::ClientRoutes;
use crate::writer::WriterTask;

const SHUTTING_DOWN: &str = "server shutting down";
const CLIENT_CLOSED: &str = "client closed the connection";
const CONNECTION_LOST: &str = "connection lost";
const HEARTBEAT_TIMEOUT: &str = "heartbeat timeout";
const CLOSED_BY_SERVER: &str = "closed by the server";

/// Whether a connection that ended for `reason` lost its client (who may come back to a
/// resumable session) rather than being ended on purpose. A close by the server is one
/// when the session did not end with it: a write timeout, a failed write, or a newer
/// connection taking the session over (see [`Resume`]); a kick or `Session::close` end
/// the session first.
fn is_drop(reason: &str) -> bool {
    [CLIENT_CLOSED, CONNECTION_LOST, HEARTBEAT_TIMEOUT, CLOSED_BY_SERVER].contains(&reason)
}
/// Packets the reader takes one after another, without going back to its select; enough
/// for any pipelining client's burst, few enough that its timers are polled often.
const DRAIN_LIMIT: usize = 64;

/// What every agent of a server shares.
pub struct AgentShared {
    config: AgentConfig,
    /// Shared with every connection's entity, which encodes broadcasts with it.
    codec: Arc<MessageCodec>,
    serializer: Arc<dyn Serializer>,
    pool: SessionPool,
    dispatch: Arc<dyn Dispatch>,
    dispatch_limit: Arc<Semaphore>,
    max_concurrent_handlers: usize,
    handshake_ok: Bytes,
    handshake_rejected: Bytes,
    /// The handshake response a resume grant is added to.
    handshake_template: HandshakeResponse,
    /// Tokens of resumable sessions; `None` unless `pitaya.session.resume.enabled`.
    resume: Option<Arc<Registry>>,
    shutdown: watch::Sender<bool>,
}

impl AgentShared {
    /// Settings for agents that dispatch to `dispatch`, register sessions in `pool`,
    /// announce `serializer` and `dict` in the handshake, compress data messages when
    /// `compression` is on (never the handshake response: several pomelo clients cannot
    /// read it compressed), and run at most `max_concurrent_handlers` handlers at once
    /// across all sessions (`pitaya.concurrency.handler.dispatch`).
    pub fn new(
        config: AgentConfig,
        serializer: Arc<dyn Serializer>,
        dict: Arc<RouteDict>,
        compression: bool,
        pool: SessionPool,
        dispatch: Arc<dyn Dispatch>,
        max_concurrent_handlers: usize,
    ) -> Self {
        let template =
            HandshakeResponse::new(200, config.heartbeat, dict.to_sorted_map(), serializer.name());
        let response = |code| {
            let mut response = template.clone();
            response.code = code;
            let body = response.encode();
            let mut out = BytesMut::new();
            // A handshake response is a few dozen bytes per dictionary entry: one too
            // large for a packet would need a million routes.
            let _ = pitaya_codec::encode_packet(PacketType::Handshake, &body, &mut out);
            out.freeze()
        };
        Self {
            handshake_ok: response(pitaya_codec::handshake::CODE_OK),
            handshake_rejected: response(pitaya_codec::handshake::CODE_BAD_REQUEST),
            handshake_template: template,
            resume: config.resume.map(|_| Arc::new(Registry::new())),
            codec: Arc::new(MessageCodec::new().with_dict(dict).with_data_compression(compression)),
            serializer,
            pool,
            dispatch,
            dispatch_limit: Arc::new(Semaphore::new(max_concurrent_handlers.max(1))),
            max_concurrent_handlers: max_concurrent_handlers.max(1),
            shutdown: watch::Sender::new(false),
            config,
        }
    }

    /// How many messages of one session's lane may be in flight at once: a quarter of the
    /// handler slots (at least one).
    fn lane_depth(&self) -> usize {
        (self.max_concurrent_handlers / 4).max(1)
    }

    /// The session pool.
    pub fn pool(&self) -> &SessionPool {
        &self.pool
    }

    /// Handlers running now and the limit on them (`pitaya.concurrency.handler.dispatch`):
    /// the `busy_workers` and `total_workers` gauges of the `handler_dispatch` pool.
    pub fn handler_slots(&self) -> (usize, usize) {
        let free = self.dispatch_limit.available_permits();
        (self.max_concurrent_handlers.saturating_sub(free), self.max_concurrent_handlers)
    }

    /// Starts a graceful shutdown of every agent: they stop reading, let the messages
    /// already received run and answer, flush, then close.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
        self.close_away_sessions();
    }

    /// Closes, with their callbacks, the resumable sessions whose clients are away
    /// (`docs/resume.md`): a shutdown does not wait out their ttls.
    pub fn close_away_sessions(&self) {
        if let Some(registry) = &self.resume {
            registry.close_away();
        }
    }
}

/// A running agent's handle (reserved for metrics and admin; the session is the usual
/// handle).
#[derive(Debug, Clone)]
pub struct Agent {
    /// The connection's session.
    pub session: Session,
}

/// Runs `conn` until it closes: handshake, heartbeats, dispatch, writes. The future
/// resolves once the connection is closed and the session removed from the pool (its
/// close callbacks run).
///
/// Must be called within a Tokio runtime: it starts the connection's writer task at once.
///
/// Not an `async fn`: the setup runs here, so the returned future only holds what the
/// connection needs while it lives (an `async fn` would keep its arguments for the whole
/// connection, hundreds of bytes per client).
pub fn serve(conn: Connection, shared: Arc<AgentShared>) -> impl Future<Output = ()> + Send {
    let span = tracing::debug_span!("agent", remote = %conn.remote_addr);
    let Connection { mut reader, writer, remote_addr, .. } = conn;
    let (tx, rx) = crate::queue::channel(shared.config.outgoing_capacity.max(1));
    let control = Control::new();
    let pending = Arc::new(AtomicUsize::new(0));
    let client_routes =
        shared.config.compress_routes_only_if_client_does.then(|| ClientRoutes::new(&shared.codec));
    let entity = Arc::new(AgentEntity {
        tx,
        control: control.clone(),
        remote: remote_addr,
        write_timeout: shared.config.write_timeout,
        pending: pending.clone(),
        dispatch_capacity: shared.config.dispatch_capacity.max(1),
        client_routes: client_routes.clone(),
        codec: shared.codec.clone(),
        serializer: shared.serializer.clone(),
        backlog: std::sync::Mutex::default(),
        full_since_ms: std::sync::atomic::AtomicU64::new(0),
        resume: std::sync::OnceLock::new(),
    });
    let session = shared.pool.create(entity.clone());
    let writer = tokio::spawn(
        WriterTask {
            writer,
            rx,
            control: control.clone(),
            codec: MessageCodec::clone(&shared.codec),
            serializer: shared.serializer.clone(),
            handshake_ok: shared.handshake_ok.clone(),
            handshake_rejected: shared.handshake_rejected.clone(),
            write_timeout: shared.config.write_timeout,
            max_batch: shared.config.max_write_batch,
            client_routes,
            entity: entity.clone(),
            last_logged: std::cell::Cell::new(0),
        }
        .run()
        .instrument(span.clone()),
    );
    async move {
        tracing::debug!(session = session.id(), "connection accepted");
        let mut state = ReaderState {
            shared: &shared,
            session,
            entity: entity.clone(),
            conn: &entity,
            control: &control,
            dispatcher: None,
            pending,
            phase: Phase::Start,
            remote: remote_addr,
            heard: false,
            client_packets: 0,
            offer: None,
        };
        let reason = state.run(&mut reader).await;
        tracing::debug!(%reason, "connection closing");
        // A resume offered here and never acknowledged stays on offer: the client may not
        // know whether its ack arrived, and may come back with either token.
        drop(state.offer.take());
        // A resumable session held by this connection: kept for its client after a drop,
        // ended with the connection otherwise.
        if let Some(resume) = state.entity.resume.get().filter(|r| r.is_held_by(&entity)) {
            let mut kept = false;
            // A connection lost during a shutdown is not kept: shutdown waits for no ttl.
            if is_drop(reason) && !*shared.shutdown.borrow() {
                let parked =
                    Parked { dispatcher: state.dispatcher.take(), pending: state.pending.clone() };
                // Packets the rate limit dropped were read off the wire all the same.
                let read = state.client_packets + reader.dropped_data_by_rate_limit();
                match resume.detach(&entity, parked, read) {
                    Ok(()) => kept = true,
                    Err(parked) => state.dispatcher = parked.dispatcher,
                }
            }
            if kept {
                tracing::debug!(session = state.session.id(), %reason, "client away; session kept for resume");
                control.signal(Signal::Close);
                drop(reader);
                let _ = writer.await;
                return;
            }
            resume.end();
        }
        let dispatcher = state.dispatcher.take().map(|(tx, task)| {
            drop(tx);
            task
        });
        if let Some(task) = dispatcher {
            if reason == SHUTTING_DOWN {
                // Nothing lost silently: requests already read get their answers before
                // the connection closes, within the write timeout.
                let _ = tokio::time::timeout(shared.config.write_timeout, task).await;
            }
            // Otherwise the client is gone or misbehaved: running handlers cannot answer
            // any more and finish in the background.
        }
        control.signal(Signal::Close);
        drop(reader);
        let _ = writer.await;
        shared.pool.remove(&state.session);
    }
    .instrument(span)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Handshaked,
    Working,
}

/// What the reader does after a packet.
enum Next {
    Continue,
    Close(&'static str),
}

/// The answer being computed for one client message, guarded against panics: see
/// [`answer_of`].
type Running = futures_util::future::CatchUnwind<
    AssertUnwindSafe<BoxFuture<'static, Result<Option<Bytes>, Error>>>,
>;

/// An item of a session's dispatch queue.
pub(crate) enum Queued {
    /// A message whose handler has not started.
    Message(ClientMessage),
    /// A handler the reader started, which did not finish at once; it holds its slot of
    /// the concurrency limit.
    Running {
        id: u64,
        is_request: bool,
        answer: Running,
        tracked: Option<Tracked>,
        lane: Option<u64>,
        /// `None` for one started when the last slot had just gone: see `data`.
        _permit: Option<OwnedSemaphorePermit>,
    },
    /// A request answered with an error without reaching the application.
    Reject { id: u64, error: Error },
}

struct ReaderState<'a> {
    shared: &'a Arc<AgentShared>,
    /// The connection's session: the one it started with, or the one it resumed.
    session: Session,
    /// The session's entity: this connection's own, or, on a resumed session, the entity
    /// of the connection the session started on, which queues through its [`Resume`].
    entity: Arc<AgentEntity>,
    /// This connection's entity: its queue and writer.
    conn: &'a Arc<AgentEntity>,
    control: &'a Control,
    /// The session's dispatch task, started on the first message that has to wait: an
    /// idle connection costs no task and no queue.
    dispatcher: Option<(mpsc::Sender<Queued>, JoinHandle<()>)>,
    /// Items queued to the dispatcher and not yet answered.
    pending: Arc<AtomicUsize>,
    phase: Phase,
    remote: SocketAddr,
    /// Whether a packet arrived since the last heartbeat tick.
    heard: bool,
    /// Data packets read while holding a resumable session (`docs/resume.md`).
    client_packets: u64,
    /// A session this connection's handshake resumed, taken over on the handshake ack.
    offer: Option<Offer>,
}

/// A resume granted in the handshake and not yet acknowledged.
struct Offer {
    resume: Arc<Resume>,
    /// The server's packets the client said it had read.
    received: u64,
}

impl ReaderState<'_> {
    /// Handles the outcome of one [`PacketReader::read`].
    async fn on_read(&mut self, packet: Result<Option<Packet>, ConnError>) -> Next {
        let packet = match packet {
            Ok(Some(packet)) => packet,
            Ok(None) => return Next::Close(CLIENT_CLOSED),
            Err(e) if e.is_lost_connection() => {
                tracing::debug!(error = %e, "connection lost");
                return Next::Close(CONNECTION_LOST);
            }
            Err(e) => {
                tracing::info!(error = %e, "bad input from client; closing");
                return Next::Close("bad packet");
            }
        };
        // Any packet counts as liveness (spec §1.5), and so does time spent waiting for
        // our own dispatch queue, which handle_packet may do.
        self.heard = true;
        let next = self.handle_packet(packet).await;
        self.heard = true;
        next
    }

    /// Reads until the connection must close; returns why.
    async fn run(&mut self, reader: &mut PacketReader) -> &'static str {
        let control = self.control;
        let mut shutdown = self.shared.shutdown.subscribe();
        let closed = control.closing();
        let shutting_down = flag_set(&mut shutdown);
        // On the heap and dropped once the handshake is done: a timer is a few hundred
        // bytes that an established connection does not need.
        let mut handshake_deadline =
            Some(Box::pin(tokio::time::sleep(self.shared.config.handshake_timeout)));
        tokio::pin!(closed, shutting_down);
        let heartbeat = self.shared.config.heartbeat;
        // Go's ticker starts at accept, before any handshake (spec §1.6).
        let period = if heartbeat.is_zero() { Duration::from_secs(3600) } else { heartbeat };
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // Ticks in a row without a packet; Go closes once the last packet is more than two
        // intervals old at a tick, i.e. after two silent ticks.
        let mut silent_ticks = 0u32;
        loop {
            tokio::select! {
                biased;
                _ = &mut closed => return CLOSED_BY_SERVER,
                () = &mut shutting_down => return SHUTTING_DOWN,
                packet = reader.read() => {
                    if let Next::Close(reason) = self.on_read(packet).await {
                        return reason;
                    }
                    // Packets a pipelining client already sent are taken here, not through
                    // the select: each pass of the select polled both signal futures, which
                    // re-registered their wakers under a lock, about 220 instructions a
                    // message on the echo server (callgrind). The signals are still checked
                    // before every packet, by a plain read of their current values, and the
                    // run is bounded so the heartbeat ticker is never starved.
                    for _ in 0..DRAIN_LIMIT {
                        if self.control.current() != Signal::Open || *self.shared.shutdown.borrow() {
                            break;
                        }
                        // A read that cannot complete at once is dropped, which `read`
                        // allows (cancel safe), and the select above waits for it.
                        let Some(packet) = reader.read().now_or_never() else { break };
                        if let Next::Close(reason) = self.on_read(packet).await {
                            return reason;
                        }
                    }
                    if self.phase == Phase::Working {
                        handshake_deadline = None;
                    }
                }
                () = async { if let Some(d) = handshake_deadline.as_mut() { d.as_mut().await } },
                    if handshake_deadline.is_some() && self.phase != Phase::Working =>
                {
                    tracing::info!("handshake not completed in time; closing");
                    return "handshake timeout";
                }
                _ = ticker.tick(), if !heartbeat.is_zero() => {
                    silent_ticks = if std::mem::take(&mut self.heard) { 0 } else { silent_ticks + 1 };
                    if silent_ticks >= 2 {
                        tracing::debug!("no packet for two heartbeat intervals; closing");
                        return HEARTBEAT_TIMEOUT;
                    }
                    // Never block the reader on a full queue: a client too slow to take a
                    // heartbeat will be closed by the write timeout anyway.
                    let _ = self.conn.tx.try_send(Outgoing::Heartbeat);
                }
            }
        }
    }

    async fn handle_packet(&mut self, packet: Packet) -> Next {
        match packet.kind {
            // Boxed: rare, and its state would otherwise stay in the connection's task.
            PacketType::Handshake => Box::pin(self.handshake(&packet.body)).await,
            PacketType::HandshakeAck => {
                // Go accepts an ack in any state, which skips the handshake validators
                // (spec §1.5); an ack before a handshake is ignored here.
                if self.phase == Phase::Handshaked {
                    if let Some(offer) = self.offer.take() {
                        if !self.resume_session(offer) {
                            return Next::Close("resumed session no longer available");
                        }
                    }
                    self.phase = Phase::Working;
                    tracing::debug!("handshake acknowledged");
                } else {
                    tracing::debug!(phase = ?self.phase, "ignoring handshake ack");
                }
                Next::Continue
            }
            PacketType::Heartbeat | PacketType::Kick => Next::Continue,
            PacketType::Data if self.phase != Phase::Working => {
                tracing::info!("data before the handshake ack; closing");
                Next::Close("data before handshake ack")
            }
            PacketType::Data => {
                if self.entity.resume.get().is_some() {
                    self.client_packets += 1;
                }
                self.data(packet.body).await
            }
        }
    }

    /// Takes over the session `offer` resumed, on the client's handshake ack: its
    /// dispatcher (still running the messages read before the drop, which stay ahead of
    /// the new ones) and the packets the client missed, queued ahead of anything new.
    /// The session this connection started with was never the client's: discarded.
    fn resume_session(&mut self, offer: Offer) -> bool {
        let Some(home) = offer.resume.home() else { return false };
        let Some((session, parked)) = offer.resume.attach(self.conn, self.control, offer.received)
        else {
            return false;
        };
        let _ = self.conn.resume.set(offer.resume.clone());
        self.shared.pool.discard(&self.session);
        tracing::debug!(session = session.id(), "session resumed");
        self.session = session;
        self.entity = home;
        self.dispatcher = parked.dispatcher;
        self.pending = parked.pending;
        true
    }

    /// Answers a handshake that asked for resume (`settings` on): a token for a new
    /// session, or the old session's offer. Returns the response's packet.
    async fn resume_handshake(
        &mut self,
        registry: &Arc<Registry>,
        settings: crate::ResumeSettings,
        asked: &pitaya_codec::ResumeRequest,
    ) -> Bytes {
        let grant = match asked {
            pitaya_codec::ResumeRequest::Resume { token, received } => {
                let offered = match registry.get(token) {
                    Some(resume) => resume
                        .take_over(token, *received, self.control, self.shared.config.write_timeout)
                        .await
                        .map(|m| (resume, m)),
                    None => None,
                };
                match offered {
                    Some((resume, m)) => {
                        let grant = resume.grant(Some((true, m)));
                        self.offer = Some(Offer { resume, received: *received });
                        Some(grant)
                    }
                    None => None,
                }
            }
            pitaya_codec::ResumeRequest::Ask => None,
        };
        let grant = grant.unwrap_or_else(|| {
            let resume = Resume::start(
                settings,
                self.shared.pool.clone(),
                registry.clone(),
                self.session.clone(),
                self.conn,
            );
            let _ = self.conn.resume.set(resume.clone());
            let fresh = matches!(asked, pitaya_codec::ResumeRequest::Resume { .. });
            resume.grant(fresh.then_some((false, 0)))
        });
        let body = self.shared.handshake_template.clone().with_resume(grant).encode();
        let mut out = BytesMut::new();
        // As the other handshake responses: a few dozen bytes per dictionary entry.
        let _ = pitaya_codec::encode_packet(PacketType::Handshake, &body, &mut out);
        out.freeze()
    }

    async fn handshake(&mut self, body: &[u8]) -> Next {
        let accepted = HandshakeRequest::decode(body)
            .map_err(|e| Error::bad_request(e.to_string()))
            .and_then(|hs| {
                self.shared.pool.validate_handshake(&self.session, &hs)?;
                Ok(hs)
            });
        match accepted {
            Ok(hs) => {
                let asked = hs.sys.resume.clone();
                self.session.set_handshake(hs);
                let ip =
                    if self.remote.to_string().matches(':').count() > 1 { "ipv6" } else { "ipv4" };
                self.session.set_lazily("ipversion", ip);
                self.phase = Phase::Handshaked;
                let resumable = self.shared.resume.clone().zip(self.shared.config.resume);
                // A second handshake on a connection that already has a token is served
                // as Go serves it: resume is settled once per connection.
                let first = self.conn.resume.get().is_none() && self.offer.is_none();
                let response = match (resumable, asked) {
                    (Some((registry, settings)), Some(asked)) if first => {
                        let packet = self.resume_handshake(&registry, settings, &asked).await;
                        Outgoing::Shared(Arc::new(packet))
                    }
                    _ => Outgoing::Handshake { accepted: true },
                };
                match self.conn.enqueue(response).await {
                    Ok(()) => Next::Continue,
                    Err(_) => Next::Close("cannot answer the handshake"),
                }
            }
            Err(e) => {
                tracing::info!(error = %e, "handshake rejected");
                let _ = self.conn.enqueue(Outgoing::Handshake { accepted: false }).await;
                Next::Close("handshake rejected")
            }
        }
    }

    async fn data(&mut self, body: Bytes) -> Next {
        let flag = body.first().copied().unwrap_or_default();
        let msg = match self.shared.codec.decode(body) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::info!(error = %e, "undecodable message; closing");
                return Next::Close("bad message");
            }
        };
        let is_request = match msg.kind {
            MessageType::Request => true,
            MessageType::Notify => false,
            other => {
                tracing::debug!(kind = ?other, "ignoring a server-side message type sent by a client");
                return Next::Continue;
            }
        };
        // Before the dispatch, so that a push the handler sends already uses codes.
        if let Some(routes) = &self.entity.client_routes {
            routes.saw(flag);
        }
        let (id, data) = (msg.id, msg.data);
        let msg = match Route::parse_owned(msg.route) {
            Ok(route) => {
                let received = self.shared.dispatch.wants_receipt_time().then(quanta::Instant::now);
                ClientMessage { route, id, is_request, data, received }
            }
            // Spec §1.8: a request gets PIT-400 with Go's text, a notify nothing. The
            // answer waits its turn behind the requests before it.
            Err(e) if is_request && id != 0 => {
                let error = Error::bad_request(e.to_string());
                return self.queue(Queued::Reject { id, error }).await;
            }
            Err(_) => return Next::Continue,
        };
        // Fast path: with nothing of this session queued, the handler starts right here;
        // most handlers finish without waiting, and their answer then skips the dispatch
        // task entirely. Order is kept because nothing is ahead of this message.
        //
        // A handler that answers in its first poll takes no slot of the concurrency limit:
        // taking and giving one back went through the semaphore's lock, some 160
        // instructions a message on the echo server (callgrind). One that has to wait takes
        // its slot then; should the last slot have gone meanwhile (to another worker
        // thread), it runs without one, so the limit can be passed by one handler per
        // worker thread for as long as they wait.
        if self.pending.load(Ordering::Acquire) == 0
            && self.shared.dispatch_limit.available_permits() > 0
        {
            let (mut answer, tracked, lane) = start(self.shared, &self.session, msg);
            return match (&mut answer).now_or_never() {
                Some(result) => {
                    let result = finished(self.shared, tracked, result);
                    answer_client(self.shared, &self.entity, id, is_request, result).await;
                    Next::Continue
                }
                None => {
                    let permit = self.shared.dispatch_limit.clone().try_acquire_owned().ok();
                    let running =
                        Queued::Running { id, is_request, answer, tracked, lane, _permit: permit };
                    self.queue(running).await
                }
            };
        }
        self.queue(Queued::Message(msg)).await
    }

    /// Hands `item` to the session's dispatch task, starting it if needed. Waits for room
    /// (back-pressure on a client that sends faster than its handlers run) unless the
    /// connection is closing.
    async fn queue(&mut self, item: Queued) -> Next {
        let (tx, _) = self.dispatcher.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel(self.shared.config.dispatch_capacity.max(1));
            let task = tokio::spawn(
                dispatch_loop(
                    rx,
                    self.session.clone(),
                    self.entity.clone(),
                    self.shared.clone(),
                    self.pending.clone(),
                )
                .in_current_span(),
            );
            (tx, task)
        });
        self.pending.fetch_add(1, Ordering::AcqRel);
        match tx.try_send(item) {
            Ok(()) => Next::Continue,
            Err(mpsc::error::TrySendError::Closed(_)) => Next::Close("dispatcher stopped"),
            // Boxed for the same reason as the entity's slow path: keep the connection's
            // task small.
            Err(mpsc::error::TrySendError::Full(item)) => {
                Box::pin(wait_and_queue(tx.clone(), self.control.clone(), item)).await
            }
        }
    }
}

/// Waits for room in the dispatch queue unless the connection starts closing.
async fn wait_and_queue(tx: mpsc::Sender<Queued>, control: Control, item: Queued) -> Next {
    tokio::select! {
        biased;
        _ = control.closing() => Next::Close("closed by the server"),
        sent = tx.send(item) => match sent {
            Ok(()) => Next::Continue,
            Err(_) => Next::Close("dispatcher stopped"),
        },
    }
}

/// Starts the application's handling of `msg`, guarded so that a panic anywhere in it
/// (pipeline layers, extractors, the handler) fails this message only.
fn start(
    shared: &AgentShared,
    session: &Session,
    msg: ClientMessage,
) -> (Running, Option<Tracked>, Option<u64>) {
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| {
        shared.dispatch.dispatch_laned(session.clone(), msg)
    }));
    let Dispatched { answer, tracked, lane } = started.unwrap_or_else(|_| Dispatched {
        answer: Box::pin(std::future::ready(Err(panicked()))),
        tracked: None,
        lane: None,
    });
    (AssertUnwindSafe(answer).catch_unwind(), tracked, lane)
}

/// The result of a [`Running`] answer (a panic becomes a `PIT-000` error), told to the
/// dispatcher when it tracks the message.
fn finished(
    shared: &AgentShared,
    tracked: Option<Tracked>,
    polled: Result<Result<Option<Bytes>, Error>, Box<dyn std::any::Any + Send>>,
) -> Result<Option<Bytes>, Error> {
    let result = polled.unwrap_or_else(|_| Err(panicked()));
    if let Some(tracked) = tracked {
        // A panicking hook must not take the connection down with it.
        let outcome = result.as_ref().map(|_| ());
        let told = std::panic::catch_unwind(AssertUnwindSafe(|| {
            shared.dispatch.completed(tracked, outcome);
        }));
        if told.is_err() {
            tracing::error!("the dispatcher's completion hook panicked");
        }
    }
    result
}

fn panicked() -> Error {
    Error::unknown("internal error: request processing panicked")
}

/// Queues the answer to a message: one response per request with a non-zero id.
async fn answer_client(
    shared: &AgentShared,
    entity: &AgentEntity,
    id: u64,
    is_request: bool,
    result: Result<Option<Bytes>, Error>,
) {
    if !is_request || id == 0 {
        if let Err(e) = result {
            tracing::debug!(error = %e, "notify handler failed");
        }
        return;
    }
    let outgoing = match result {
        Ok(body) => Message::response(id, body.unwrap_or_default()),
        Err(e) => Message::error_response(id, shared.serializer.encode_error(&e.to_payload())),
    };
    if let Err(e) = entity.deliver(outgoing).await {
        tracing::debug!(error = %e, id, "response dropped: connection closed");
    }
}

/// Resolves once the flag is true. Cancel-safe; returns no guard, so it can sit in a
/// `select!` whose other arms await.
async fn flag_set(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// A message of a lane whose answer is awaited while the session's next messages start;
/// it holds its slot of the concurrency limit until answered.
struct InFlight {
    id: u64,
    is_request: bool,
    answer: Running,
    tracked: Option<Tracked>,
    _permit: Option<OwnedSemaphorePermit>,
}

type RunningResult = Result<Result<Option<Bytes>, Error>, Box<dyn std::any::Any + Send>>;

/// An answered [`InFlight`]: id, whether it was a request, its tracking note, its result.
type Landed = (u64, bool, Option<Tracked>, RunningResult);

impl Future for InFlight {
    type Output = Landed;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Landed> {
        let result = std::task::ready!(self.answer.poll_unpin(cx));
        std::task::Poll::Ready((self.id, self.is_request, self.tracked.take(), result))
    }
}

/// The messages of the current lane that are still being answered, oldest first.
///
/// Those woken since their last poll are polled in that order: a transport that queues a
/// call on its first poll may find its queue full, and then the calls waiting for room get
/// it in the order they asked (tokio's channels are fair), but each only takes its place
/// when polled again, so earlier calls must be polled before later ones for their
/// requests to leave in order. A message that was not woken is not polled: with a lane of
/// ten calls, polling all of them on every answer cost more than the answer itself.
struct Lane {
    lane: Option<u64>,
    flying: std::collections::VecDeque<(InFlight, Arc<WakeFlag>)>,
    /// The dispatch loop's waker, which every message's wake also wakes.
    parent: Arc<futures_util::task::AtomicWaker>,
}

/// Set when one in-flight message's future is woken; wakes the dispatch loop.
struct WakeFlag {
    woken: std::sync::atomic::AtomicBool,
    parent: Arc<futures_util::task::AtomicWaker>,
}

impl std::task::Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.parent.wake();
    }
}

impl Lane {
    fn new() -> Self {
        Self { lane: None, flying: std::collections::VecDeque::new(), parent: Arc::default() }
    }

    /// Adds a message, to be polled on the next [`Lane::next`].
    fn push(&mut self, flying: InFlight) {
        let flag = Arc::new(WakeFlag {
            woken: std::sync::atomic::AtomicBool::new(true),
            parent: self.parent.clone(),
        });
        self.flying.push_back((flying, flag));
    }

    /// Polls the woken messages in order and takes out the first one answered; `None`
    /// when the lane is empty.
    fn poll_landed(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Landed>> {
        if self.flying.is_empty() {
            return std::task::Poll::Ready(None);
        }
        // Registered before the flags are read: a wake in between is not lost.
        self.parent.register(cx.waker());
        for i in 0..self.flying.len() {
            let Some((flying, flag)) = self.flying.get_mut(i) else { break };
            if !flag.woken.swap(false, Ordering::AcqRel) {
                continue;
            }
            let waker = std::task::Waker::from(flag.clone());
            let mut own = std::task::Context::from_waker(&waker);
            if let std::task::Poll::Ready(landed) = std::pin::Pin::new(flying).poll(&mut own) {
                self.flying.remove(i);
                return std::task::Poll::Ready(Some(landed));
            }
        }
        std::task::Poll::Pending
    }

    async fn next(&mut self) -> Option<Landed> {
        std::future::poll_fn(|cx| self.poll_landed(cx)).await
    }
}

/// Runs the session's queued messages in arrival order: one at a time, except that the
/// messages of one lane (see [`Dispatched::lane`]) start without waiting for the answers
/// of the lane's earlier ones. A message outside the current lane starts only once every
/// earlier one is answered.
async fn dispatch_loop(
    mut rx: mpsc::Receiver<Queued>,
    session: Session,
    entity: Arc<AgentEntity>,
    shared: Arc<AgentShared>,
    pending: Arc<AtomicUsize>,
) {
    let mut lane = Lane::new();
    loop {
        let item = tokio::select! {
            biased;
            Some(done) = lane.next(), if !lane.flying.is_empty() => {
                land(done, &shared, &entity, &pending).await;
                continue;
            }
            item = rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
        };
        match item {
            Queued::Reject { id, error } => {
                drain(&mut lane, &shared, &entity, &pending).await;
                answer_client(&shared, &entity, id, true, Err(error)).await;
            }
            Queued::Running { id, is_request, answer, tracked, lane: l, _permit } => {
                // The reader starts a message only when nothing of the session is pending,
                // so the lane is empty here.
                if let Some(l) = l {
                    lane.lane = Some(l);
                    lane.push(InFlight { id, is_request, answer, tracked, _permit });
                    continue;
                }
                drain(&mut lane, &shared, &entity, &pending).await;
                let result = finished(&shared, tracked, answer.await);
                drop(_permit);
                answer_client(&shared, &entity, id, is_request, result).await;
            }
            Queued::Message(msg) => {
                let (id, is_request) = (msg.id, msg.is_request);
                let permit = loop {
                    // The semaphore is never closed. While waiting for a slot, the lane's
                    // answers are still taken: they may hold the slots.
                    if let Ok(p) = shared.dispatch_limit.clone().try_acquire_owned() {
                        break p;
                    }
                    tokio::select! {
                        biased;
                        Some(done) = lane.next(), if !lane.flying.is_empty() => {
                            land(done, &shared, &entity, &pending).await;
                        }
                        p = shared.dispatch_limit.clone().acquire_owned() => match p {
                            Ok(p) => break p,
                            Err(_) => return,
                        },
                    }
                };
                let (mut answer, tracked, l) = start(&shared, &session, msg);
                if l.is_none() || l != lane.lane {
                    drain(&mut lane, &shared, &entity, &pending).await;
                }
                // A lane holds at most a quarter of the handler slots, so that one
                // pipelining session, even stalled, leaves room for the others.
                if lane.flying.len() >= shared.lane_depth() {
                    if let Some(done) = lane.next().await {
                        land(done, &shared, &entity, &pending).await;
                    }
                }
                if let Some(l) = l {
                    // The first poll is what orders it within the lane.
                    if let Some(result) = (&mut answer).now_or_never() {
                        drop(permit);
                        let result = finished(&shared, tracked, result);
                        answer_client(&shared, &entity, id, is_request, result).await;
                    } else {
                        lane.lane = Some(l);
                        lane.push(InFlight {
                            id,
                            is_request,
                            answer,
                            tracked,
                            _permit: Some(permit),
                        });
                        continue;
                    }
                } else {
                    let result = finished(&shared, tracked, answer.await);
                    drop(permit);
                    answer_client(&shared, &entity, id, is_request, result).await;
                }
            }
        }
        // After the answer is queued, so that the reader's fast path cannot overtake it.
        pending.fetch_sub(1, Ordering::AcqRel);
    }
    drain(&mut lane, &shared, &entity, &pending).await;
}

/// Answers a message of a lane that completed; it no longer counts as pending.
async fn land(done: Landed, shared: &AgentShared, entity: &AgentEntity, pending: &AtomicUsize) {
    let (id, is_request, tracked, result) = done;
    let result = finished(shared, tracked, result);
    answer_client(shared, entity, id, is_request, result).await;
    pending.fetch_sub(1, Ordering::AcqRel);
}

/// Answers every message still in flight in `lane`, as each completes.
async fn drain(lane: &mut Lane, shared: &AgentShared, entity: &AgentEntity, pending: &AtomicUsize) {
    while let Some(done) = lane.next().await {
        land(done, shared, entity, pending).await;
    }
    lane.lane = None;
}
