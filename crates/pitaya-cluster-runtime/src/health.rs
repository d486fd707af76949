//! Routing around servers that cannot be reached: a server whose last call failed at the
//! transport level (an [`Unreachable`](pitaya_cluster::Unreachable) error: NATS no
//! responders, gRPC `Unavailable` or no connection) is not chosen for new messages while
//! another server of its type is, and is probed with backoff until it answers.
//!
//! Go Pitaya keeps choosing a SIGKILLed server until its discovery lease expires (60 s by
//! default); here the first failed call takes it out of rotation.
//!
//! - The table ([`Health`]) is sans-IO: every method that needs the time takes `now`.
//! - A server leaves the table when it answers anything (a response, error responses
//!   included), when a probe is answered, or when discovery adds or removes it (a fresh
//!   registration starts healthy).
//! - A timeout is not proof of death (a slow handler or a saturated server times out
//!   too, and taking it out would push its load onto the others): it changes nothing.
//! - With no healthy server left of a type, every server of it is chosen as before: each
//!   call fails fast with the transport's error, or succeeds and brings the server back.
//! - The healthy case costs one atomic load per choice and per answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pitaya_cluster::protos::{self, Msg, MsgType, Response, RpcType};
use pitaya_cluster::{SdListener, Server, unreachable_kind};
use pitaya_core::context::{PEER_ID, PEER_SERVICE};
use pitaya_core::{Context, Error};

use crate::runtime::ClusterRuntime;

/// Wait before the first probe of a server that just failed.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two probes.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The `reqTimeout` a probe carries (the NATS client waits that long; the gRPC client
/// uses its own request timeout). Unanswered in time, the server stays out.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound on a whole probe, whatever the transport's timeout.
const PROBE_LIMIT: Duration = Duration::from_secs(3);
/// The short route of a probe: a user RPC to a `sys` remote no server has. Go and Rust
/// servers both answer it with a `PIT-404` error response, which proves the server
/// reads its subject (or accepts connections) and changes nothing on it.
const PROBE_SHORT_ROUTE: &str = "sys.probe";

/// Servers whose last call failed at the transport level, by id.
///
/// `unhealthy` mirrors the table's length and is read without the lock, so that the
/// healthy case never locks. It is a hint: a choice made while another thread records a
/// failure may still pick that server, which the next choice corrects.
#[derive(Debug, Default)]
pub(crate) struct Health {
    unhealthy: AtomicUsize,
    table: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the server was first found unreachable, for the logs.
    since: Instant,
    /// Wait after the next failed probe's predecessor; doubles up to [`MAX_BACKOFF`].
    backoff: Duration,
    /// When the server may be probed again.
    next_probe: Instant,
    /// A probe is in flight: no second one until it ends.
    probing: bool,
}

