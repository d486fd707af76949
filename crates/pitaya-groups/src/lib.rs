//! Groups (rooms) of uids (spec §9).
//!
//! **Layer:** services (the table in `xtask/src/layers.rs`): may depend on crates of the
//! foundation, serialization and core layers.
//!
//! - [`Groups`]: the operations every implementation offers; the etcd implementation of
//!   the cluster layer shares it, and so do the behaviour tests.
//! - [`MemoryGroups`]: process-local groups with optional TTL, checked every
//!   `pitaya.groups.memory.tickduration`. Its clones share their groups, and so do the
//!   holders of one `Arc<dyn Groups>` (an `Arc` of a service is a service).
//!
//! Broadcasting to a group (members, then a push to each uid) lives with the application,
//! which knows the sessions; [`Groups::member_snapshot`] lets it keep what it resolved
//! from a membership that has not changed.

mod error;
mod memory;

use std::time::Duration;

pub use error::GroupError;
pub use memory::MemoryGroups;
use pitaya_core::BoxFuture;

/// Result of a group operation.
pub type GroupResult<T> = Result<T, GroupError>;

/// A group's members (uids) at one moment, shared: see [`Groups::member_snapshot`].
pub type Members = std::sync::Arc<[std::sync::Arc<str>]>;

/// Group operations (spec §9). Names are unique; members are uids.
pub trait Groups: Send + Sync + 'static {
    /// Creates an empty group. Errors with [`GroupError::AlreadyExists`].
    fn create(&self, name: &str) -> BoxFuture<'_, GroupResult<()>>;

    /// Creates an empty group that disappears when nobody renews it within `ttl`.
    fn create_with_ttl(&self, name: &str, ttl: Duration) -> BoxFuture<'_, GroupResult<()>>;

    /// Adds `uid`. Errors: [`GroupError::EmptyUid`], [`GroupError::NotFound`],
    /// [`GroupError::MemberAlreadyExists`].
    fn add_member(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<()>>;

    /// Removes `uid`. Errors: [`GroupError::NotFound`], [`GroupError::MemberNotFound`].
    fn remove_member(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<()>>;

    /// Removes every member. Errors: [`GroupError::NotFound`].
    fn remove_all(&self, name: &str) -> BoxFuture<'_, GroupResult<()>>;

    /// Deletes the group. Errors: [`GroupError::NotFound`].
    fn delete(&self, name: &str) -> BoxFuture<'_, GroupResult<()>>;

    /// The members. Errors: [`GroupError::NotFound`].
    fn members(&self, name: &str) -> BoxFuture<'_, GroupResult<Vec<String>>>;

    /// The members as one shared list, for broadcasts. An implementation that returns
    /// the same `Arc` for as long as the membership is unchanged (as [`MemoryGroups`]
    /// does) lets a broadcaster recognise it without comparing uids; any list with the
    /// members is correct. The default builds a new list from [`members`](Self::members)
    /// on each call. Errors: as [`members`](Self::members).
    fn member_snapshot(&self, name: &str) -> BoxFuture<'_, GroupResult<Members>> {
        let members = self.members(name);
        Box::pin(
            async move { members.await.map(|m| m.into_iter().map(std::sync::Arc::from).collect()) },
        )
    }

    /// Whether `uid` is a member. Errors: [`GroupError::EmptyUid`], [`GroupError::NotFound`].
    fn contains(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<bool>>;

    /// Number of members. Errors: [`GroupError::NotFound`] (the etcd implementation
    /// returns 0 instead, as Go's does).
    fn count(&self, name: &str) -> BoxFuture<'_, GroupResult<usize>>;

    /// Restarts the TTL countdown. Errors: [`GroupError::NotFound`],
    /// [`GroupError::TtlNotFound`] (memory) or [`GroupError::EtcdLeaseNotFound`] (etcd)
    /// for a group without TTL, with each of Go's texts.
    fn renew_ttl(&self, name: &str) -> BoxFuture<'_, GroupResult<()>>;
}

/// A shared service is a service: several owners (several apps of one process, say) can
/// hold one `Arc<dyn Groups>` and all see the same groups.
impl<G: Groups + ?Sized> Groups for std::sync::Arc<G> {
    fn create(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        (**self).create(name)
    }

    fn create_with_ttl(&self, name: &str, ttl: Duration) -> BoxFuture<'_, GroupResult<()>> {
        (**self).create_with_ttl(name, ttl)
    }

    fn add_member(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<()>> {
        (**self).add_member(name, uid)
    }

    fn remove_member(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<()>> {
        (**self).remove_member(name, uid)
    }

    fn remove_all(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        (**self).remove_all(name)
    }

    fn delete(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        (**self).delete(name)
    }

    fn members(&self, name: &str) -> BoxFuture<'_, GroupResult<Vec<String>>> {
        (**self).members(name)
    }

    fn member_snapshot(&self, name: &str) -> BoxFuture<'_, GroupResult<Members>> {
        (**self).member_snapshot(name)
    }

    fn contains(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<bool>> {
        (**self).contains(name, uid)
    }

    fn count(&self, name: &str) -> BoxFuture<'_, GroupResult<usize>> {
        (**self).count(name)
    }

    fn renew_ttl(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        (**self).renew_ttl(name)
    }
}
