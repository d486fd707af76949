//! [`Client`]: a connected Pitaya session issuing requests and notifies.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use pitaya_codec::{HandshakeResponse, Message, ResumeRequest};
use pitaya_serialize::SerializerKind;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::driver::{Conn, Driver};
use crate::shared::{Outgoing, Shared};
use crate::transport;
use crate::{ClientError, ClientOptions, CloseReason, Endpoint, Events, Pushes, handshake};

/// Packets that may wait for the writer task before senders are slowed down.
const OUTGOING_QUEUE: usize = 1024;

/// A connection to a Pitaya frontend, after a successful handshake.
///
/// Cheap to clone: clones share the connection, so requests can be issued concurrently
/// from many tasks; each waits for its own response. A task spawned on the current Tokio
/// runtime does the I/O: it reads (responses, pushes, heartbeats, kick) and writes
/// (requests, notifies, heartbeats every `sys.heartbeat`). The connection closes when
/// [`close`](Self::close) is called, when the server ends it, or when the last clone is
/// dropped.
///
/// # Session resume
/// With [`ClientOptions::resume`] set and a token granted by the server
/// ([`resume_token`](Self::resume_token)), a connection that drops (I/O error, end of
/// stream, heartbeat timeout, [`cut_connection`](Self::cut_connection)) does not end the
/// client: it reconnects to the same address with backoff while the session's ttl lasts
/// and resumes the session (`docs/resume.md`). Meanwhile [`is_closed`](Self::is_closed)
/// stays false, requests in flight keep waiting and new ones are queued (all within their
/// timeout). Resumed, each request gets exactly one answer (replayed by the server or to
/// its re-sent packet) and pushes continue in order, none missing or twice. Given a fresh
/// session instead, requests in flight fail with [`ClientError::SessionLost`]. Watch
/// [`events`](Self::events) to learn of drops, resumes and fresh sessions. A kick, a
/// protocol error or a local close still end the client at once; a resume that fails ends
/// it with [`CloseReason::ResumeFailed`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.shutdown(CloseReason::Local);
    }
}

impl Client {
    /// Connects to `addr` (see [`Endpoint`] for the forms it takes), performs the
    /// handshake and starts the reader and writer tasks.
    ///
    /// The handshake response may be zlib- or gzip-compressed without a flag; it must
    /// carry code 200. Heartbeats that arrive before it are counted and skipped.
    ///
    /// Must be called from within a Tokio runtime (the tasks are spawned on it).
    ///
    /// # Errors
    /// [`ClientError::InvalidAddress`], then whatever [`connect_to`](Self::connect_to)
    /// returns.
    pub async fn connect(addr: &str, opts: ClientOptions) -> Result<(Client, Pushes), ClientError> {
        let endpoint = addr.parse::<Endpoint>()?;
        Self::connect_to(&endpoint, opts).await
    }

    /// Connects to a parsed [`Endpoint`], as [`connect`](Self::connect).
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when TCP connect, TLS, WebSocket upgrade and handshake
    /// response together take longer than [`ClientOptions::connect_timeout`];
    /// [`ClientError::Connect`], [`ClientError::TlsConfig`], [`ClientError::Tls`],
    /// [`ClientError::WebSocket`] for the transport; [`ClientError::HandshakeRejected`]
    /// when the code is not 200; [`ClientError::Handshake`] for any other handshake failure.
    ///
    /// Cancel safety: dropping the future closes the half-open connection; nothing leaks.
    pub async fn connect_to(
        endpoint: &Endpoint,
        opts: ClientOptions,
    ) -> Result<(Client, Pushes), ClientError> {
        let ask = opts.resume.as_ref().map(|_| ResumeRequest::Ask);
        let setup = async {
            let (mut source, mut sink) = transport::dial(endpoint, &opts).await?;
            let session = handshake::perform(&mut source, &mut sink, &opts, ask).await?;
            Ok::<_, ClientError>((source, sink, session))
        };
        let (source, sink, session) = tokio::time::timeout(opts.connect_timeout, setup)
            .await
            .map_err(|_| ClientError::Timeout)??;
        tracing::debug!(%endpoint, response = ?session.response, "pitaya handshake done");
        let conn = Conn::new(source, sink, &session);
        Ok(Self::start(conn, session, endpoint.clone(), opts))
    }