/// What [`Health::select`] decided for one choice.
#[derive(Debug)]
pub(crate) struct Selection {
    /// The servers the choice may pick: the healthy ones when there is any, else all.
    pub(crate) servers: Vec<Arc<Server>>,
    /// Servers out of rotation whose probe time has come (marked as being probed).
    pub(crate) probes: Vec<Arc<Server>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Health {
    /// Whether every server is healthy: one atomic load.
    pub(crate) fn all_healthy(&self) -> bool {
        self.unhealthy.load(Ordering::Acquire) == 0
    }

    /// Whether server `id` is out of rotation.
    pub(crate) fn is_unhealthy(&self, id: &str) -> bool {
        !self.all_healthy() && lock(&self.table).contains_key(id)
    }

    /// Splits the servers of one type for a choice at `now`: see [`Selection`]. When no
    /// server of the type is healthy nobody is probed: every call is a probe then.
    pub(crate) fn select(&self, servers: Vec<Arc<Server>>, now: Instant) -> Selection {
        if self.all_healthy() {
            return Selection { servers, probes: Vec::new() };
        }
        let mut table = lock(&self.table);
        let (healthy, out): (Vec<_>, Vec<_>) =
            servers.into_iter().partition(|s| !table.contains_key(&s.id));
        if healthy.is_empty() {
            return Selection { servers: out, probes: Vec::new() };
        }
        let mut probes = Vec::new();
        for server in out {
            if let Some(entry) = table.get_mut(&server.id) {
                if !entry.probing && now >= entry.next_probe {
                    entry.probing = true;
                    probes.push(server);
                }
            }
        }
        Selection { servers: healthy, probes }
    }

    /// A call to `id` failed at the transport level at `now`. Returns true when this
    /// takes the server out of rotation (it was healthy).
    ///
    /// A server already out counts the failure as a failed probe when its probe time has
    /// come (the calls that reach it while no other server of its type is healthy are
    /// its probes); earlier failures change nothing.
    pub(crate) fn failed(&self, id: &str, now: Instant) -> bool {
        let mut table = lock(&self.table);
        let newly = match table.get_mut(id) {
            Some(entry) => {
                if !entry.probing && now >= entry.next_probe {
                    entry.back_off(now);
                }
                false
            }
            None => {
                table.insert(
                    id.to_owned(),
                    Entry {
                        since: now,
                        backoff: FIRST_BACKOFF,
                        next_probe: now + FIRST_BACKOFF,
                        probing: false,
                    },
                );
                true
            }
        };
        self.unhealthy.store(table.len(), Ordering::Release);
        newly
    }

    /// A call to `id` ended in a local error at `now` (a timeout, most often): out of
    /// rotation until it answers a probe, which is due at once. Returns true when this
    /// takes the server out (it was healthy); a server already out is left as it is.
    ///
    /// A server that is only slow answers the probe and is back within its round trip; a
    /// dead one whose calls were all in flight when it died (so that none of them could
    /// see "no responders") is found by the probe instead of by the next client message.
    pub(crate) fn suspect(&self, id: &str, now: Instant) -> bool {
        let mut table = lock(&self.table);
        if table.contains_key(id) {
            return false;
        }
        table.insert(
            id.to_owned(),
            Entry { since: now, backoff: FIRST_BACKOFF / 2, next_probe: now, probing: false },
        );
        self.unhealthy.store(table.len(), Ordering::Release);
        true
    }

    /// Server `id` answered: back in rotation. Returns how long it was out, if it was.
    pub(crate) fn answered(&self, id: &str, now: Instant) -> Option<Duration> {
        if self.all_healthy() {
            return None;
        }
        let mut table = lock(&self.table);
        let entry = table.remove(id)?;
        self.unhealthy.store(table.len(), Ordering::Release);
        Some(now.saturating_duration_since(entry.since))
    }

    /// A probe of `id` ended at `now` without an answer: the next one waits twice as
    /// long as the last, up to [`MAX_BACKOFF`].
    pub(crate) fn probe_failed(&self, id: &str, now: Instant) {
        if let Some(entry) = lock(&self.table).get_mut(id) {
            entry.probing = false;
            entry.back_off(now);
        }
    }

    /// Drops what is known of `id` (it registered afresh, or left).
    pub(crate) fn forget(&self, id: &str) -> bool {
        if self.all_healthy() {
            return false;
        }
        let mut table = lock(&self.table);
        let removed = table.remove(id).is_some();
        self.unhealthy.store(table.len(), Ordering::Release);
        removed
    }
}

impl Entry {
    fn back_off(&mut self, now: Instant) {
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        self.next_probe = now + self.backoff;
    }
}

/// A registration seen through discovery resets the server's health: a server that
/// registers again (a new id after a restart, or the same id after its lease was lost)
/// starts healthy, and one that left is forgotten.
impl SdListener for Health {
    fn server_added(&self, server: &Arc<Server>) {
        if self.forget(&server.id) {
            tracing::info!(server = %server.id, server_type = %server.server_type, "server registered again: back in rotation");
        }
    }

    fn server_removed(&self, server: &Arc<Server>) {
        self.forget(&server.id);
    }
}

/// Health on the runtime's paths: the choice, the outcome of each call, the probes.
impl ClusterRuntime {
    /// The servers a choice among `servers` (all of one type) may pick: the healthy ones
    /// when there is any, else all of them. Starts the probes that are due.
    pub(crate) fn routable(&self, servers: Vec<Arc<Server>>) -> Vec<Arc<Server>> {
        if self.health.all_healthy() {
            return servers;
        }
        let Selection { servers, probes } = self.health.select(servers, Instant::now());
        for target in probes {
            self.spawn_probe(target);
        }
        servers
    }

    /// Whether the server `id` may be routed to without a new choice: false while it is
    /// out of rotation. For routing that remembers a server (sticky sessions).
    pub(crate) fn in_rotation(&self, id: &str) -> bool {
        !self.health.is_unhealthy(id)
    }

