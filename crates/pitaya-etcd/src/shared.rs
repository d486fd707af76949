//! [`Shared`]: what the discovery's public handle and its background tasks share, and
//! how the etcd client is built.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use pitaya_cluster::{DieSignal, Server};
use pitaya_config::model::EtcdSdConfig;
use tokio::sync::Notify;

use crate::error::{SdError, bounded};
use crate::keys;
use crate::view::View;

/// HTTP/2 ping period on the etcd connection, so that a silently dead connection (no
/// RST, e.g. a partition) breaks the watch and keep-alive streams instead of hanging
/// them. etcd refuses pings more often than every 5 s (`--grpc-keepalive-min-time`).
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) struct Shared {
    pub(crate) me: Arc<Server>,
    pub(crate) config: EtcdSdConfig,
    /// `<prefix>servers/`
    pub(crate) servers_prefix: String,
    /// `<prefix>servers/<type>/<id>` of this server.
    pub(crate) own_key: String,
    pub(crate) view: View,
    pub(crate) die: DieSignal,
    /// Raised by the watch task when our own key is gone from etcd (a DELETE event, or
    /// missing in a sync): the lease task checks the lease and puts the key back.
    pub(crate) check_registration: Notify,
    /// Raised by the lease task after it registered again: the watch task resyncs, as
    /// Go does after a re-grant, to catch what happened while etcd was unreachable.
    pub(crate) resync: Notify,
    /// Leases granted and not yet revoked. Usually one; after a recovery the older ones
    /// are revoked, and `stop()` revokes whatever is left so no key of ours can survive
    /// on a lease the lease task lost track of when it was cancelled.
    leases: Mutex<Vec<i64>>,
}

impl Shared {
    pub(crate) fn new(config: EtcdSdConfig, me: Server, die: DieSignal) -> Self {
        Self {
            servers_prefix: keys::servers_prefix(&config.prefix),
            own_key: keys::server_key(&config.prefix, &me.server_type, &me.id),
            me: Arc::new(me),
            config,
            view: View::default(),
            die,
            check_registration: Notify::new(),
            resync: Notify::new(),
            leases: Mutex::default(),
        }
    }

    /// Spec §5.1: a `/` in the type or id would make our own key unparsable for every
    /// peer, Go ones included, so the server would be invisible.
    pub(crate) fn validate(&self) -> Result<(), SdError> {
        if self.config.endpoints.is_empty() {
            return Err(SdError::Config("no etcd endpoint".into()));
        }
        if self.me.server_type.contains('/') || self.me.id.contains('/') {
            return Err(SdError::Config(format!(
                "server type {:?} and id {:?} must not contain '/'",
                self.me.server_type, self.me.id
            )));
        }
        Ok(())
    }

    /// Spec §5.4: blacklisted types are ignored, except our own entry.
    pub(crate) fn ignored(&self, server_type: &str, id: &str) -> bool {
        id != self.me.id && self.config.server_types_blacklist.iter().any(|t| t == server_type)
    }

    pub(crate) fn dial_timeout(&self) -> Duration {
        self.config.dial_timeout
    }

    pub(crate) fn track_lease(&self, lease: i64) {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner).push(lease);
    }

    /// Forgets and returns the tracked leases other than `keep`.
    pub(crate) fn take_leases_except(&self, keep: Option<i64>) -> Vec<i64> {
        let mut leases = self.leases.lock().unwrap_or_else(PoisonError::into_inner);
        let (kept, taken) = leases.drain(..).partition(|l| Some(*l) == keep);
        *leases = kept;
        taken
    }
}

/// Connects to the configured endpoints.
///
/// Without credentials the client connects lazily, so unreachable endpoints show up on
/// the first call (the lease grant), which is bounded by `dialtimeout` as well.
pub(crate) async fn connect(config: &EtcdSdConfig) -> Result<Client, SdError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(config.dial_timeout)
        .with_keep_alive(HTTP2_PING_INTERVAL, config.dial_timeout)
        // etcd answers pings on a connection without streams with GOAWAY; the discovery
        // always has its watch and keep-alive streams open while it runs.
        .with_keep_alive_while_idle(false);
    // Go sets credentials only when both are set.
    if !config.user.is_empty() && !config.pass.is_empty() {
        // Tokens die with an etcd restart; the client re-authenticates on expiry.
        options = options
            .with_user(config.user.clone(), config.pass.clone())
            .with_auto_token_refresh(true);
    }
    bounded("connect", config.dial_timeout, Client::connect(&config.endpoints, Some(options))).await
}