    fn start(
        conn: Conn,
        session: handshake::Session,
        endpoint: Endpoint,
        opts: ClientOptions,
    ) -> (Client, Pushes) {
        let (outgoing, queue) = mpsc::channel(OUTGOING_QUEUE);
        // tokio panics on a zero capacity; a channel of one still delivers pushes.
        let (push_tx, push_rx) = mpsc::channel(opts.push_buffer.max(1));
        let shared = Arc::new(Shared::new(
            outgoing,
            session.codec,
            session.serializer,
            session.response,
            opts.request_timeout,
            session.heartbeats,
            opts.resume.clone(),
        ));
        let driver = Driver { shared: shared.clone(), queue, pushes: push_tx, endpoint, opts };
        let tasks = vec![tokio::spawn(driver.run(conn))];
        let client = Client { inner: Arc::new(Inner { shared, tasks: Mutex::new(tasks) }) };
        (client, Pushes::new(push_rx))
    }

    /// The server's handshake response: heartbeat interval, serializer, route dictionary.
    pub fn handshake_response(&self) -> &HandshakeResponse {
        &self.inner.shared.handshake
    }

    /// The serializer the server announced, when Pitaya knows its name.
    pub fn serializer(&self) -> Option<SerializerKind> {
        self.handshake_response().sys.serializer.parse().ok()
    }

    /// Sends a Request on `route` and waits up to [`ClientOptions::request_timeout`] for
    /// its Response. Ids start at 1 and never repeat on a connection (0 would mean
    /// "no response" to Pitaya).
    ///
    /// The route is sent as given (no validation, so tests can probe the server's) and as
    /// a dictionary code when the dictionary holds it and `use_dict` is on.
    ///
    /// # Errors
    /// - [`ClientError::Server`] for an error response (flag 0x20), its payload decoded
    ///   with the serializer from the handshake;
    /// - [`ClientError::Timeout`] when no response came in time. The server may still
    ///   process the request; a late response is discarded;
    /// - [`ClientError::Closed`] when the connection is or becomes closed;
    /// - [`ClientError::SessionLost`] (with resume) when the connection dropped and the
    ///   server started a fresh session instead of resuming;
    /// - [`ClientError::Encode`] for a route over 255 bytes or an oversized body;
    /// - [`ClientError::Protocol`] when an error payload does not decode.
    ///
    /// Cancel safety: dropping the future forgets the request (a response arriving later
    /// is discarded); it may or may not have been sent.
    pub async fn request(&self, route: &str, data: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        self.request_with_timeout(route, data, self.inner.shared.request_timeout).await
    }

    /// [`request`](Self::request) with its own timeout instead of the configured one.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub async fn request_with_timeout(
        &self,
        route: &str,
        data: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, ClientError> {
        let shared = &*self.inner.shared;
        let id = shared.next_id();
        let packet = shared.encode(&Message::request(id, route, data))?;
        let (waiter, reply) = oneshot::channel();
        let (mut pending, epoch) = shared.register(id, waiter)?;
        let exchange = async {
            let out = Outgoing { epoch, packet };
            shared.outgoing.send(out).await.map_err(|_| ClientError::Closed)?;
            // The sender is dropped, never completed, when the connection ends.
            reply.await.map_err(|_| ClientError::Closed)
        };
        // On timeout, dropping `pending` removes the waiter.
        let reply =
            tokio::time::timeout(timeout, exchange).await.map_err(|_| ClientError::Timeout)??;
        pending.disarm();
        shared.reply_result(reply)
    }

    /// Sends a Notify on `route`. Pitaya never answers notifies, not even with errors.
    ///
    /// `Ok` means the packet is queued for the writer, not that the server got it.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the connection is closed, [`ClientError::Timeout`] when
    /// the send queue stays full for the request timeout (the server stopped reading),
    /// [`ClientError::Encode`] for a route over 255 bytes or an oversized body.
    ///
    /// Cancel safety: dropping the future may or may not send the notify.
    pub async fn notify(&self, route: &str, data: impl Into<Bytes>) -> Result<(), ClientError> {
        let shared = &*self.inner.shared;
        if shared.is_closed() {
            return Err(ClientError::Closed);
        }
        let packet = shared.encode(&Message::notify(route, data))?;
        let out = Outgoing { epoch: shared.epoch(), packet };
        tokio::time::timeout(shared.request_timeout, shared.outgoing.send(out))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map_err(|_| ClientError::Closed)
    }

