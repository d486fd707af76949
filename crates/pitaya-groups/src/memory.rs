//! [`MemoryGroups`]: process-local groups.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use pitaya_core::BoxFuture;
use tokio::time::Instant;

use crate::{GroupError, GroupResult, Groups, Members};

/// Groups held in this process's memory (spec §9): a frontend's and a backend's group of
/// the same name are two different groups.
///
/// Clones share the same groups: to let several apps of one process see each other's
/// groups, give each a clone of one `MemoryGroups`. Separate `MemoryGroups::new` calls
/// give separate groups (Go's memory service, by contrast, is one per process).
///
/// Groups created with a TTL expire when not renewed within it. Expiry is enforced on
/// every access and, to free memory, by a background sweep every `tick` (Go's
/// `pitaya.groups.memory.tickduration`, 30 s by default) when a tokio runtime is running.
#[derive(Clone)]
pub struct MemoryGroups {
    inner: Arc<Mutex<HashMap<String, Group>>>,
}

struct Group {
    members: BTreeSet<Arc<str>>,
    /// The members as last handed out by `member_snapshot`, until they change: the same
    /// `Arc` for every broadcast in between.
    snapshot: Option<Members>,
    ttl: Option<Duration>,
    renewed: Instant,
}

impl Group {
    fn expired(&self, now: Instant) -> bool {
        self.ttl.is_some_and(|ttl| now.duration_since(self.renewed) >= ttl)
    }
}

impl Default for MemoryGroups {
    fn default() -> Self {
        Self::new(Duration::from_secs(30))
    }
}

impl MemoryGroups {
    /// Groups swept for expired TTLs every `tick` (no sweep outside a tokio runtime;
    /// expiry is still enforced on access).
    pub fn new(tick: Duration) -> Self {
        let inner = Arc::new(Mutex::new(HashMap::new()));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&inner), tick.max(Duration::from_millis(1))));
        }
        Self { inner }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the live (unexpired) group `name`.
    fn with_group<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Group) -> GroupResult<T>,
    ) -> GroupResult<T> {
        let mut groups = self.lock();
        let now = Instant::now();
        if groups.get(name).is_some_and(|g| g.expired(now)) {
            groups.remove(name);
        }
        groups.get_mut(name).map_or(Err(GroupError::NotFound), f)
    }

    fn create_group(&self, name: &str, ttl: Option<Duration>) -> GroupResult<()> {
        let mut groups = self.lock();
        let now = Instant::now();
        if groups.get(name).is_some_and(|g| !g.expired(now)) {
            return Err(GroupError::AlreadyExists);
        }
        let group = Group { members: BTreeSet::new(), snapshot: None, ttl, renewed: now };
        groups.insert(name.to_owned(), group);
        Ok(())
    }
}

async fn sweep(groups: Weak<Mutex<HashMap<String, Group>>>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        // Ends with the last MemoryGroups handle.
        let Some(groups) = groups.upgrade() else { return };
        let now = Instant::now();
        let mut groups = groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups.retain(|name, g| {
            let keep = !g.expired(now);
            if !keep {
                tracing::debug!(group = %name, "memory group expired");
            }
            keep
        });
    }
}

fn ready<T: Send + 'static>(value: T) -> BoxFuture<'static, T> {
    Box::pin(std::future::ready(value))
}

impl Groups for MemoryGroups {
    fn create(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        ready(self.create_group(name, None))
    }

    fn create_with_ttl(&self, name: &str, ttl: Duration) -> BoxFuture<'_, GroupResult<()>> {
        ready(self.create_group(name, Some(ttl)))
    }

    fn add_member(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<()>> {
        let result = if uid.is_empty() {
            Err(GroupError::EmptyUid)
        } else {
            self.with_group(name, |g| {
                if g.members.insert(Arc::from(uid)) {
                    g.snapshot = None;
                    Ok(())
                } else {
                    Err(GroupError::MemberAlreadyExists)
                }
            })
        };
        ready(result)
    }

    fn remove_member(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<()>> {
        ready(self.with_group(name, |g| {
            if g.members.remove(uid) {
                g.snapshot = None;
                Ok(())
            } else {
                Err(GroupError::MemberNotFound)
            }
        }))
    }

    fn remove_all(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        ready(self.with_group(name, |g| {
            g.members.clear();
            g.snapshot = None;
            Ok(())
        }))
    }

    fn delete(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        let result = self.with_group(name, |_| Ok(())).map(|()| {
            self.lock().remove(name);
        });
        ready(result)
    }

    fn members(&self, name: &str) -> BoxFuture<'_, GroupResult<Vec<String>>> {
        ready(self.with_group(name, |g| Ok(g.members.iter().map(|m| m.to_string()).collect())))
    }

    fn member_snapshot(&self, name: &str) -> BoxFuture<'_, GroupResult<Members>> {
        ready(self.with_group(name, |g| {
            Ok(g.snapshot.get_or_insert_with(|| g.members.iter().cloned().collect()).clone())
        }))
    }

    fn contains(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<bool>> {
        let result = if uid.is_empty() {
            Err(GroupError::EmptyUid)
        } else {
            self.with_group(name, |g| Ok(g.members.contains(uid)))
        };
        ready(result)
    }

    fn count(&self, name: &str) -> BoxFuture<'_, GroupResult<usize>> {
        ready(self.with_group(name, |g| Ok(g.members.len())))
    }

    fn renew_ttl(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        ready(self.with_group(name, |g| {
            if g.ttl.is_none() {
                return Err(GroupError::TtlNotFound);
            }
            g.renewed = Instant::now();
            Ok(())
        }))
    }
}

impl std::fmt::Debug for MemoryGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryGroups").field("groups", &self.lock().len()).finish()
    }
}
