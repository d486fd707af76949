//! The typed tree of Pitaya's `pitaya.*` keys, with Go Pitaya's code defaults.
//!
//! Each struct is one level of the dotted key space: `pitaya.cluster.sd.etcd.dialtimeout` is
//! `PitayaConfig::cluster.sd.etcd.dial_timeout`. Serde names are Pitaya's exact keys: all lower
//! case, except Go's camelCase `constLabels`, `additionalLabels`, `minDelay`, `maxDelay` and
//! `maxRandom` (the loader folds any other spelling onto these). Every struct is
//! `#[serde(default)]`, so a source that names a few keys keeps Go's defaults for the rest, and
//! unknown keys are ignored, as viper does. `Default` gives the defaults of spec §13.2, which
//! follow Go's code where its docs disagree.
//!
//! The structs are `#[non_exhaustive]` so keys can be added without a breaking change: start
//! from `PitayaConfig::default()` and assign fields.

mod app;
mod cluster;
mod groups;
mod metrics;
mod modules;
mod rpc;
mod sd;
mod serializer;
mod worker;

use serde::{Deserialize, Serialize};

pub use app::{
    AcceptorConfig, AgentBufferConfig, BufferConfig, CompressRoutesConfig, ConcurrencyConfig,
    ConnConfig, DefaultPipelinesConfig, HandlerBufferConfig, HandlerConcurrencyConfig,
    HandlerConfig, HandlerMessagesConfig, HeartbeatConfig, RateLimitingConfig, SessionConfig,
    SessionDrainConfig, SessionResumeConfig, StructValidationConfig,
};
pub use cluster::{ClusterConfig, ClusterInfoConfig};
pub use groups::{EtcdGroupsConfig, GroupsConfig, MemoryGroupsConfig};
pub use metrics::{
    CustomMetricsConfig, HistogramSpec, MetricSpec, MetricsConfig, Objective, PrometheusConfig,
    StatsdConfig, SummarySpec,
};
pub use modules::{BindingStorageConfig, EtcdBindingStorageConfig, ModulesConfig};
pub use rpc::{
    GrpcClientConfig, GrpcServerConfig, NatsClientConfig, NatsServerBufferConfig, NatsServerConfig,
    RpcClientConfig, RpcConfig, RpcServerConfig,
};
pub use sd::{
    EtcdHeartbeatConfig, EtcdSdConfig, EtcdShutdownConfig, GrantLeaseConfig, RevokeConfig,
    ServiceDiscoveryConfig, SyncServersConfig,
};
pub use serializer::SerializerType;
pub use worker::{WorkerConfig, WorkerRedisConfig, WorkerRetryConfig};

/// Everything under `pitaya.`: the resolved configuration of one Pitaya server.
///
/// Build it with [`PitayaConfig::load`](crate::PitayaConfig::load) or
/// [`ConfigLoader`](crate::ConfigLoader); `Default` is Go Pitaya's code defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PitayaConfig {
    /// `pitaya.serializertype`: the client-facing serializer (1 = JSON, 2 = protobuf).
    #[serde(rename = "serializertype")]
    pub serializer_type: SerializerType,
    /// `pitaya.heartbeat.*`
    pub heartbeat: HeartbeatConfig,
    /// `pitaya.handler.*`
    pub handler: HandlerConfig,
    /// `pitaya.buffer.*`
    pub buffer: BufferConfig,
    /// `pitaya.concurrency.*`
    pub concurrency: ConcurrencyConfig,
    /// `pitaya.session.*`
    pub session: SessionConfig,
    /// `pitaya.acceptor.*`
    pub acceptor: AcceptorConfig,
    /// `pitaya.conn.*`
    pub conn: ConnConfig,
    /// `pitaya.defaultpipelines.*`
    #[serde(rename = "defaultpipelines")]
    pub default_pipelines: DefaultPipelinesConfig,
    /// `pitaya.cluster.*`
    pub cluster: ClusterConfig,
    /// `pitaya.groups.*`
    pub groups: GroupsConfig,
    /// `pitaya.modules.*`
    pub modules: ModulesConfig,
    /// `pitaya.metrics.*`
    pub metrics: MetricsConfig,
    /// `pitaya.worker.*`
    pub worker: WorkerConfig,
}
