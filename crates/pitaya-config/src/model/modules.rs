//! `pitaya.modules.*`: optional modules; today only etcd binding storage (spec §8.6).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `pitaya.modules.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ModulesConfig {
    /// `pitaya.modules.bindingstorage.*`
    #[serde(rename = "bindingstorage")]
    pub binding_storage: BindingStorageConfig,
}

/// `pitaya.modules.bindingstorage.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BindingStorageConfig {
    /// `pitaya.modules.bindingstorage.etcd.*`
    pub etcd: EtcdBindingStorageConfig,
}

/// `pitaya.modules.bindingstorage.etcd.*`: uid → frontend ID records, needed with gRPC RPC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdBindingStorageConfig {
    /// `endpoints` (`["localhost:2379"]`); a comma-separated string is split.
    #[serde(deserialize_with = "crate::lenient::string_list")]
    pub endpoints: Vec<String>,
    /// `prefix` ("pitaya/")
    #[serde(deserialize_with = "crate::lenient::string")]
    pub prefix: String,
    /// `dialtimeout` (5s)
    #[serde(rename = "dialtimeout", with = "crate::serde_go_duration")]
    pub dial_timeout: Duration,
    /// `leasettl` (5h; Go's docs say 1h): TTL of each binding's lease.
    #[serde(rename = "leasettl", with = "crate::serde_go_duration")]
    pub lease_ttl: Duration,
}

impl Default for EtcdBindingStorageConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["localhost:2379".to_owned()],
            prefix: "pitaya/".to_owned(),
            dial_timeout: Duration::from_secs(5),
            lease_ttl: Duration::from_secs(5 * 3600),
        }
    }
}
