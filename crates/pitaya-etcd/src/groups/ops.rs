//! The etcd transactions behind each group operation (spec §9), with Go's outcomes.

use std::fmt::Display;
use std::time::Duration;

use etcd_client::{
    Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    TxnResponse,
};
use pitaya_groups::{GroupError, GroupResult};

use super::EtcdGroups;
use super::keys::{group_key, member_key, members_prefix};
use crate::lease::ttl_secs;

fn storage(op: &str, error: impl Display) -> GroupError {
    GroupError::Storage(format!("etcd groups: {op}: {error}"))
}

/// Runs one etcd call bounded by `after`.
pub(super) async fn bounded<T>(
    op: &'static str,
    after: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> GroupResult<T> {
    match tokio::time::timeout(after, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(error)) => Err(storage(op, error)),
        Err(_) => Err(storage(op, format_args!("timed out after {after:?}"))),
    }
}

fn is_lease_not_found(error: &etcd_client::Error) -> bool {
    error.to_string().contains("lease not found")
}

/// "The group key exists".
fn group_exists(key: &str) -> Compare {
    Compare::create_revision(key, CompareOp::Greater, 0)
}

/// The group key as a transaction's else branch read it, if it exists.
fn create_revision_in(resp: &TxnResponse) -> Option<i64> {
    match resp.op_responses().into_iter().next() {
        Some(TxnOpResponse::Get(get)) => get.kvs().first().map(|kv| kv.create_revision()),
        _ => None,
    }
}

/// What add and renew need to know about an existing group.
struct GroupKv {
    create_revision: i64,
    lease: i64,
}

impl EtcdGroups {
    async fn txn(&self, op: &'static str, txn: Txn) -> GroupResult<TxnResponse> {
        let mut kv = self.client.kv_client();
        bounded(op, self.timeout, kv.txn(txn)).await
    }

    async fn group_kv(&self, name: &str) -> GroupResult<GroupKv> {
        let mut kv = self.client.kv_client();
        let resp = bounded("get group", self.timeout, kv.get(group_key(&self.prefix, name), None));
        let resp = resp.await?;
        let kv = resp.kvs().first().ok_or(GroupError::NotFound)?;
        Ok(GroupKv { create_revision: kv.create_revision(), lease: kv.lease() })
    }

