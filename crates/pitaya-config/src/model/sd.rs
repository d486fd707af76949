//! `pitaya.cluster.sd.*`: etcd service discovery (spec §5).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `pitaya.cluster.sd.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ServiceDiscoveryConfig {
    /// `pitaya.cluster.sd.etcd.*`
    pub etcd: EtcdSdConfig,
}

/// `pitaya.cluster.sd.etcd.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdSdConfig {
    /// `endpoints` (`["localhost:2379"]`); a comma-separated string is split, as viper does.
    #[serde(deserialize_with = "crate::lenient::string_list")]
    pub endpoints: Vec<String>,
    /// `user` ("")
    #[serde(deserialize_with = "crate::lenient::string")]
    pub user: String,
    /// `pass` (""); redacted in [`PitayaConfig::to_dotted`](crate::PitayaConfig::to_dotted).
    #[serde(deserialize_with = "crate::lenient::string")]
    pub pass: String,
    /// `dialtimeout` (5s)
    #[serde(rename = "dialtimeout", with = "crate::serde_go_duration")]
    pub dial_timeout: Duration,
    /// `prefix` ("pitaya/"): root of the server keys (spec §5.1).
    #[serde(deserialize_with = "crate::lenient::string")]
    pub prefix: String,
    /// `pitaya.cluster.sd.etcd.heartbeat.*`
    pub heartbeat: EtcdHeartbeatConfig,
    /// `pitaya.cluster.sd.etcd.syncservers.*`
    #[serde(rename = "syncservers")]
    pub sync_servers: SyncServersConfig,
    /// `pitaya.cluster.sd.etcd.revoke.*`
    pub revoke: RevokeConfig,
    /// `pitaya.cluster.sd.etcd.grantlease.*`
    #[serde(rename = "grantlease")]
    pub grant_lease: GrantLeaseConfig,
    /// `pitaya.cluster.sd.etcd.shutdown.*`
    pub shutdown: EtcdShutdownConfig,
    /// `servertypesblacklist` (empty): server types this server ignores in discovery.
    // Go's docs and its own defaults map say `servertypeblacklist`, but the struct reads the
    // plural key, so the singular one never takes effect.
    #[serde(rename = "servertypesblacklist", deserialize_with = "crate::lenient::string_list")]
    pub server_types_blacklist: Vec<String>,
}

impl Default for EtcdSdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["localhost:2379".to_owned()],
            user: String::new(),
            pass: String::new(),
            dial_timeout: Duration::from_secs(5),
            prefix: "pitaya/".to_owned(),
            heartbeat: EtcdHeartbeatConfig::default(),
            sync_servers: SyncServersConfig::default(),
            revoke: RevokeConfig::default(),
            grant_lease: GrantLeaseConfig::default(),
            shutdown: EtcdShutdownConfig::default(),
            server_types_blacklist: Vec::new(),
        }
    }
}

/// `pitaya.cluster.sd.etcd.heartbeat.*`: the server's lease (spec §5.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdHeartbeatConfig {
    /// `ttl` (60s): lease TTL, granted in whole seconds.
    #[serde(with = "crate::serde_go_duration")]
    pub ttl: Duration,
    /// `log` (false): log every lease keep-alive.
    pub log: bool,
}

impl Default for EtcdHeartbeatConfig {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(60), log: false }
    }
}

/// `pitaya.cluster.sd.etcd.syncservers.*`: the periodic full resync (spec §5.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SyncServersConfig {
    /// `interval` (120s)
    #[serde(with = "crate::serde_go_duration")]
    pub interval: Duration,
    /// `parallelism` (10): concurrent etcd reads during a resync.
    pub parallelism: usize,
}

impl Default for SyncServersConfig {
    fn default() -> Self {
        Self { interval: Duration::from_secs(120), parallelism: 10 }
    }
}

/// `pitaya.cluster.sd.etcd.revoke.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RevokeConfig {
    /// `timeout` (5s): bound on revoking the lease at shutdown.
    #[serde(with = "crate::serde_go_duration")]
    pub timeout: Duration,
}

impl Default for RevokeConfig {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(5) }
    }
}

/// `pitaya.cluster.sd.etcd.grantlease.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GrantLeaseConfig {
    /// `timeout` (60s): bound on one lease grant.
    #[serde(with = "crate::serde_go_duration")]
    pub timeout: Duration,
    /// `maxretries` (15)
    #[serde(rename = "maxretries")]
    pub max_retries: u32,
    /// `retryinterval` (5s)
    #[serde(rename = "retryinterval", with = "crate::serde_go_duration")]
    pub retry_interval: Duration,
}

impl Default for GrantLeaseConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_retries: 15,
            retry_interval: Duration::from_secs(5),
        }
    }
}

/// `pitaya.cluster.sd.etcd.shutdown.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdShutdownConfig {
    /// `delay` (300ms): pause after deregistering, before the server stops.
    // Go's docs say 10ms; the code default is 300ms.
    #[serde(with = "crate::serde_go_duration")]
    pub delay: Duration,
}

impl Default for EtcdShutdownConfig {
    fn default() -> Self {
        Self { delay: Duration::from_millis(300) }
    }
}