    /// Closes the connection: pending and later requests fail with
    /// [`ClientError::Closed`] at once, then the socket is shut down (TCP FIN, TLS
    /// close_notify, WebSocket close frame; nothing Pitaya-specific is sent).
    ///
    /// Waits (half a second at most) for the I/O task to finish; when several clones
    /// call it concurrently, only the first one waits. Also stops a resume in progress.
    pub async fn close(&self) {
        self.inner.shared.shutdown(CloseReason::Local);
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            // A task that panicked has nothing left to clean up.
            let _ = task.await;
        }
    }

    /// Whether the connection has ended, for whatever reason. With resume, a dropped
    /// connection that is being resumed does not count as ended.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closed()
    }

    /// Resolves once the connection has ended (local close, server close, kick, error);
    /// at once if it already has. Cancel safe.
    pub async fn closed(&self) {
        self.inner.shared.wait_closed().await;
    }

    /// Why the connection ended; `None` while it is open.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.inner.shared.close_reason()
    }

    /// Whether the server sent a Kick packet (`05 00 00 00`). The connection is closed
    /// by then.
    pub fn kicked(&self) -> bool {
        self.inner.shared.kicked()
    }

    /// Heartbeat packets received from the server, including those before the handshake
    /// response.
    pub fn server_heartbeats(&self) -> u64 {
        self.inner.shared.heartbeats()
    }

    /// Pushes dropped because the push channel was full (see [`Pushes`]).
    pub fn dropped_pushes(&self) -> u64 {
        self.inner.shared.dropped_pushes()
    }

    /// Responses that found no request waiting for them: answers to requests that timed
    /// out or were cancelled, or that no request ever asked for. Zero on a healthy
    /// connection where no request gave up; a resumed session that delivered an answer
    /// twice would show here.
    pub fn unmatched_responses(&self) -> u64 {
        self.inner.shared.unmatched_responses()
    }

    /// The session's resume token, when [`ClientOptions::resume`] is set and the server
    /// granted one (it changes on every resume and fresh session).
    pub fn resume_token(&self) -> Option<String> {
        self.inner.shared.resume.as_ref().and_then(|r| r.lock().token.clone())
    }

    /// How long the server keeps the session after a drop (the grant's `ttl`), when a
    /// token was granted.
    pub fn resume_ttl(&self) -> Option<Duration> {
        let resume = self.inner.shared.resume.as_ref()?;
        let state = resume.lock();
        state.token.as_ref().map(|_| state.ttl)
    }

    /// The resume counters `(received, sent)`: the server's Data packets read, and this
    /// client's Data packets written, on the current session (`docs/resume.md`,
    /// "Counting"). `None` without a granted token.
    pub fn resume_counters(&self) -> Option<(u64, u64)> {
        let resume = self.inner.shared.resume.as_ref()?;
        let state = resume.lock();
        state.token.as_ref()?;
        Some((resume.received.load(std::sync::atomic::Ordering::Acquire), state.replay.sent()))
    }

    /// Resume events (dropped, resumed, fresh session) from now on; see [`Events`]. Only
    /// a client with [`ClientOptions::resume`] ever sends any. Ends once the client has
    /// ended.
    pub fn events(&self) -> Events {
        Events::new(self.inner.shared.events.subscribe(), self.inner.shared.close_signal())
    }

    /// Abandons the current connection at once, without goodbye, as if the network had
    /// failed (for tests, tools and applications that know the network changed). With a
    /// granted resume token the client then resumes as after any drop (see
    /// [`events`](Self::events)); without, it ends with [`CloseReason::Io`]. Does nothing
    /// while the client is already reconnecting or closed.
    pub fn cut_connection(&self) {
        self.inner.shared.cut.send_modify(|n| *n += 1);
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.inner.shared;
        f.debug_struct("Client")
            .field("closed", &shared.is_closed())
            .field("close_reason", &shared.close_reason())
            .field("serializer", &shared.handshake.sys.serializer)
            .field("heartbeat", &shared.handshake.sys.heartbeat)
            .finish_non_exhaustive()
    }
}
