//! `pitaya.cluster.*`: the server's identity in the cluster, discovery and RPC.

use serde::{Deserialize, Serialize};

use super::{RpcConfig, ServiceDiscoveryConfig};

/// `pitaya.cluster.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// `pitaya.cluster.info.*`
    pub info: ClusterInfoConfig,
    /// `pitaya.cluster.sd.*`
    pub sd: ServiceDiscoveryConfig,
    /// `pitaya.cluster.rpc.*`
    pub rpc: RpcConfig,
}

/// `pitaya.cluster.info.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClusterInfoConfig {
    /// `region` (""): region advertised by this server.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub region: String,
}
