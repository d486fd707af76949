//! `pitaya.groups.*`: the group service backends (spec §9).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `pitaya.groups.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GroupsConfig {
    /// `pitaya.groups.etcd.*`
    pub etcd: EtcdGroupsConfig,
    /// `pitaya.groups.memory.*`
    pub memory: MemoryGroupsConfig,
}

/// `pitaya.groups.etcd.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct EtcdGroupsConfig {
    /// `endpoints` (`["localhost:2379"]`); a comma-separated string is split.
    #[serde(deserialize_with = "crate::lenient::string_list")]
    pub endpoints: Vec<String>,
    /// `prefix` ("pitaya/")
    #[serde(deserialize_with = "crate::lenient::string")]
    pub prefix: String,
    /// `dialtimeout` (5s)
    #[serde(rename = "dialtimeout", with = "crate::serde_go_duration")]
    pub dial_timeout: Duration,
    /// `transactiontimeout` (5s): bound on one group transaction.
    #[serde(rename = "transactiontimeout", with = "crate::serde_go_duration")]
    pub transaction_timeout: Duration,
}

impl Default for EtcdGroupsConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["localhost:2379".to_owned()],
            prefix: "pitaya/".to_owned(),
            dial_timeout: Duration::from_secs(5),
            transaction_timeout: Duration::from_secs(5),
        }
    }
}

/// `pitaya.groups.memory.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MemoryGroupsConfig {
    /// `tickduration` (30s): how often expired in-memory groups are swept.
    #[serde(rename = "tickduration", with = "crate::serde_go_duration")]
    pub tick_duration: Duration,
}

impl Default for MemoryGroupsConfig {
    fn default() -> Self {
        Self { tick_duration: Duration::from_secs(30) }
    }
}
