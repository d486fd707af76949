//! Session resume (`docs/resume.md`): a session whose client asked for a token outlives a
//! dropped connection for the ttl, numbering and keeping the Data packets it sends so that
//! the client's next connection can take it over with nothing lost.
//!
//! A resumable session's entity is the [`AgentEntity`] of the connection it started on
//! (its *home*); its [`Resume`] routes every packet through here: numbered and kept in the
//! log under one lock, then handed to whichever connection holds the session now (none
//! while the client is away). Sessions without a token never come here.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use pitaya_codec::ResumeGrant;
use pitaya_core::{Error, codes};
use pitaya_session::{Session, SessionPool};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::ResumeSettings;
use crate::agent::Queued;
use crate::control::{Control, Signal};
use crate::entity::{AgentEntity, Outgoing};

/// A Data packet of a resumable session, numbered when queued and kept for replay.
#[derive(Debug)]
pub(crate) struct Logged {
    pub(crate) seq: u64,
    pub(crate) packet: Bytes,
}

/// What a dropped connection leaves to the next one: the session's dispatch task (still
/// running the messages read before the drop, in order) and its count of them.
pub(crate) struct Parked {
    pub(crate) dispatcher: Option<(mpsc::Sender<Queued>, JoinHandle<()>)>,
    pub(crate) pending: Arc<AtomicUsize>,
}

/// The live tokens of a server's resumable sessions.
pub(crate) struct Registry {
    tokens: Mutex<HashMap<Arc<str>, Arc<Resume>>>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self { tokens: Mutex::default() }
    }

    fn insert(&self, token: Arc<str>, resume: &Arc<Resume>) {
        lock(&self.tokens).insert(token, resume.clone());
    }

    fn remove(&self, token: &str) {
        lock(&self.tokens).remove(token);
    }

    /// The session of `token`, while the token is valid.
    pub(crate) fn get(&self, token: &str) -> Option<Arc<Resume>> {
        lock(&self.tokens).get(token).cloned()
    }

    /// Closes every session waiting for its client (graceful shutdown does not wait out
    /// their ttls); connected ones close with their connections.
    pub(crate) fn close_away(&self) {
        let all: Vec<_> = lock(&self.tokens).values().cloned().collect();
        for resume in all {
            if resume.is_away() {
                resume.close(false);
            }
        }
    }
}

/// One resumable session's side of the contract.
pub(crate) struct Resume {
    settings: ResumeSettings,
    pool: SessionPool,
    registry: Arc<Registry>,
    /// The entity the session was created with, which queues through this.
    home: Weak<AgentEntity>,
    /// The highest number written to a connection (the client may have more only if the
    /// numbers are kept).
    written: AtomicU64,
    /// Woken when the session's connection lets go of it.
    detached: Notify,
    state: Mutex<State>,
}

struct State {
    /// The token a resume must present.
    token: Arc<str>,
    /// The token offered to a connection that resumed but has not sent its handshake ack
    /// yet, and that connection: the old token stays valid until the ack (docs/resume.md).
    offer: Option<(Arc<str>, Control)>,
    /// The session, until it ends; `None` after.
    session: Option<Session>,
    /// Numbers given to the session's Data packets so far.
    sent: u64,
    log: VecDeque<Arc<Logged>>,
    log_bytes: usize,
    /// The client's Data packets read by the connections that let go of the session.
    received: u64,
    /// The connection holding the session; `None` while the client is away.
    conn: Option<Arc<AgentEntity>>,
    /// Counts detaches and attaches, so a ttl timer knows whether its drop still stands.
    epoch: u64,
    parked: Option<Parked>,
    /// Ended for good: kicked, closed, expired, shut down.
    ended: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_token() -> Arc<str> {
    Arc::from(uuid::Uuid::new_v4().simple().to_string())
}

fn closed() -> Error {
    Error::new(codes::CLIENT_CLOSED_REQUEST, "connection closed")
}

/// Whole seconds, rounded up, as the handshake states the ttl.
pub(crate) fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)
}

impl Resume {
    /// Makes `session`, connected through `home`, resumable; registers its token.
    pub(crate) fn start(
        settings: ResumeSettings,
        pool: SessionPool,
        registry: Arc<Registry>,
        session: Session,
        home: &Arc<AgentEntity>,
    ) -> Arc<Self> {
        let token = new_token();
        let resume = Arc::new(Self {
            settings,
            pool,
            registry: registry.clone(),
            home: Arc::downgrade(home),
            written: AtomicU64::new(0),
            detached: Notify::new(),
            state: Mutex::new(State {
                token: token.clone(),
                offer: None,
                session: Some(session),
                sent: 0,
                log: VecDeque::new(),
                log_bytes: 0,
                received: 0,
                conn: Some(home.clone()),
                epoch: 0,
                parked: None,
                ended: false,
            }),
        });
        registry.insert(token, &resume);
        resume
    }

