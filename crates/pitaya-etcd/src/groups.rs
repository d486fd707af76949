//! [`EtcdGroups`]: groups kept in etcd, shared by every server on the same prefix, Go
//! Pitaya's included (spec §9).

mod keys;
mod ops;

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use pitaya_config::model::EtcdGroupsConfig;
use pitaya_core::BoxFuture;
use pitaya_groups::{GroupError, GroupResult, Groups};

/// HTTP/2 ping period while a call is in flight (as the discovery's), so that a silently
/// dead connection fails the call instead of hanging it until the timeout.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);

/// [`Groups`] over etcd, wire-compatible with Go Pitaya's etcd group service (spec §9).
///
/// Layout, under `prefix` (`pitaya.groups.etcd.prefix`, `pitaya/` by default):
/// `<prefix>groups/<name>` = `""` and `<prefix>groups/<name>/uids/<uid>` = `""`. A group
/// created with a TTL has a lease of `ttl` in whole seconds (at least 1) on its key, and
/// every member key carries the same lease, so they expire together.
///
/// Every operation but [`count`](Groups::count) is one etcd transaction guarded on the
/// group key (its existence, and for [`add_member`](Groups::add_member) its
/// CreateRevision), and every etcd call is bounded by `transactiontimeout`. Storage
/// failures and timeouts are [`GroupError::Storage`].
///
/// Where Go's etcd service differs from its memory service, this follows the etcd one:
/// - [`count`](Groups::count) does not check that the group exists: a missing group has
///   0 members.
/// - [`remove_member`](Groups::remove_member) on a missing group is
///   [`GroupError::MemberNotFound`], not [`GroupError::NotFound`].
/// - [`renew_ttl`](Groups::renew_ttl) renews the group's lease once (KeepAliveOnce); a
///   group without TTL is [`GroupError::EtcdLeaseNotFound`] (Go's
///   `etcd lease not found in group`).
///
/// Empty uids are rejected ([`GroupError::EmptyUid`]) by [`add_member`](Groups::add_member)
/// and [`contains`](Groups::contains), as Go's application-level wrapper does (Go's etcd
/// service alone would accept them). Names and uids are used as given, as in Go.
///
/// An operation dropped midway leaves its transaction applied or not, never half done
/// (a TTL group's lease may be granted without a group on it; it expires unused).
///
/// Cloning is cheap and clones share the connection.
#[derive(Clone)]
pub struct EtcdGroups {
    client: Client,
    prefix: String,
    timeout: Duration,
}

impl EtcdGroups {
    /// Connects to `config.endpoints` and checks that etcd answers, both bounded by
    /// `dialtimeout`.
    ///
    /// # Errors
    /// [`GroupError::Storage`] when there is no endpoint, or etcd cannot be reached or
    /// does not answer in time.
    pub async fn connect(config: &EtcdGroupsConfig) -> Result<Self, GroupError> {
        if config.endpoints.is_empty() {
            return Err(GroupError::Storage(
                "etcd groups: invalid configuration: no etcd endpoint".into(),
            ));
        }
        let dial = config.dial_timeout;
        let options = ConnectOptions::new()
            .with_connect_timeout(dial)
            .with_keep_alive(HTTP2_PING_INTERVAL, dial)
            // etcd answers pings on a connection without streams with GOAWAY.
            .with_keep_alive_while_idle(false);
        let connect = Client::connect(&config.endpoints, Some(options));
        let client = ops::bounded("connect", dial, connect).await?;
        let groups =
            Self { client, prefix: config.prefix.clone(), timeout: config.transaction_timeout };
        // The client connects lazily: a first cheap read shows whether etcd is there.
        let mut kv = groups.client.kv_client();
        let probe = kv.get(format!("{}groups", groups.prefix), None);
        ops::bounded("connect", dial, probe).await?;
        Ok(groups)
    }
}

impl Groups for EtcdGroups {
    /// See [`Groups::create`]: a transaction that puts the group key if it does not
    /// exist.
    fn create(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        let name = name.to_owned();
        Box::pin(async move { self.create_group(&name, None).await })
    }

    /// See [`Groups::create_with_ttl`]: grants a lease of `ttl` in whole seconds (at
    /// least 1), then creates the group on it; the lease is revoked again if the group
    /// already exists.
    fn create_with_ttl(&self, name: &str, ttl: Duration) -> BoxFuture<'_, GroupResult<()>> {
        let name = name.to_owned();
        Box::pin(async move { self.create_group(&name, Some(ttl)).await })
    }

    /// See [`Groups::add_member`]: reads the group key, then puts the member on the
    /// group's lease in a transaction guarded on the group's CreateRevision.
    fn add_member(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<()>> {
        let (name, uid) = (name.to_owned(), uid.to_owned());
        Box::pin(async move { self.add(&name, &uid).await })
    }

    /// See [`Groups::remove_member`]. As in Go the transaction is guarded on the member
    /// key alone, so a missing group gives [`GroupError::MemberNotFound`].
    fn remove_member(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<()>> {
        let (name, uid) = (name.to_owned(), uid.to_owned());
        Box::pin(async move { self.remove(&name, &uid).await })
    }

    /// See [`Groups::remove_all`]: deletes every member key; the group stays.
    fn remove_all(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        let name = name.to_owned();
        Box::pin(async move { self.clear(&name, false).await })
    }

    /// See [`Groups::delete`]: deletes the member keys and the group key at once. A
    /// lease the group had is left to expire, as in Go.
    fn delete(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        let name = name.to_owned();
        Box::pin(async move { self.clear(&name, true).await })
    }

    /// See [`Groups::members`]: sorted (etcd's key order).
    fn members(&self, name: &str) -> BoxFuture<'_, GroupResult<Vec<String>>> {
        let name = name.to_owned();
        Box::pin(async move { self.list(&name).await })
    }

    /// See [`Groups::contains`].
    fn contains(&self, name: &str, uid: &str) -> BoxFuture<'_, GroupResult<bool>> {
        let (name, uid) = (name.to_owned(), uid.to_owned());
        Box::pin(async move { self.has(&name, &uid).await })
    }

    /// See [`Groups::count`]: a plain count of the member keys, so a missing group has 0
    /// members (as Go's etcd service).
    fn count(&self, name: &str) -> BoxFuture<'_, GroupResult<usize>> {
        let name = name.to_owned();
        Box::pin(async move { self.count_members(&name).await })
    }

    /// See [`Groups::renew_ttl`]: one keep-alive of the group's lease, restarting its
    /// countdown from the TTL it was granted with. [`GroupError::EtcdLeaseNotFound`] for a
    /// group without lease; [`GroupError::NotFound`] when the group (or its lease) is
    /// gone.
    fn renew_ttl(&self, name: &str) -> BoxFuture<'_, GroupResult<()>> {
        let name = name.to_owned();
        Box::pin(async move { self.renew(&name).await })
    }
}

impl std::fmt::Debug for EtcdGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdGroups")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
