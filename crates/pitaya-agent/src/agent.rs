//! [`serve`]: runs one connection from handshake to close.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use pitaya_acceptor::{Connection, PacketReader};
use pitaya_codec::{
    HandshakeRequest, HandshakeResponse, Message, MessageCodec, MessageType, Packet, PacketType,
    Route, RouteDict,
};
use pitaya_core::Error;
use pitaya_serialize::Serializer;
use pitaya_session::{Session, SessionPool};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::AgentConfig;
use crate::control::{Control, Signal, closing};
use crate::dispatch::{ClientMessage, Dispatch};
use crate::entity::{AgentEntity, Outgoing};
use crate::writer::WriterTask;

const HEARTBEAT: &[u8] = &[0x03, 0x00, 0x00, 0x00];
const SHUTTING_DOWN: &str = "server shutting down";

/// What every agent of a server shares.
pub struct AgentShared {
    config: AgentConfig,
    codec: MessageCodec,
    serializer: Arc<dyn Serializer>,
    pool: SessionPool,
    dispatch: Arc<dyn Dispatch>,
    dispatch_limit: Arc<Semaphore>,
    handshake_ok: Bytes,
    handshake_rejected: Bytes,
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
        let response = |code| {
            let body = HandshakeResponse::new(
                code,
                config.heartbeat,
                dict.to_sorted_map(),
                serializer.name(),
            )
            .encode();
            let mut out = BytesMut::new();
            // A handshake response is a few hundred bytes per dictionary entry: a
            // dictionary large enough to overflow a packet is a configuration error
            // caught at start-up by the facade.
            let _ = pitaya_codec::encode_packet(PacketType::Handshake, &body, &mut out);
            out.freeze()
        };
        Self {
            handshake_ok: response(pitaya_codec::handshake::CODE_OK),
            handshake_rejected: response(pitaya_codec::handshake::CODE_BAD_REQUEST),
            codec: MessageCodec::new().with_dict(dict).with_data_compression(compression),
            serializer,
            pool,
            dispatch,
            dispatch_limit: Arc::new(Semaphore::new(max_concurrent_handlers.max(1))),
            shutdown: watch::Sender::new(false),
            config,
        }
    }

    /// Starts a graceful shutdown of every agent: they stop reading, let the messages
    /// already received run and answer, flush, then close.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// The session pool.
    pub fn pool(&self) -> &SessionPool {
        &self.pool
    }
}

/// A running agent's handle (reserved for metrics and admin; the session is the usual
/// handle).
#[derive(Debug, Clone)]
pub struct Agent {
    /// The connection's session.
    pub session: Session,
}

/// Runs `conn` until it closes: handshake, heartbeats, dispatch, writes. Returns once the
/// connection is closed and the session removed from the pool (its close callbacks run).
pub async fn serve(conn: Connection, shared: Arc<AgentShared>) {
    let Connection { reader, writer, remote_addr, .. } = conn;
    let (tx, rx) = mpsc::channel(shared.config.outgoing_capacity.max(1));
    let control = Control::new();
    let entity = Arc::new(AgentEntity {
        tx: tx.clone(),
        control: control.clone(),
        remote: remote_addr,
        write_timeout: shared.config.write_timeout,
    });
    let session = shared.pool.create(entity.clone());
    let span = tracing::debug_span!("agent", session = session.id(), remote = %remote_addr);
    let _enter = span.enter();
    tracing::debug!("connection accepted");

    let writer = tokio::spawn(
        WriterTask {
            writer,
            rx,
            control: control.clone(),
            codec: shared.codec.clone(),
            serializer: shared.serializer.clone(),
            write_timeout: shared.config.write_timeout,
            max_batch: shared.config.max_write_batch,
        }
        .run(),
    );
    let (dispatch_tx, dispatch_rx) = mpsc::channel(shared.config.dispatch_capacity.max(1));
    let dispatcher =
        tokio::spawn(dispatch_loop(dispatch_rx, session.clone(), entity.clone(), shared.clone()));

    let mut state = ReaderState {
        shared: &shared,
        session: &session,
        entity: &entity,
        dispatch_tx,
        phase: Phase::Start,
        remote: remote_addr,
    };
    let reason = state.run(reader, &control).await;
    tracing::debug!(%reason, "connection closing");
    drop(state);
    drop(tx);
    if reason == SHUTTING_DOWN {
        // Nothing lost silently: requests already read get their answers before the
        // connection closes, within the write timeout.
        let _ = tokio::time::timeout(shared.config.write_timeout, dispatcher).await;
    } else {
        // The client is gone or misbehaved: running handlers cannot answer any more and
        // finish in the background.
        drop(dispatcher);
    }
    control.signal(Signal::Close);
    let _ = writer.await;
    shared.pool.remove(&session);
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

struct ReaderState<'a> {
    shared: &'a AgentShared,
    session: &'a Session,
    entity: &'a AgentEntity,
    dispatch_tx: mpsc::Sender<Queued>,
    phase: Phase,
    remote: SocketAddr,
}

