//! The connection driver: one task per client that runs the reader and the writer of the
//! current connection and, for a resumable session, reconnects and resumes after a drop
//! (`docs/resume.md`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use pitaya_codec::ResumeRequest;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::handshake::{self, Session};
use crate::replay::Backoff;
use crate::shared::{Outgoing, Resume, Shared};
use crate::transport::{self, PacketSink, PacketSource};
use crate::{ClientError, ClientOptions, CloseReason, Endpoint, Push, ResumeEvent, reader, writer};

/// How long the goodbye (FIN, close_notify, WebSocket close) may take.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// One established connection, after its handshake.
pub(crate) struct Conn {
    pub(crate) source: PacketSource,
    pub(crate) sink: PacketSink,
    /// The heartbeat interval to use; zero for none.
    pub(crate) heartbeat: Duration,
}

impl Conn {
    pub(crate) fn new(source: PacketSource, sink: PacketSink, session: &Session) -> Self {
        Self { source, sink, heartbeat: session.heartbeat }
    }

    /// Ends the connection politely, within [`CLOSE_GRACE`].
    async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_GRACE, self.sink.close()).await;
    }
}

/// How a connection ended.
enum End {
    /// [`Client::close`](crate::Client::close) or the last handle dropped.
    Local,
    /// For good: kick, protocol violation.
    Final(CloseReason),
    /// The network failed or the server went away: resumable, when the session is.
    Dropped(CloseReason),
}

impl End {
    fn of(reason: CloseReason) -> Self {
        match reason {
            CloseReason::Local => Self::Local,
            CloseReason::ServerClosed | CloseReason::HeartbeatTimeout | CloseReason::Io(_) => {
                Self::Dropped(reason)
            }
            other => Self::Final(other),
        }
    }
}

pub(crate) struct Driver {
    pub(crate) shared: Arc<Shared>,
    pub(crate) queue: mpsc::Receiver<Outgoing>,
    pub(crate) pushes: mpsc::Sender<Push>,
    pub(crate) endpoint: Endpoint,
    pub(crate) opts: ClientOptions,
}

impl Driver {
    /// Runs connections until the client ends; always leaves the shared state closed.
    pub(crate) async fn run(mut self, mut conn: Conn) {
        let mut resend = Vec::new();
        loop {
            let end = self.run_conn(&mut conn, resend).await;
            let reason = match end {
                End::Local => {
                    self.shared.shutdown(CloseReason::Local);
                    conn.close().await;
                    return;
                }
                End::Final(reason) => reason,
                End::Dropped(reason) if self.resumable() => {
                    tracing::debug!(%reason, "pitaya connection dropped, resuming");
                    // Abandoned without goodbye: the server sees the drop either way.
                    drop(conn);
                    self.shared.event(ResumeEvent::Dropped { reason: reason.clone() });
                    match self.reconnect(&reason).await {
                        Some((next, packets)) => {
                            conn = next;
                            resend = packets;
                            continue;
                        }
                        None => return,
                    }
                }
                End::Dropped(reason) => reason,
            };
            self.shared.shutdown(reason);
            conn.close().await;
            return;
        }
    }

    fn resumable(&self) -> bool {
        self.shared.resume.as_ref().is_some_and(|r| r.lock().token.is_some())
    }

    /// Runs the reader and the writer until one of them ends, the client closes, or
    /// [`Client::cut_connection`](crate::Client::cut_connection) is called.
    async fn run_conn(&mut self, conn: &mut Conn, resend: Vec<Bytes>) -> End {
        let shared = &*self.shared;
        let mut closed = shared.close_signal();
        // Only cuts from now on count: one made while reconnecting has nothing to cut.
        let mut cut = shared.cut.subscribe();
        let reader = reader::run(&mut conn.source, shared, &self.pushes, conn.heartbeat);
        let writer = writer::run(&mut conn.sink, &mut self.queue, shared, conn.heartbeat, resend);
        tokio::select! {
            biased;
            _ = closed.wait_for(|closed| *closed) => End::Local,
            _ = cut.changed() => End::Dropped(CloseReason::Io("connection cut by the client".into())),
            reason = reader => End::of(reason),
            reason = writer => End::of(reason),
        }
    }