    /// What the handshake response says to a client given a token.
    pub(crate) fn grant(&self, resumed: Option<(bool, u64)>) -> ResumeGrant {
        let state = lock(&self.state);
        let token = match &state.offer {
            Some((offered, _)) if resumed.is_some_and(|(r, _)| r) => offered.to_string(),
            _ => state.token.to_string(),
        };
        ResumeGrant {
            received: resumed.and_then(|(r, m)| r.then_some(m)),
            resumed: resumed.map(|(r, _)| r),
            token,
            ttl: ttl_secs(self.settings.ttl),
        }
    }

    /// The home entity, while the session lives.
    pub(crate) fn home(&self) -> Option<Arc<AgentEntity>> {
        self.home.upgrade()
    }

    /// The connection holding the session now.
    pub(crate) fn conn(&self) -> Option<Arc<AgentEntity>> {
        lock(&self.state).conn.clone()
    }

    pub(crate) fn is_ended(&self) -> bool {
        lock(&self.state).ended
    }

    fn is_away(&self) -> bool {
        let state = lock(&self.state);
        state.conn.is_none() && !state.ended
    }

    /// Whether `conn` holds the session.
    pub(crate) fn is_held_by(&self, conn: &Arc<AgentEntity>) -> bool {
        lock(&self.state).conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn))
    }

    /// Numbers `packet`, keeps it and hands it to the connection holding the session. A
    /// connection that is closing is as good as none: the packet waits in the log.
    ///
    /// # Errors
    /// `PIT-499` when the session has ended, or just ended because the client, away,
    /// has more packets waiting than the log keeps.
    pub(crate) fn queue(&self, packet: Bytes) -> Result<(), Error> {
        let mut state = lock(&self.state);
        if state.ended {
            return Err(closed());
        }
        state.sent += 1;
        let logged = Arc::new(Logged { seq: state.sent, packet });
        state.log_bytes += logged.packet.len();
        state.log.push_back(logged.clone());
        let written = self.written.load(Ordering::Acquire);
        let mut lost = false;
        while state.log.len() > self.settings.buffer.max(1)
            || (state.log_bytes > self.settings.buffer_bytes && state.log.len() > 1)
        {
            let Some(old) = state.log.pop_front() else { break };
            state.log_bytes -= old.packet.len();
            // While the client is away, a packet it never got must not be dropped.
            lost |= state.conn.is_none() && old.seq > written;
        }
        if lost {
            drop(state);
            tracing::info!("resume buffer full while the client is away; closing its session");
            self.close(false);
            return Err(closed());
        }
        if let Some(conn) = state.conn.clone() {
            // Under the lock: numbers reach the connection in order. The connection never
            // waits here (what does not fit goes to its backlog), so the lock is short.
            if let Err(e) = conn.queue_now(Outgoing::Logged(logged)) {
                tracing::debug!(error = %e, "packet kept for the client's return");
            }
        }
        Ok(())
    }

    /// Notes that the packets up to `seq` were written to a connection.
    pub(crate) fn wrote(&self, seq: u64) {
        self.written.fetch_max(seq, Ordering::AcqRel);
    }

    /// Whether the client of `token`, having read `received` packets, can have the rest.
    fn can_continue(state: &State, received: u64) -> bool {
        if state.ended || received > state.sent {
            return false;
        }
        received == state.sent || state.log.front().is_some_and(|first| first.seq <= received + 1)
    }

    /// A connection whose handshake presents `token` with `received`: closes the
    /// connection still holding the session (a drop) and waits, at most `wait`, until it
    /// has let go; then offers a new token to `claimant` and returns how many of the
    /// client's packets the server read. `None`: the session cannot be continued (the
    /// token is stale, the packets are gone, it ended, the old connection did not let go).
    pub(crate) async fn take_over(
        self: &Arc<Self>,
        token: &str,
        received: u64,
        claimant: &Control,
        wait: Duration,
    ) -> Option<u64> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.detached.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = lock(&self.state);
                let valid = *state.token == *token
                    || state.offer.as_ref().is_some_and(|(t, _)| **t == *token);
                if !valid || !Self::can_continue(&state, received) {
                    return None;
                }
                match &state.conn {
                    Some(old) => old.control.signal(Signal::Close),
                    None => {
                        // A connection that resumed before and never acked is given up.
                        if let Some((offered, control)) = state.offer.take() {
                            control.signal(Signal::Close);
                            self.registry.remove(&offered);
                        }
                        let offered = new_token();
                        state.offer = Some((offered.clone(), claimant.clone()));
                        self.registry.insert(offered, self);
                        return Some(state.received);
                    }
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::info!("the connection holding the session did not let go in time");
                return None;
            }
        }
    }

    /// On the handshake ack of `claimant`'s connection `conn`: hands it the session, makes
    /// the offered token the only one, and queues the packets after `received` ahead of
    /// anything new. `None` when the session ended or was claimed by another connection
    /// meanwhile, or lost packets it would have replayed.
    pub(crate) fn attach(
        &self,
        conn: &Arc<AgentEntity>,
        claimant: &Control,
        received: u64,
    ) -> Option<(Session, Parked)> {
        let mut state = lock(&self.state);
        let ours = state.offer.as_ref().is_some_and(|(_, c)| c.same(claimant));
        if !ours
            || state.conn.is_some()
            || state.parked.is_none()
            || state.session.is_none()
            || !Self::can_continue(&state, received)
        {
            return None;
        }
        let (offered, _) = state.offer.take()?;
        let old = std::mem::replace(&mut state.token, offered);
        self.registry.remove(&old);
        for logged in state.log.iter().filter(|l| l.seq > received) {
            if conn.queue_now(Outgoing::Logged(logged.clone())).is_err() {
                break;
            }
        }
        state.conn = Some(conn.clone());
        state.epoch += 1;
        let parked = state.parked.take()?;
        let session = state.session.clone()?;
        Some((session, parked))
    }

    /// The connection `conn` lost the client: keeps the session for the ttl, with what
    /// the connection leaves. `false` when `conn` did not hold the session or it ended:
    /// the caller closes it as usual.
    pub(crate) fn detach(
        self: &Arc<Self>,
        conn: &Arc<AgentEntity>,
        parked: Parked,
        client_packets: u64,
    ) -> Result<(), Parked> {
        let epoch = {
            let mut state = lock(&self.state);
            let held = state.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn));
            if !held || state.ended {
                return Err(parked);
            }
            state.conn = None;
            state.received += client_packets;
            state.parked = Some(parked);
            state.epoch += 1;
            state.epoch
        };
        self.detached.notify_waiters();
        let me = self.clone();
        let ttl = self.settings.ttl;
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            me.expire(epoch);
        });
        Ok(())
    }

    fn expire(&self, epoch: u64) {
        let still_away = {
            let state = lock(&self.state);
            state.epoch == epoch && state.conn.is_none() && !state.ended
        };
        if still_away {
            tracing::debug!("resume ttl passed; closing the session");
            self.close(false);
        }
    }

    /// Ends the session for good: a connection holding it is told to close (kicked when
    /// `kick`) and closes the session as usual; a session away is closed here, its close
    /// callbacks run at once.
    pub(crate) fn close(&self, kick: bool) {
        let (conn, away) = {
            let mut state = lock(&self.state);
            if state.ended {
                return;
            }
            self.mark_ended(&mut state);
            let conn = state.conn.clone();
            let away = if conn.is_none() {
                state.log.clear();
                Some((state.session.take(), state.parked.take()))
            } else {
                None
            };
            (conn, away)
        };
        self.detached.notify_waiters();
        if let Some(conn) = conn {
            conn.control.signal(if kick { Signal::Kick } else { Signal::Close });
        }
        if let Some((session, parked)) = away {
            // Dropping the dispatcher's sender lets it finish the messages it has.
            drop(parked);
            if let Some(session) = session {
                self.pool.remove(&session);
            }
        }
    }

    /// Marks the session ended and forgets its tokens; a connection waiting to take it
    /// over is told to close.
    fn mark_ended(&self, state: &mut State) {
        state.ended = true;
        if let Some((offered, control)) = state.offer.take() {
            control.signal(Signal::Close);
            self.registry.remove(&offered);
        }
        self.registry.remove(&state.token);
    }

    /// Called by the connection holding the session when it ends it (not a drop):
    /// forgets the tokens and what was kept.
    pub(crate) fn end(&self) {
        let mut state = lock(&self.state);
        self.mark_ended(&mut state);
        state.log.clear();
        state.session = None;
        state.parked = None;
        // The connection's entity points back here: let both go.
        state.conn = None;
        drop(state);
        self.detached.notify_waiters();
    }
}
