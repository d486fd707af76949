//! `pitaya.cluster.rpc.*`: NATS (spec §6) and gRPC (spec §7) RPC clients and servers.
//!
//! The NATS client and server blocks repeat the connection keys instead of sharing a flattened
//! struct: `#[serde(flatten)]` buffers values and would lose figment's reading of numbers and
//! booleans from environment strings.

use std::num::NonZeroUsize;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `pitaya.cluster.rpc.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RpcConfig {
    /// `pitaya.cluster.rpc.client.*`
    pub client: RpcClientConfig,
    /// `pitaya.cluster.rpc.server.*`
    pub server: RpcServerConfig,
}

/// `pitaya.cluster.rpc.client.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RpcClientConfig {
    /// `pitaya.cluster.rpc.client.nats.*`
    pub nats: NatsClientConfig,
    /// `pitaya.cluster.rpc.client.grpc.*`
    pub grpc: GrpcClientConfig,
    /// `pushbatch` (true; a key of this port, not Go's): a push to many users goes as one
    /// `sys.pushbatch` per frontend of the type when every one of them is a pitaya-rs
    /// server; `false` always takes Go's path, one message per uid.
    #[serde(rename = "pushbatch")]
    pub push_batch: bool,
}

impl Default for RpcClientConfig {
    fn default() -> Self {
        Self {
            nats: NatsClientConfig::default(),
            grpc: GrpcClientConfig::default(),
            push_batch: true,
        }
    }
}

/// `pitaya.cluster.rpc.server.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RpcServerConfig {
    /// `pitaya.cluster.rpc.server.nats.*`
    pub nats: NatsServerConfig,
    /// `pitaya.cluster.rpc.server.grpc.*`
    pub grpc: GrpcServerConfig,
    /// `loopbackenabled` (false): serve RPCs to this server's own type or ID locally instead of
    /// through the broker (spec §6.6).
    #[serde(rename = "loopbackenabled")]
    pub loopback_enabled: bool,
}

/// `pitaya.cluster.rpc.client.nats.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct NatsClientConfig {
    /// `connect` (`"nats://localhost:4222"`)
    #[serde(deserialize_with = "crate::lenient::string")]
    pub connect: String,
    /// `requesttimeout` (5s): RPC timeout when the context carries no `reqTimeout` (§6.3).
    #[serde(rename = "requesttimeout", with = "crate::serde_go_duration")]
    pub request_timeout: Duration,
    /// `connectiontimeout` (2s; Go's docs say 5s).
    #[serde(rename = "connectiontimeout", with = "crate::serde_go_duration")]
    pub connection_timeout: Duration,
    /// `maxreconnectionretries` (15); negative means retry forever, as in nats.go.
    #[serde(rename = "maxreconnectionretries")]
    pub max_reconnection_retries: i32,
    /// `websocketcompression` (true)
    #[serde(rename = "websocketcompression")]
    pub websocket_compression: bool,
    /// `reconnectjitter` (100ms)
    #[serde(rename = "reconnectjitter", with = "crate::serde_go_duration")]
    pub reconnect_jitter: Duration,
    /// `reconnectjittertls` (1s)
    #[serde(rename = "reconnectjittertls", with = "crate::serde_go_duration")]
    pub reconnect_jitter_tls: Duration,
    /// `reconnectwait` (1s)
    #[serde(rename = "reconnectwait", with = "crate::serde_go_duration")]
    pub reconnect_wait: Duration,
    /// `pinginterval` (2m)
    #[serde(rename = "pinginterval", with = "crate::serde_go_duration")]
    pub ping_interval: Duration,
    /// `maxpingsoutstanding` (3)
    #[serde(rename = "maxpingsoutstanding")]
    pub max_pings_outstanding: u32,
}

impl Default for NatsClientConfig {
    fn default() -> Self {
        Self {
            connect: DEFAULT_NATS_URL.to_owned(),
            request_timeout: Duration::from_secs(5),
            connection_timeout: Duration::from_secs(2),
            max_reconnection_retries: 15,
            websocket_compression: true,
            reconnect_jitter: Duration::from_millis(100),
            reconnect_jitter_tls: Duration::from_secs(1),
            reconnect_wait: Duration::from_secs(1),
            ping_interval: Duration::from_secs(120),
            max_pings_outstanding: 3,
        }
    }
}

