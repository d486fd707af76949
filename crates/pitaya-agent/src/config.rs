//! [`AgentConfig`]: the per-connection settings, from Pitaya's config keys.

use std::time::Duration;

/// Settings of every agent of a server.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `pitaya.heartbeat.interval` (30 s): the server sends a heartbeat this often and
    /// closes a connection silent for two intervals (spec §1.6). Zero disables both.
    pub heartbeat: Duration,
    /// Time a client has to complete the handshake (handshake and ack) after connecting.
    /// Go has no such limit; without one, a client that connects and never finishes a
    /// packet holds its connection until the heartbeat timeout.
    pub handshake_timeout: Duration,
    /// `pitaya.buffer.agent.messages` (100): outgoing messages queued per connection.
    pub outgoing_capacity: usize,
    /// `pitaya.buffer.agent.conntimeout` (10 s): how long a write, or a sender waiting for
    /// room in the outgoing queue, may take, and how long the queue may stay full under a
    /// broadcast (which never waits), before the connection is closed as too slow.
    pub write_timeout: Duration,
    /// `pitaya.buffer.handler.localprocess` (20): client messages queued per session
    /// while its handlers run.
    pub dispatch_capacity: usize,
    /// Largest number of bytes batched into one write.
    pub max_write_batch: usize,
    /// `pitaya.handler.messages.compressroutes.onlyifclientdoes` (false): routes sent to
    /// a client stay full strings, even when in the dictionary, until that client sends a
    /// request or notify whose route is a code. For clients that ignore the handshake's
    /// `sys.dict` (libpitaya). Off, a route in the dictionary is always sent as its code,
    /// as Go does (spec §2.3).
    pub compress_routes_only_if_client_does: bool,
    /// `pitaya.session.resume.*`: session resume for clients that ask for it
    /// (`docs/resume.md`); `None` (the default, `enabled = false`): no client gets a token.
    pub resume: Option<ResumeSettings>,
}

/// How dropped sessions are kept for their clients to resume (`pitaya.session.resume.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumeSettings {
    /// `ttl` (30 s): how long a dropped session waits for its client.
    pub ttl: Duration,
    /// `buffer` (256): Data packets kept per session for replay.
    pub buffer: usize,
    /// `bufferbytes` (1 MiB): bytes of Data packets kept per session for replay.
    pub buffer_bytes: usize,
}

impl Default for ResumeSettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(30), buffer: 256, buffer_bytes: 1 << 20 }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            outgoing_capacity: 100,
            write_timeout: Duration::from_secs(10),
            dispatch_capacity: 20,
            max_write_batch: 64 * 1024,
            compress_routes_only_if_client_does: false,
            resume: None,
        }
    }
}
