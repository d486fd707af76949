//! NATS RPC for Pitaya for Rust, wire-compatible with Go Pitaya (spec §6): Rust and Go
//! servers on one NATS server form one cluster.
//!
//! **Layer:** implementations (the table in `xtask/src/layers.rs`): may depend on crates of
//! the foundation, serialization, core, services and contracts layers.
//!
//! Each process opens two NATS connections, as Go does (spec §6.1):
//! [`NatsRpcClient`] sends RPCs (request/reply on `pitaya/servers/<type>/<id>`), pushes,
//! kicks and bind announcements; [`NatsRpcServer`] holds every subscription and hands
//! what arrives to the cluster runtime's [`RpcHandler`](pitaya_cluster::RpcHandler).
//! Both implement the transport traits of `pitaya-cluster`, so the runtime does not know
//! it talks NATS.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use pitaya_cluster::{DieSignal, RpcHandler, RpcServer, Server};
//! # async fn run(handler: Arc<dyn RpcHandler>) -> Result<(), pitaya_core::Error> {
//! let config = pitaya_config::PitayaConfig::default().cluster.rpc;
//! let me = Arc::new(Server::new("connector", true, Default::default()));
//! let die = DieSignal::new();
//! let client = pitaya_nats::NatsRpcClient::connect(&config.client.nats, me.clone(), die.clone()).await?;
//! let server = pitaya_nats::NatsRpcServer::connect(&config.server.nats, me, die).await?;
//! server.start(handler).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - `subjects`: [`server_subject`], [`user_push_subject`], [`user_kick_subject`] and
//!   [`bindings_subject`], the subjects of spec §6.2.
//! - `connection`: connection options, reconnection, and the die signal on a connection
//!   lost for good.
//! - `client`: [`NatsRpcClient`].
//! - `server` and `requests`: [`NatsRpcServer`] and its request loop (bounded queue,
//!   `services` concurrent handlers, replies).
//! - `users`: per-user push and kick subscriptions, counted per uid; `ordered`: in-order
//!   delivery behind a bounded queue, for them and for bind announcements.
//! - in-flight tracking for a bounded `stop` is `pitaya_cluster::gate`.
//!
//! # Connection options that differ from nats.go
//! - **`maxpingsoutstanding`** (`pitaya.cluster.rpc.{client,server}.nats`, Go default 3)
//!   is honoured by scaling `pinginterval`: async-nats always gives up when a third ping
//!   is due with two unanswered, so it pings every `pinginterval * (max + 1) / 3`. A
//!   server that stops answering (frozen, or a network cut that sends no reset) is then
//!   given up on at most `(maxpingsoutstanding + 1) * pinginterval` after it last spoke,
//!   the same longest time as nats.go (8 minutes with Pitaya's defaults of 2m and 3). The
//!   shortest time is 2/3 of that (5m20s by default) where nats.go's is
//!   `maxpingsoutstanding * pinginterval` (6m), and async-nats only pings a connection
//!   that has been idle for an interval. A `pinginterval` of 0 (no pings in nats.go) pings
//!   once a day. Tested against nats-server behind a proxy that goes silent.
//! - **`ws://` and `wss://` URLs** (NATS over WebSocket) are refused at start with a
//!   `PIT-000` error naming the `connect` key. async-nats would need its `websockets`
//!   feature: a second WebSocket stack with fixed webpki root certificates (licensed
//!   CDLA-Permissive-2.0, outside `deny.toml`) and no permessage-deflate, so
//!   `websocketcompression` could not be honoured anyway. Use `nats://` or `tls://`.
//!
//! # Features
//! None. TLS (`tls://` URLs) uses rustls with ring.

mod client;
mod connection;
mod ordered;
mod requests;
mod server;
mod subjects;
mod users;

pub use client::NatsRpcClient;
pub use server::{NatsRpcServer, STOP_TIMEOUT};
pub use subjects::{bindings_subject, server_subject, user_kick_subject, user_push_subject};
