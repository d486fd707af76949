//! Fan-out of one push to a group's members: the [`FanoutCache`] of the sessions each
//! group's members resolved to, for [`pitaya_session::fan_out`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use pitaya_groups::Members;
use pitaya_session::{Session, SessionPool, SharedPush, fan_out};

/// Groups resolved at most; past it the cache starts over, so that an application that
/// broadcasts to ever new groups keeps a bounded cache.
const MAX_CACHED_GROUPS: usize = 4096;

/// A group's members resolved to this process's sessions.
pub(crate) struct Resolved {
    /// The membership they were resolved from.
    members: Members,
    /// The pool's uid generation they were resolved at.
    generation: u64,
    /// Members with a session here, and that session.
    targets: Vec<(Arc<str>, Session)>,
    /// Members without a session here.
    missing: Vec<Arc<str>>,
}

/// Per app: each group's members as sessions, valid while the membership is the same
/// list (the same `Arc`, or equal uids) and no uid was bound or released since
/// ([`SessionPool::uid_generation`]). A broadcast to a group then looks no uid up.
///
/// Entries hold their sessions until they are next found stale, so a closed session may
/// stay in memory until the next broadcast, to any group, after its close.
#[derive(Default)]
pub(crate) struct FanoutCache {
    groups: Mutex<HashMap<String, Arc<Resolved>, foldhash::fast::RandomState>>,
}

impl FanoutCache {
    /// `members` of `group` as sessions of `pool`, from the cache when still valid.
    pub(crate) fn resolve(
        &self,
        group: &str,
        members: &Members,
        pool: &SessionPool,
    ) -> Arc<Resolved> {
        let generation = pool.uid_generation();
        if let Some(hit) = self.lock().get(group).filter(|r| {
            r.generation == generation
                && (Arc::ptr_eq(&r.members, members) || r.members[..] == members[..])
        }) {
            return hit.clone();
        }
        let (generation, sessions) = pool.by_uids(members.iter().map(|u| &**u));
        let mut targets = Vec::with_capacity(sessions.len());
        let mut missing = Vec::new();
        for (uid, session) in members.iter().zip(sessions) {
            match session {
                Some(s) => targets.push((uid.clone(), s)),
                None => missing.push(uid.clone()),
            }
        }
        let resolved =
            Arc::new(Resolved { members: members.clone(), generation, targets, missing });
        let mut groups = self.lock();
        // What was resolved at an older generation may hold closed sessions: dropped
        // here rather than kept until its group's next broadcast.
        groups.retain(|_, r| r.generation == generation);
        if groups.len() >= MAX_CACHED_GROUPS {
            groups.clear();
        }
        groups.insert(group.to_owned(), resolved.clone());
        resolved
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Resolved>, foldhash::fast::RandomState>>
    {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Resolved {
    /// The members, each with its session if it has one here.
    fn iter(&self) -> impl Iterator<Item = (&str, Option<&Session>)> {
        let missing = self.missing.iter().map(|u| (&**u, None));
        self.targets.iter().map(|(u, s)| (&**u, Some(s))).chain(missing)
    }
}

/// [`fan_out`] to the members of a resolved group.
pub(crate) async fn fan_out_resolved(resolved: &Resolved, push: &SharedPush) -> Vec<String> {
    fan_out(resolved.iter(), push).await
}
