//! The agent: one per client connection on a frontend (spec §1).
//!
//! **Layer:** contracts (the table in `xtask/src/layers.rs`): may depend on crates of the
//! foundation, serialization, core and services layers.
//!
//! An agent owns a [`Connection`](pitaya_acceptor::Connection) and three tasks:
//! - the **reader** runs the handshake state machine (handshake → ack → working), tracks
//!   liveness for the heartbeat, decodes messages and queues them for dispatch;
//! - the **dispatcher** runs the session's messages **in order**, one at a time, through
//!   the application's [`Dispatch`], and queues each request's single response;
//! - the **writer** drains the bounded outgoing queue, encoding many messages into one
//!   buffer so they leave in one write, and sends kick packets ahead of the queue. With
//!   `compressroutes.onlyifclientdoes` on, it writes routes as strings until the reader
//!   has seen the client send a route code (`routes`).
//!
//! With session resume on ([`ResumeSettings`], `docs/resume.md`), a client that asks for it
//! gets a token, and its session outlives a dropped connection for the ttl (`resume`):
//! every Data packet the session sends is numbered and kept when queued, the connection
//! that resumes takes over the session, its dispatcher and its route state on the
//! handshake ack, and the packets the client missed are queued ahead of anything new.
//! Sessions without a token never touch any of this.
//!
//! Sessions run in parallel with each other; one session's messages never overtake each
//! other (Go Pitaya's dispatch pool reorders them, its issue #179). Queues are bounded:
//! a client that sends faster than its handlers run is slowed down by TCP back-pressure,
//! and a client that does not read its messages is closed after the write timeout instead
//! of stalling the code that pushes to it (Go's issues #312 and #321).

mod agent;
mod config;
mod control;
mod dispatch;
mod entity;
mod queue;
mod resume;
mod routes;
mod writer;

pub use agent::{Agent, AgentShared, serve};
pub use config::{AgentConfig, ResumeSettings};
pub use dispatch::{ClientMessage, Dispatch, Dispatched, Tracked};