/// `pitaya.cluster.rpc.server.nats.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct NatsServerConfig {
    /// `connect` (`"nats://localhost:4222"`)
    #[serde(deserialize_with = "crate::lenient::string")]
    pub connect: String,
    /// `connectiontimeout` (2s; Go's docs say 5s).
    #[serde(rename = "connectiontimeout", with = "crate::serde_go_duration")]
    pub connection_timeout: Duration,
    /// `maxreconnectionretries` (15); negative means retry forever, as in nats.go.
    #[serde(rename = "maxreconnectionretries")]
    pub max_reconnection_retries: i32,
    /// `websocketcompression` (true)
    #[serde(rename = "websocketcompression")]
    pub websocket_compression: bool,
    /// `reconnectjitter` (100ms)
    #[serde(rename = "reconnectjitter", with = "crate::serde_go_duration")]
    pub reconnect_jitter: Duration,
    /// `reconnectjittertls` (1s)
    #[serde(rename = "reconnectjittertls", with = "crate::serde_go_duration")]
    pub reconnect_jitter_tls: Duration,
    /// `reconnectwait` (1s)
    #[serde(rename = "reconnectwait", with = "crate::serde_go_duration")]
    pub reconnect_wait: Duration,
    /// `pinginterval` (2m)
    #[serde(rename = "pinginterval", with = "crate::serde_go_duration")]
    pub ping_interval: Duration,
    /// `maxpingsoutstanding` (3)
    #[serde(rename = "maxpingsoutstanding")]
    pub max_pings_outstanding: u32,
    /// `services` (30): workers serving incoming requests (spec §6.3).
    pub services: usize,
    /// `pitaya.cluster.rpc.server.nats.buffer.*`
    pub buffer: NatsServerBufferConfig,
}

impl Default for NatsServerConfig {
    fn default() -> Self {
        let client = NatsClientConfig::default();
        Self {
            connect: client.connect,
            connection_timeout: client.connection_timeout,
            max_reconnection_retries: client.max_reconnection_retries,
            websocket_compression: client.websocket_compression,
            reconnect_jitter: client.reconnect_jitter,
            reconnect_jitter_tls: client.reconnect_jitter_tls,
            reconnect_wait: client.reconnect_wait,
            ping_interval: client.ping_interval,
            max_pings_outstanding: client.max_pings_outstanding,
            services: 30,
            buffer: NatsServerBufferConfig::default(),
        }
    }
}

/// `pitaya.cluster.rpc.server.nats.buffer.*`: channel capacities; Go rejects 0, and so does
/// loading here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct NatsServerBufferConfig {
    /// `messages` (75): incoming requests queued before NATS drops them as a slow consumer.
    pub messages: NonZeroUsize,
    /// `push` (100): queued pushes and kicks addressed to this server's users.
    pub push: NonZeroUsize,
}

impl Default for NatsServerBufferConfig {
    fn default() -> Self {
        // Evaluated at compile time, so the `expect`s cannot fire at run time.
        const MESSAGES: NonZeroUsize = NonZeroUsize::new(75).expect("75 is not zero");
        const PUSH: NonZeroUsize = NonZeroUsize::new(100).expect("100 is not zero");
        Self { messages: MESSAGES, push: PUSH }
    }
}

/// `pitaya.cluster.rpc.client.grpc.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GrpcClientConfig {
    /// `dialtimeout` (5s)
    #[serde(rename = "dialtimeout", with = "crate::serde_go_duration")]
    pub dial_timeout: Duration,
    /// `requesttimeout` (5s): also written as `reqTimeout` into every request's context (§7).
    #[serde(rename = "requesttimeout", with = "crate::serde_go_duration")]
    pub request_timeout: Duration,
    /// `lazyconnection` (false): dial peers on first use instead of on discovery.
    #[serde(rename = "lazyconnection")]
    pub lazy_connection: bool,
}

impl Default for GrpcClientConfig {
    fn default() -> Self {
        Self {
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            lazy_connection: false,
        }
    }
}

/// `pitaya.cluster.rpc.server.grpc.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GrpcServerConfig {
    /// `port` (3434)
    pub port: u16,
}

impl Default for GrpcServerConfig {
    fn default() -> Self {
        Self { port: 3434 }
    }
}

const DEFAULT_NATS_URL: &str = "nats://localhost:4222";