    /// Records what a call to `target` gave: any response brings it back into rotation;
    /// an [`Unreachable`](pitaya_cluster::Unreachable) error takes it out while it is
    /// still registered; another local error (a timeout) takes it out until it answers
    /// a probe sent at once (see [`Health::suspect`]).
    pub(crate) fn observe(&self, target: &Server, answer: &Result<Response, Error>) {
        match answer {
            Ok(_) => {
                if let Some(out) = self.health.answered(&target.id, Instant::now()) {
                    tracing::info!(server = %target.id, server_type = %target.server_type, out_for = ?out, "server answers again: back in rotation");
                }
            }
            Err(e) => {
                // A call that raced the server's removal must not leave a stale entry.
                if self.discovery.server(&target.id).is_none() {
                    return;
                }
                let Some(kind) = unreachable_kind(e) else {
                    if self.health.suspect(&target.id, Instant::now()) {
                        tracing::warn!(
                            server = %target.id,
                            server_type = %target.server_type,
                            error = %e,
                            "call failed: server out of rotation until it answers a probe, sent now"
                        );
                    }
                    return;
                };
                if self.health.failed(&target.id, Instant::now()) {
                    tracing::warn!(
                        server = %target.id,
                        server_type = %target.server_type,
                        ?kind,
                        error = %e,
                        "server unreachable: not chosen while another server of its type is, probed from {FIRST_BACKOFF:?} up to every {MAX_BACKOFF:?}"
                    );
                }
            }
        }
    }

