//! The standalone server end to end: the echo app on 127.0.0.1 port 0, driven by the
//! client crate and by raw TCP and WebSocket peers, one module per area.
//!
//! Every wait is bounded ([`support::WAIT`]) and every test body too
//! ([`support::within`]), so a server that hangs fails a test in seconds instead of
//! stalling the run. Nothing here asserts on speed.

mod broadcast;
mod config;
mod groups;
mod handshake;
mod heartbeat;
mod lifecycle;
mod malformed;
mod pipelines;
mod pipelining;
mod readiness;
mod resume_server;
mod route_compression;
mod routes;
mod sessions;
mod shutdown;
mod support;
