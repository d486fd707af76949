//! `pitaya.worker.*`: the Redis-backed reliable RPC worker (spec §10).

use serde::{Deserialize, Serialize};

/// `pitaya.worker.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// `pitaya.worker.redis.*`
    pub redis: WorkerRedisConfig,
    /// `namespace` (""): prefix of the worker's Redis keys.
    #[serde(deserialize_with = "crate::lenient::string")]
    pub namespace: String,
    /// `concurrency` (1): jobs processed at once.
    pub concurrency: usize,
    /// `pitaya.worker.retry.*`
    pub retry: WorkerRetryConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            redis: WorkerRedisConfig::default(),
            namespace: String::new(),
            concurrency: 1,
            retry: WorkerRetryConfig::default(),
        }
    }
}

/// `pitaya.worker.redis.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WorkerRedisConfig {
    /// `serverurl` ("localhost:6379").
    // Go's docs and defaults map say `pitaya.worker.redis.url`, but the struct reads
    // `serverurl`; only this key takes effect.
    #[serde(rename = "serverurl", deserialize_with = "crate::lenient::string")]
    pub server_url: String,
    /// `pool` (10): Redis connections. Go keeps it as the string `"10"`; both forms are read.
    #[serde(deserialize_with = "crate::lenient::u32_from_string")]
    pub pool: u32,
    /// `password` (""); redacted in [`PitayaConfig::to_dotted`](crate::PitayaConfig::to_dotted).
    #[serde(deserialize_with = "crate::lenient::string")]
    pub password: String,
}

impl Default for WorkerRedisConfig {
    fn default() -> Self {
        Self { server_url: "localhost:6379".to_owned(), pool: 10, password: String::new() }
    }
}

/// `pitaya.worker.retry.*`: job retry policy. Go's code defaults differ from its docs
/// (docs: max 5, exponential 2, minDelay 0, maxRandom 10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WorkerRetryConfig {
    /// `enabled` (true)
    pub enabled: bool,
    /// `max` (2): attempts before a job is dropped.
    pub max: u32,
    /// `exponential` (5): backoff base.
    pub exponential: u32,
    /// `minDelay` (10): lower bound of the backoff, in seconds.
    #[serde(rename = "minDelay", alias = "mindelay")]
    pub min_delay: u32,
    /// `maxDelay` (10): upper bound of the backoff, in seconds.
    #[serde(rename = "maxDelay", alias = "maxdelay")]
    pub max_delay: u32,
    /// `maxRandom` (0): random seconds added to each delay.
    #[serde(rename = "maxRandom", alias = "maxrandom")]
    pub max_random: u32,
}

impl Default for WorkerRetryConfig {
    fn default() -> Self {
        Self { enabled: true, max: 2, exponential: 5, min_delay: 10, max_delay: 10, max_random: 0 }
    }
}