    /// Probes `target` in the background: a user RPC any live server answers.
    fn spawn_probe(&self, target: Arc<Server>) {
        let mut guard =
            ProbeGuard { health: self.health.clone(), id: target.id.clone(), done: false };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to probe on: the guard reschedules the probe.
            return;
        };
        let client = self.client.clone();
        let mut ctx = Context::new();
        ctx.insert(PEER_ID, self.me.id.as_str());
        ctx.insert(PEER_SERVICE, self.me.server_type.as_str());
        pitaya_cluster::context::set_req_timeout(&mut ctx, PROBE_TIMEOUT);
        let req = probe_request(&target.server_type);
        runtime.spawn(async move {
            let answer = tokio::time::timeout(PROBE_LIMIT, client.call(&target, ctx, req)).await;
            let now = Instant::now();
            match answer {
                Ok(Ok(_)) => {
                    if let Some(out) = guard.health.answered(&target.id, now) {
                        tracing::info!(server = %target.id, server_type = %target.server_type, out_for = ?out, "server answered a probe: back in rotation");
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(server = %target.id, error = %e, "probe failed");
                    guard.health.probe_failed(&target.id, now);
                }
                Err(_) => {
                    tracing::debug!(server = %target.id, "probe unanswered");
                    guard.health.probe_failed(&target.id, now);
                }
            }
            guard.disarm();
        });
    }
}

/// Ends a probe that was dropped before it finished (runtime shut down, no runtime), so
/// that the server is probed again later instead of never.
struct ProbeGuard {
    health: Arc<Health>,
    id: String,
    /// Set once the probe's outcome is recorded.
    done: bool,
}

impl ProbeGuard {
    /// The probe's outcome is recorded: nothing to do on drop.
    fn disarm(&mut self) {
        self.done = true;
    }
}

impl Drop for ProbeGuard {
    fn drop(&mut self) {
        if !self.done {
            self.health.probe_failed(&self.id, Instant::now());
        }
    }
}

/// The probe: a user RPC to [`PROBE_SHORT_ROUTE`] of `server_type`, an ordinary request on
/// the wire.
fn probe_request(server_type: &str) -> protos::Request {
    protos::Request {
        r#type: RpcType::User as i32,
        session: None,
        msg: Some(Msg {
            id: 0,
            route: format!("{server_type}.{PROBE_SHORT_ROUTE}"),
            data: Bytes::new(),
            reply: String::new(),
            r#type: MsgType::MsgRequest as i32,
        }),
        // A user RPC needs no frontend (Go's servers ignore it there).
        frontend_id: String::new(),
        metadata: Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn server(id: &str) -> Arc<Server> {
        Arc::new(Server {
            id: id.to_owned(),
            server_type: "game".to_owned(),
            metadata: BTreeMap::new(),
            frontend: false,
            hostname: String::new(),
        })
    }

    fn ids(servers: &[Arc<Server>]) -> Vec<&str> {
        servers.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn a_failed_server_is_left_out_while_another_is_healthy() {
        let h = Health::default();
        let t0 = Instant::now();
        let all = vec![server("a"), server("b")];
        assert!(h.all_healthy());
        assert!(h.failed("a", t0));
        assert!(!h.failed("a", t0), "already out");
        assert!(!h.all_healthy());
        let s = h.select(all.clone(), t0);
        assert_eq!((ids(&s.servers), ids(&s.probes)), (vec!["b"], vec![]));
        // Both out: every server is chosen again, and nobody is probed apart.
        assert!(h.failed("b", t0));
        let s = h.select(all, t0 + Duration::from_secs(5));
        assert_eq!((ids(&s.servers), ids(&s.probes)), (vec!["a", "b"], vec![]));
    }

    #[test]
    fn probes_back_off_from_one_second_to_thirty() {
        let h = Health::default();
        let t0 = Instant::now();
        let all = vec![server("a"), server("b")];
        h.failed("a", t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            // Not due a moment before, due at the time, and only one probe at once.
            let due = h.table.lock().unwrap()["a"].next_probe;
            assert!(h.select(all.clone(), due - Duration::from_millis(1)).probes.is_empty());
            assert_eq!(ids(&h.select(all.clone(), due).probes), ["a"]);
            assert!(h.select(all.clone(), due + Duration::from_secs(60)).probes.is_empty());
            waits.push(due - now);
            now = due;
            h.probe_failed("a", now);
        }
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn a_suspect_is_probed_at_once_then_backs_off_from_one_second() {
        let h = Health::default();
        let t0 = Instant::now();
        let all = vec![server("a"), server("b")];
        assert!(h.suspect("a", t0));
        assert!(!h.suspect("a", t0), "already out");
        // Out of rotation, and its probe is due now.
        let s = h.select(all.clone(), t0);
        assert_eq!((ids(&s.servers), ids(&s.probes)), (vec!["b"], vec!["a"]));
        h.probe_failed("a", t0);
        let due = h.table.lock().unwrap()["a"].next_probe;
        assert_eq!(due - t0, Duration::from_secs(1));
        // An unreachable failure of a suspect changes nothing before its probe time.
        assert!(!h.failed("a", t0));
        assert_eq!(h.answered("a", t0), Some(Duration::ZERO));
        assert!(h.all_healthy());
    }

    #[test]
    fn an_answer_or_a_registration_brings_a_server_back() {
        let h = Health::default();
        let t0 = Instant::now();
        h.failed("a", t0);
        assert_eq!(h.answered("a", t0 + Duration::from_secs(3)), Some(Duration::from_secs(3)));
        assert!(h.all_healthy());
        assert_eq!(h.answered("a", t0), None);
        h.failed("a", t0);
        h.server_added(&server("a"));
        assert!(h.all_healthy() && !h.is_unhealthy("a"));
        h.failed("a", t0);
        h.server_removed(&server("a"));
        assert!(h.all_healthy());
    }

    #[test]
    fn failures_while_it_is_the_only_choice_count_as_probes() {
        let h = Health::default();
        let t0 = Instant::now();
        h.failed("a", t0);
        // Calls before the probe time change nothing; the one at the probe time backs off.
        h.failed("a", t0 + Duration::from_millis(500));
        assert_eq!(h.table.lock().unwrap()["a"].next_probe, t0 + FIRST_BACKOFF);
        let t1 = t0 + FIRST_BACKOFF;
        h.failed("a", t1);
        assert_eq!(h.table.lock().unwrap()["a"].next_probe, t1 + Duration::from_secs(2));
    }

    #[test]
    fn a_dropped_probe_is_rescheduled() {
        let h = Arc::new(Health::default());
        let t0 = Instant::now();
        let all = vec![server("a"), server("b")];
        h.failed("a", t0);
        assert_eq!(ids(&h.select(all.clone(), t0 + FIRST_BACKOFF).probes), ["a"]);
        drop(ProbeGuard { health: h.clone(), id: "a".to_owned(), done: false });
        assert!(!h.table.lock().unwrap()["a"].probing);
        assert!(!h.is_unhealthy("b"));
    }
}