    pub(super) async fn create_group(&self, name: &str, ttl: Option<Duration>) -> GroupResult<()> {
        let lease = match ttl {
            Some(ttl) => {
                let mut leases = self.client.lease_client();
                let grant = leases.grant(ttl_secs(ttl), None);
                Some(bounded("grant lease", self.timeout, grant).await?.id())
            }
            None => None,
        };
        let key = group_key(&self.prefix, name);
        let options = lease.map(|id| PutOptions::new().with_lease(id));
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), "", options)]);
        let created = self.txn("create", txn).await.map(|resp| resp.succeeded());
        if let Some(id) = lease.filter(|_| !matches!(created, Ok(true))) {
            // Holds nothing; Go leaves it to expire, we spare etcd the wait.
            let mut leases = self.client.lease_client();
            let _ = bounded("revoke lease", self.timeout, leases.revoke(id)).await;
        }
        if created? { Ok(()) } else { Err(GroupError::AlreadyExists) }
    }

    pub(super) async fn add(&self, name: &str, uid: &str) -> GroupResult<()> {
        if uid.is_empty() {
            return Err(GroupError::EmptyUid);
        }
        let group = self.group_kv(name).await?;
        let key = group_key(&self.prefix, name);
        let member = member_key(&self.prefix, name, uid);
        let options = (group.lease != 0).then(|| PutOptions::new().with_lease(group.lease));
        // Guarded on the CreateRevision read above (Go checks only that the group exists):
        // a group deleted and created again meanwhile must not get a member on the old
        // group's lease.
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.as_str(), CompareOp::Equal, group.create_revision),
                Compare::create_revision(member.as_str(), CompareOp::Equal, 0),
            ])
            .and_then([TxnOp::put(member.as_str(), "", options)])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let resp = self.txn("add member", txn).await?;
        if resp.succeeded() {
            Ok(())
        } else if create_revision_in(&resp) == Some(group.create_revision) {
            Err(GroupError::MemberAlreadyExists)
        } else {
            // Go would say the member exists; the group is what went away.
            Err(GroupError::NotFound)
        }
    }

    pub(super) async fn remove(&self, name: &str, uid: &str) -> GroupResult<()> {
        let member = member_key(&self.prefix, name, uid);
        let txn = Txn::new()
            .when([Compare::create_revision(member.as_str(), CompareOp::Greater, 0)])
            .and_then([TxnOp::delete(member.as_str(), None)]);
        let resp = self.txn("remove member", txn).await?;
        if resp.succeeded() { Ok(()) } else { Err(GroupError::MemberNotFound) }
    }

    /// Deletes the members, and the group key too when `group` is set.
    pub(super) async fn clear(&self, name: &str, group: bool) -> GroupResult<()> {
        let key = group_key(&self.prefix, name);
        let mut then = vec![TxnOp::delete(
            members_prefix(&self.prefix, name),
            Some(DeleteOptions::new().with_prefix()),
        )];
        if group {
            then.push(TxnOp::delete(key.as_str(), None));
        }
        let op = if group { "delete" } else { "remove all" };
        let txn = Txn::new().when([group_exists(&key)]).and_then(then);
        let resp = self.txn(op, txn).await?;
        if resp.succeeded() { Ok(()) } else { Err(GroupError::NotFound) }
    }

    pub(super) async fn list(&self, name: &str) -> GroupResult<Vec<String>> {
        let key = group_key(&self.prefix, name);
        let prefix = members_prefix(&self.prefix, name);
        let options = GetOptions::new().with_prefix().with_keys_only();
        let txn = Txn::new()
            .when([group_exists(&key)])
            .and_then([TxnOp::get(prefix.as_str(), Some(options))]);
        let resp = self.txn("members", txn).await?;
        if !resp.succeeded() {
            return Err(GroupError::NotFound);
        }
        let Some(TxnOpResponse::Get(get)) = resp.op_responses().into_iter().next() else {
            return Err(storage("members", "etcd sent no range response"));
        };
        let members = get.kvs().iter().filter_map(|kv| kv.key().strip_prefix(prefix.as_bytes()));
        Ok(members.map(|uid| String::from_utf8_lossy(uid).into_owned()).collect())
    }

    pub(super) async fn has(&self, name: &str, uid: &str) -> GroupResult<bool> {
        if uid.is_empty() {
            return Err(GroupError::EmptyUid);
        }
        let key = group_key(&self.prefix, name);
        let member = member_key(&self.prefix, name, uid);
        let txn = Txn::new()
            .when([group_exists(&key)])
            .and_then([TxnOp::get(member, Some(GetOptions::new().with_count_only()))]);
        let resp = self.txn("contains", txn).await?;
        if !resp.succeeded() {
            return Err(GroupError::NotFound);
        }
        match resp.op_responses().into_iter().next() {
            Some(TxnOpResponse::Get(get)) => Ok(get.count() > 0),
            _ => Err(storage("contains", "etcd sent no range response")),
        }
    }

    pub(super) async fn count_members(&self, name: &str) -> GroupResult<usize> {
        let mut kv = self.client.kv_client();
        let options = GetOptions::new().with_prefix().with_count_only();
        let get = kv.get(members_prefix(&self.prefix, name), Some(options));
        let resp = bounded("count", self.timeout, get).await?;
        Ok(usize::try_from(resp.count()).unwrap_or(0))
    }

    pub(super) async fn renew(&self, name: &str) -> GroupResult<()> {
        let group = self.group_kv(name).await?;
        if group.lease == 0 {
            return Err(GroupError::EtcdLeaseNotFound);
        }
        // KeepAliveOnce: the client sends one renewal on a fresh stream, waits for the
        // answer, and the stream closes when dropped.
        let mut leases = self.client.lease_client();
        match tokio::time::timeout(self.timeout, leases.keep_alive(group.lease)).await {
            Ok(Ok(_)) => Ok(()),
            // The lease expired since the read, taking the group with it.
            Ok(Err(error)) if is_lease_not_found(&error) => Err(GroupError::NotFound),
            Ok(Err(error)) => Err(storage("renew ttl", error)),
            Err(_) => Err(storage("renew ttl", format_args!("timed out after {:?}", self.timeout))),
        }
    }
}
