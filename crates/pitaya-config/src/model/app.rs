//! Keys that shape one server's client handling: heartbeat, handler, buffers, concurrency,
//! sessions, acceptor, connection rate limiting and default pipelines.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `pitaya.heartbeat.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HeartbeatConfig {
    /// `interval` (30s): heartbeat period announced in the handshake response (spec §1.6).
    #[serde(with = "crate::serde_go_duration")]
    pub interval: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        Self { interval: Duration::from_secs(30) }
    }
}

/// `pitaya.handler.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HandlerConfig {
    /// `pitaya.handler.messages.*`
    pub messages: HandlerMessagesConfig,
}

/// `pitaya.handler.messages.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HandlerMessagesConfig {
    /// `compression` (true): zlib-compress message data sent to clients (spec §2.4).
    pub compression: bool,
    /// `compressroutes.*`: when routes sent to clients are dictionary codes.
    #[serde(rename = "compressroutes")]
    pub compress_routes: CompressRoutesConfig,
}

impl Default for HandlerMessagesConfig {
    fn default() -> Self {
        Self { compression: true, compress_routes: CompressRoutesConfig::default() }
    }
}

/// `pitaya.handler.messages.compressroutes.*`: not a Go key (Go always sends a route
/// that is in the dictionary as its code, spec §2.3).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct CompressRoutesConfig {
    /// `onlyifclientdoes` (false): send routes to a client (in pushes, the only
    /// server-to-client messages with a route) as full strings until that client has
    /// itself sent a message with a compressed route, then as codes. For clients that
    /// ignore the handshake's `sys.dict`, such as libpitaya, which crash on a route code.
    /// Off, routes in the dictionary are always codes, byte for byte as Go sends them.
    #[serde(rename = "onlyifclientdoes")]
    pub only_if_client_does: bool,
}

/// `pitaya.buffer.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct BufferConfig {
    /// `pitaya.buffer.agent.*`
    pub agent: AgentBufferConfig,
    /// `pitaya.buffer.handler.*`
    pub handler: HandlerBufferConfig,
}

/// `pitaya.buffer.agent.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AgentBufferConfig {
    /// `messages` (100): capacity of each agent's outgoing message queue.
    pub messages: usize,
    /// `conntimeout` (10s): write timeout on the client connection.
    // Go's docs name this `writetimeout`, but the code reads `conntimeout`; the documented key
    // never had an effect, so only this one exists here.
    #[serde(rename = "conntimeout", with = "crate::serde_go_duration")]
    pub conn_timeout: Duration,
}

impl Default for AgentBufferConfig {
    fn default() -> Self {
        Self { messages: 100, conn_timeout: Duration::from_secs(10) }
    }
}

/// `pitaya.buffer.handler.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HandlerBufferConfig {
    /// `localprocess` (20): queue of messages handled on this server.
    #[serde(rename = "localprocess")]
    pub local_process: usize,
    /// `remoteprocess` (20): queue of messages forwarded to other servers.
    #[serde(rename = "remoteprocess")]
    pub remote_process: usize,
}

impl Default for HandlerBufferConfig {
    fn default() -> Self {
        Self { local_process: 20, remote_process: 20 }
    }
}

/// `pitaya.concurrency.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ConcurrencyConfig {
    /// `pitaya.concurrency.handler.*`
    pub handler: HandlerConcurrencyConfig,
}

/// `pitaya.concurrency.handler.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HandlerConcurrencyConfig {
    /// `dispatch` (25): handler dispatch workers (spec §12.6).
    pub dispatch: usize,
}

impl Default for HandlerConcurrencyConfig {
    fn default() -> Self {
        Self { dispatch: 25 }
    }
}

/// `pitaya.session.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SessionConfig {
    /// `unique` (true): kick an older session when a uid binds again (spec §8.5).
    pub unique: bool,
    /// `pitaya.session.drain.*`
    pub drain: SessionDrainConfig,
    /// `pitaya.session.resume.*`: this project's opt-in session resume (`docs/resume.md`).
    pub resume: SessionResumeConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            unique: true,
            drain: SessionDrainConfig::default(),
            resume: SessionResumeConfig::default(),
        }
    }
}

/// `pitaya.session.resume.*`: keep a dropped client's session for a while so that it can
/// come back to it with nothing lost (not in Go Pitaya; clients must ask for it, see
/// `docs/resume.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SessionResumeConfig {
    /// `enabled` (false): give a resume token to clients that ask for one.
    pub enabled: bool,
    /// `ttl` (30s): how long a dropped session waits for its client.
    #[serde(with = "crate::serde_go_duration")]
    pub ttl: Duration,
    /// `buffer` (256): Data packets kept per session for replay.
    pub buffer: usize,
    /// `bufferbytes` (1 MiB): bytes of Data packets kept per session for replay.
    #[serde(rename = "bufferbytes")]
    pub buffer_bytes: usize,
}

impl Default for SessionResumeConfig {
    fn default() -> Self {
        Self { enabled: false, ttl: Duration::from_secs(30), buffer: 256, buffer_bytes: 1 << 20 }
    }
}

/// `pitaya.session.drain.*`: on SIGTERM, wait for sessions to reach zero before stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SessionDrainConfig {
    /// `enabled` (false)
    pub enabled: bool,
    /// `timeout` (6h): give up draining after this long.
    #[serde(with = "crate::serde_go_duration")]
    pub timeout: Duration,
    /// `period` (5s): how often the session count is checked.
    #[serde(with = "crate::serde_go_duration")]
    pub period: Duration,
}

impl Default for SessionDrainConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            timeout: Duration::from_secs(6 * 3600),
            period: Duration::from_secs(5),
        }
    }
}

/// `pitaya.acceptor.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AcceptorConfig {
    /// `proxyprotocol` (false): expect a PROXY protocol header on accepted connections (§4.3).
    #[serde(rename = "proxyprotocol")]
    pub proxy_protocol: bool,
}

/// `pitaya.conn.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ConnConfig {
    /// `pitaya.conn.ratelimiting.*` (Go's struct tag is `rateLimiting`; viper keys are
    /// case-insensitive, so the lower-case key is the one operators set).
    #[serde(rename = "ratelimiting")]
    pub rate_limiting: RateLimitingConfig,
}

/// `pitaya.conn.ratelimiting.*`: the optional per-connection rate limiter (spec §4.4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RateLimitingConfig {
    /// `limit` (20): messages allowed per `interval`.
    pub limit: u32,
    /// `interval` (1s)
    #[serde(with = "crate::serde_go_duration")]
    pub interval: Duration,
    /// `forcedisable` (false): turn the limiter off even where the app installs it.
    #[serde(rename = "forcedisable")]
    pub force_disable: bool,
}

impl Default for RateLimitingConfig {
    fn default() -> Self {
        Self { limit: 20, interval: Duration::from_secs(1), force_disable: false }
    }
}

/// `pitaya.defaultpipelines.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DefaultPipelinesConfig {
    /// `pitaya.defaultpipelines.structvalidation.*`
    #[serde(rename = "structvalidation")]
    pub struct_validation: StructValidationConfig,
}

/// `pitaya.defaultpipelines.structvalidation.*`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct StructValidationConfig {
    /// `enabled` (false): validate handler arguments before the handler runs (spec §12.5).
    pub enabled: bool,
}
