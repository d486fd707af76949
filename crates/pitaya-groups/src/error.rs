//! [`GroupError`], with Go Pitaya's messages.

/// Why a group operation failed. Messages are Go Pitaya's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// Creating a group whose name is taken.
    #[error("group already exists")]
    AlreadyExists,
    /// The group does not exist (or expired).
    #[error("group not found")]
    NotFound,
    /// Adding a uid that is already a member.
    #[error("member already exists in group")]
    MemberAlreadyExists,
    /// Removing a uid that is not a member.
    #[error("member not found in the group")]
    MemberNotFound,
    /// An empty uid.
    #[error("empty uid")]
    EmptyUid,
    /// Renewing the TTL of a memory group created without one.
    #[error("memory group TTL not found")]
    TtlNotFound,
    /// Renewing the TTL of an etcd group created without one (Go's etcd text).
    #[error("etcd lease not found in group")]
    EtcdLeaseNotFound,
    /// The backing store failed (etcd implementation).
    #[error("group storage error: {0}")]
    Storage(String),
}
