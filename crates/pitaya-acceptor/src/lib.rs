//! TCP, TLS, WebSocket and WSS acceptors that yield packet-framed client connections,
//! with the PROXY protocol and per-connection rate limiting (spec §4).
//!
//! **Layer:** services (the table in `xtask/src/layers.rs`): may depend on crates of the
//! foundation, serialization and core layers.
//!
//! An [`Acceptor`] is a bound listener. [`Acceptor::accept`] only accepts the socket; the
//! server then calls [`Incoming::establish`] in the connection's own task, which reads
//! the PROXY header, runs the TLS handshake and the WebSocket upgrade under one timeout,
//! and returns a [`Connection`]: a [`PacketReader`] and a [`PacketWriter`] that two tasks
//! can drive at once.
//!
//! # Layout
//! - `options`: [`AcceptorOptions`], [`RateLimit`], [`Transport`].
//! - `acceptor`: [`Acceptor`], [`TcpAcceptor`], [`WsAcceptor`].
//! - `incoming`: [`Incoming`] and [`Connection`].
//! - `tcp`, `ws`: connection setup for each transport.
//! - `ws_text`: relabels incoming WebSocket text frames as binary (Go skips UTF-8 checks).
//! - `proxy`, `prefixed`: PROXY v1/v2 header reading, and replay of bytes read past it.
//! - `tls`: [`load_tls_config`] and [`tls_config`].
//! - `reader`, `writer`: [`PacketReader`] and [`PacketWriter`].
//! - `rate_limit`: the per-connection limiter and [`exceeded_rate_limiting_total`].
//! - `error`: [`AcceptError`], [`ConnError`], [`ProxyHeaderError`].
//!
//! # Transports
//! | transport | framing | PROXY protocol | TLS |
//! |-----------|---------|----------------|-----|
//! | `tcp`, `tls` | packets on a byte stream | yes, before TLS | [`AcceptorOptions::tls`] |
//! | `ws`, `wss` | one packet per message (text or binary, never UTF-8 checked), any path | ignored, as in Go | [`AcceptorOptions::tls`] |
//!
//! # Example
//! ```no_run
//! use pitaya_acceptor::{Acceptor, AcceptorOptions};
//!
//! # async fn run() -> std::io::Result<()> {
//! let acceptor = Acceptor::bind_tcp("0.0.0.0:3250", AcceptorOptions::default()).await?;
//! loop {
//!     let incoming = acceptor.accept().await?;
//!     tokio::spawn(async move {
//!         let Ok(mut conn) = incoming.establish().await else { return };
//!         while let Ok(Some(packet)) = conn.reader.read().await {
//!             // Echo every packet back.
//!             let mut out = bytes::BytesMut::new();
//!             if packet.encode(&mut out).is_err() || conn.writer.write(out.freeze()).await.is_err() {
//!                 break;
//!             }
//!         }
//!         conn.writer.close().await;
//!     });
//! }
//! # }
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

mod acceptor;
mod error;
mod incoming;
mod options;
mod prefixed;
mod proxy;
mod rate_limit;
mod reader;
mod tcp;
mod tls;
mod writer;
mod ws;
mod ws_text;

pub use acceptor::{Acceptor, TcpAcceptor, WsAcceptor};
pub use error::{AcceptError, ConnError, ProxyHeaderError};
pub use incoming::{Connection, Incoming};
pub use options::{AcceptorOptions, RateLimit, Transport};
pub use rate_limit::exceeded_rate_limiting_total;
pub use reader::PacketReader;
pub use tls::{load_tls_config, tls_config};
pub use writer::PacketWriter;
