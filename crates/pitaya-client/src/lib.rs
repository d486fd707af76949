//! Async Pitaya client over TCP and WebSocket, optionally TLS: handshake, heartbeats,
//! concurrent requests, notifies and pushes.
//!
//! **Layer:** services (the table in `xtask/src/layers.rs`): may depend on crates of the
//! foundation, serialization and core layers.
//!
//! It speaks the wire protocol of Go Pitaya frontends (and of this workspace's server):
//! the integration tests, examples, CLI and load generator all use it.
//!
//! # Layout
//! - [`Client`] (`client.rs`): connect, request, notify, close; cheap to clone.
//! - [`Pushes`] and [`Push`] (`pushes.rs`): what the server pushes, in order.
//! - [`ClientOptions`] (`options.rs`), [`TlsOptions`] (`tls.rs`), [`Endpoint`] and
//!   [`Transport`] (`endpoint.rs`): what to connect to and how.
//! - [`ClientError`] (`error.rs`) and [`CloseReason`] (`close_reason.rs`).
//! - [`ResumeOptions`], [`ResumeEvent`] and [`Events`] (`resume.rs`): opt-in session
//!   resume (`docs/resume.md`); `replay.rs` keeps the packets to re-send and paces
//!   reconnects.
//! - Internals: `transport.rs` dials and frames packets, `handshake.rs` runs the handshake,
//!   `driver.rs` is the I/O task (one per client: runs a connection's `reader.rs` and
//!   `writer.rs` halves and, with resume, reconnects after a drop), `shared.rs` holds the
//!   pending requests and counters it shares with the handles.
//!
//! # Example
//! ```no_run
//! use pitaya_client::{Client, ClientError, ClientOptions};
//!
//! # async fn demo() -> Result<(), ClientError> {
//! let (client, mut pushes) =
//!     Client::connect("ws://127.0.0.1:3251/", ClientOptions::default()).await?;
//! let reply = client.request("connector.room.join", r#"{"name":"ana"}"#).await?;
//! println!("joined: {}", String::from_utf8_lossy(&reply));
//! while let Some(push) = pushes.recv().await {
//!     println!("{}: {}", push.route, String::from_utf8_lossy(&push.data));
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Behaviour worth knowing
//! - Responses are matched to requests by id, so many requests can be in flight at once.
//! - A full push channel drops pushes (counted) rather than stalling responses.
//! - If the server announced a heartbeat interval and stays silent for three of them,
//!   the connection is closed ([`CloseReason::HeartbeatTimeout`]).
//! - A message that does not decode (unknown route code, bad zlib) closes the connection,
//!   as the server does in the other direction.
//! - With [`ClientOptions::resume`], a dropped connection is resumed rather than closed:
//!   see "Session resume" on [`Client`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic))]

mod client;
mod close_reason;
mod driver;
mod endpoint;
mod error;
mod handshake;
mod options;
mod pushes;
mod reader;
mod replay;
mod resume;
mod shared;
mod tls;
mod transport;
mod writer;

pub use client::Client;
pub use close_reason::CloseReason;
pub use endpoint::{Endpoint, Transport};
pub use error::ClientError;
pub use options::ClientOptions;
pub use pushes::{Push, Pushes};
pub use resume::{Events, ResumeEvent, ResumeOptions};
pub use tls::TlsOptions;

/// Re-exported so callers can name handshake and error types without extra dependencies.
pub use pitaya_codec::{HandshakeRequest, HandshakeResponse};
pub use pitaya_serialize::ErrorPayload;