    /// Reconnects with backoff until the session's ttl has passed, and resumes. `None`
    /// when the client ended meanwhile (closed locally, or the resume failed: then the
    /// shared state is shut down with [`CloseReason::ResumeFailed`]).
    async fn reconnect(&mut self, dropped: &CloseReason) -> Option<(Conn, Vec<Bytes>)> {
        let shared = self.shared.clone();
        let Some(resume) = shared.resume.as_ref() else {
            // `run` checked that the session is resumable; stay closed-safe regardless.
            shared.shutdown(dropped.clone());
            return None;
        };
        let ttl = resume.lock().ttl;
        let deadline = Instant::now() + ttl;
        let mut backoff = Backoff::new(resume.options.backoff_initial, resume.options.backoff_max);
        let mut closed = shared.close_signal();
        loop {
            let token = resume.lock().token.clone();
            let Some(token) = token else {
                shared.shutdown(dropped.clone());
                return None;
            };
            let received = resume.received.load(Ordering::Acquire);
            let request = ResumeRequest::Resume { token, received };
            let result = tokio::select! {
                biased;
                _ = closed.wait_for(|closed| *closed) => return None,
                result = self.attempt(request) => result,
            };
            let error = match result {
                Ok((source, sink, session)) => {
                    return self.continue_session(
                        resume,
                        Conn::new(source, sink, &session),
                        session,
                    );
                }
                Err(ClientError::HandshakeRejected { code }) => {
                    shared.shutdown(CloseReason::ResumeFailed(format!(
                        "the server rejected the resume handshake with code {code} (the connection had dropped: {dropped})"
                    )));
                    return None;
                }
                Err(e) => e,
            };
            let now = Instant::now();
            if now >= deadline {
                shared.shutdown(CloseReason::ResumeFailed(format!(
                    "no reconnect within the session ttl ({ttl:?}) after the connection dropped ({dropped}); last attempt: {error}"
                )));
                return None;
            }
            tracing::debug!(%error, "pitaya resume attempt failed");
            let delay = backoff.next_delay().min(deadline - now);
            tokio::select! {
                biased;
                _ = closed.wait_for(|closed| *closed) => return None,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// Dials and performs a resume handshake, within the connect timeout.
    async fn attempt(
        &self,
        request: ResumeRequest,
    ) -> Result<(PacketSource, PacketSink, Session), ClientError> {
        let setup = async {
            let (mut source, mut sink) = transport::dial(&self.endpoint, &self.opts).await?;
            let session =
                handshake::perform(&mut source, &mut sink, &self.opts, Some(request)).await?;
            Ok::<_, ClientError>((source, sink, session))
        };
        tokio::time::timeout(self.opts.connect_timeout, setup)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    /// Applies the server's answer to a resume handshake: resumed (the packets to send
    /// again) or fresh (requests in flight fail, counting restarts).
    fn continue_session(
        &self,
        resume: &Resume,
        conn: Conn,
        session: Session,
    ) -> Option<(Conn, Vec<Bytes>)> {
        let shared = &*self.shared;
        shared.add_heartbeats(session.heartbeats);
        let grant = session.response.sys.resume;
        match grant {
            Some(grant) if grant.resumed == Some(true) => {
                let server_read = grant.received.unwrap_or(0);
                let mut state = resume.lock();
                match state.replay.resend_after(server_read) {
                    Ok(resend) => {
                        state.grant(Some(&grant));
                        drop(state);
                        tracing::debug!(
                            server_read,
                            resend = resend.len(),
                            "pitaya session resumed"
                        );
                        shared.event(ResumeEvent::Resumed {
                            resent: resend.len() as u64,
                            token: grant.token,
                        });
                        Some((conn, resend))
                    }
                    Err(e) => {
                        drop(state);
                        shared.shutdown(CloseReason::ResumeFailed(format!(
                            "the server resumed the session but {e}"
                        )));
                        // Dropped without goodbye: to the server, a drop like any other.
                        drop(conn);
                        None
                    }
                }
            }
            grant => {
                {
                    let mut state = resume.lock();
                    state.replay.reset();
                    state.grant(grant.as_ref());
                }
                resume.received.store(0, Ordering::Release);
                let failed = shared.fresh_session();
                tracing::debug!(failed, "pitaya server started a fresh session");
                shared.event(ResumeEvent::FreshSession { failed, token: grant.map(|g| g.token) });
                Some((conn, Vec::new()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_broken_network_is_resumable() {
        let dropped = [
            CloseReason::ServerClosed,
            CloseReason::HeartbeatTimeout,
            CloseReason::Io("reset".into()),
        ];
        for reason in dropped {
            assert!(matches!(End::of(reason.clone()), End::Dropped(r) if r == reason));
        }
        for reason in [CloseReason::Kicked, CloseReason::Protocol("bad".into())] {
            assert!(matches!(End::of(reason.clone()), End::Final(r) if r == reason));
        }
        assert!(matches!(End::of(CloseReason::Local), End::Local));
    }
}