impl ReaderState<'_> {
    /// Reads until the connection must close; returns why.
    async fn run(&mut self, mut reader: PacketReader, control: &Control) -> &'static str {
        let mut signals = control.subscribe();
        let mut shutdown = self.shared.shutdown.subscribe();
        let heartbeat = self.shared.config.heartbeat;
        // Go's ticker starts at accept, before any handshake (spec §1.6).
        let period = if heartbeat.is_zero() { Duration::from_secs(3600) } else { heartbeat };
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let handshake_deadline = Instant::now() + self.shared.config.handshake_timeout;
        let mut last_packet = Instant::now();
        loop {
            tokio::select! {
                biased;
                _ = closing(&mut signals) => return "closed by the server",
                () = flag_set(&mut shutdown) => return SHUTTING_DOWN,
                packet = reader.read() => {
                    let packet = match packet {
                        Ok(Some(packet)) => packet,
                        Ok(None) => return "client closed the connection",
                        Err(e) => {
                            tracing::info!(error = %e, "bad input from client; closing");
                            return "bad packet";
                        }
                    };
                    // Any packet counts as liveness (spec §1.5).
                    last_packet = Instant::now();
                    match self.handle_packet(packet, &mut signals).await {
                        Next::Continue => {}
                        Next::Close(reason) => return reason,
                    }
                    // Time spent waiting for our own dispatch queue is not the client's silence.
                    last_packet = last_packet.max(Instant::now());
                }
                _ = tokio::time::sleep_until(handshake_deadline), if self.phase != Phase::Working => {
                    tracing::info!("handshake not completed in time; closing");
                    return "handshake timeout";
                }
                now = ticker.tick(), if !heartbeat.is_zero() => {
                    if now.duration_since(last_packet) > 2 * heartbeat {
                        tracing::debug!("no packet for two heartbeat intervals; closing");
                        return "heartbeat timeout";
                    }
                    // Never block the reader on a full queue: a client too slow to take a
                    // heartbeat will be closed by the write timeout anyway.
                    let _ = self.entity.tx.try_send(Outgoing::Packet(Bytes::from_static(HEARTBEAT)));
                }
            }
        }
    }

    async fn handle_packet(
        &mut self,
        packet: Packet,
        signals: &mut watch::Receiver<Signal>,
    ) -> Next {
        match packet.kind {
            PacketType::Handshake => self.handshake(&packet.body).await,
            PacketType::HandshakeAck => {
                // Go accepts an ack in any state, which skips the handshake validators
                // (spec §1.5); an ack before a handshake is ignored here.
                if self.phase == Phase::Handshaked {
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
            PacketType::Data => self.data(packet.body, signals).await,
        }
    }

    async fn handshake(&mut self, body: &[u8]) -> Next {
        let accepted = HandshakeRequest::decode(body)
            .map_err(|e| Error::bad_request(e.to_string()))
            .and_then(|hs| {
                self.shared.pool.validate_handshake(self.session, &hs)?;
                Ok(hs)
            });
        match accepted {
            Ok(hs) => {
                self.session.set_handshake(hs);
                let ip =
                    if self.remote.to_string().matches(':').count() > 1 { "ipv6" } else { "ipv4" };
                let _ = self.session.set("ipversion", ip);
                self.phase = Phase::Handshaked;
                match self.entity.enqueue(Outgoing::Packet(self.shared.handshake_ok.clone())).await
                {
                    Ok(()) => Next::Continue,
                    Err(_) => Next::Close("cannot answer the handshake"),
                }
            }
            Err(e) => {
                tracing::info!(error = %e, "handshake rejected");
                let _ = self
                    .entity
                    .enqueue(Outgoing::Packet(self.shared.handshake_rejected.clone()))
                    .await;
                Next::Close("handshake rejected")
            }
        }
    }

    async fn data(&mut self, body: Bytes, signals: &mut watch::Receiver<Signal>) -> Next {
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
        let queued = match Route::parse(&msg.route) {
            Ok(route) => {
                Queued::Message(ClientMessage { route, id: msg.id, is_request, data: msg.data })
            }
            // Spec §1.8: a request gets PIT-400 with Go's text, a notify nothing. The
            // answer waits its turn behind the requests before it.
            Err(e) if is_request && msg.id != 0 => {
                Queued::Reject { id: msg.id, error: Error::bad_request(e.to_string()) }
            }
            Err(_) => return Next::Continue,
        };
        tokio::select! {
            biased;
            _ = closing(signals) => Next::Close("closed by the server"),
            sent = self.dispatch_tx.send(queued) => match sent {
                Ok(()) => Next::Continue,
                Err(_) => Next::Close("dispatcher stopped"),
            },
        }
    }
}

/// An item of a session's dispatch queue.
enum Queued {
    /// A message for the application.
    Message(ClientMessage),
    /// A request answered with an error without reaching the application.
    Reject { id: u64, error: Error },
}

/// Resolves once the flag is true. Cancel-safe; returns no guard, so it can sit in a
/// `select!` whose other arms await.
async fn flag_set(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Runs the session's messages one at a time, in arrival order.
async fn dispatch_loop(
    mut rx: mpsc::Receiver<Queued>,
    session: Session,
    entity: Arc<AgentEntity>,
    shared: Arc<AgentShared>,
) {
    while let Some(queued) = rx.recv().await {
        let msg = match queued {
            Queued::Message(msg) => msg,
            Queued::Reject { id, error } => {
                let body = shared.serializer.encode_error(&error.to_payload());
                let _ = entity.enqueue(Outgoing::Message(Message::error_response(id, body))).await;
                continue;
            }
        };
        let (id, is_request) = (msg.id, msg.is_request);
        let result = {
            // The semaphore is never closed, so acquire only fails if it were.
            let _permit = shared.dispatch_limit.acquire().await;
            // Handlers catch their own panics; this also covers pipeline layers and
            // extractors, so that a panic fails one request, never the session's queue.
            let call =
                AssertUnwindSafe(async { shared.dispatch.dispatch(session.clone(), msg).await });
            match call.catch_unwind().await {
                Ok(result) => result,
                Err(_) => Err(Error::unknown("internal error: request processing panicked")),
            }
        };
        if !is_request || id == 0 {
            if let Err(e) = result {
                tracing::debug!(error = %e, "notify handler failed");
            }
            continue;
        }
        let outgoing = match result {
            Ok(body) => Message::response(id, body.unwrap_or_default()),
            Err(e) => Message::error_response(id, shared.serializer.encode_error(&e.to_payload())),
        };
        if let Err(e) = entity.enqueue(Outgoing::Message(outgoing)).await {
            tracing::debug!(error = %e, id, "response dropped: connection closed");
        }
    }
}
