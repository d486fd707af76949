//! The server runtime of pitaya-rs: builds a Pitaya server from its configuration,
//! acceptors and components, runs it, and shuts it down gracefully.
//!
//! **Layer:** server runtime, above the cluster runtime and every service crate, below
//! the facade `pitaya` (which re-exports it and adds `Pitaya::builder()`) and the tools.
//! It may depend on any lower layer and on the concrete transports, which only the
//! builder's `etcd_nats_cluster`/`etcd_grpc_cluster` name; never on the facade.
//!
//! ```no_run
//! use pitaya_server::Builder;
//! use pitaya_handler::Component;
//!
//! async fn ping(_: bytes::Bytes) -> Result<bytes::Bytes, pitaya_core::Error> {
//!     Ok(bytes::Bytes::from_static(b"pong"))
//! }
//!
//! # async fn run() -> Result<(), pitaya_core::Error> {
//! Builder::new()
//!     .tcp("127.0.0.1:3250")
//!     .component(Component::new("room").handler("ping", ping))
//!     .build()?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! | Module | What it holds |
//! |---|---|
//! | `builder`, `acceptor_spec` | [`Builder`], [`AcceptorSpec`] |
//! | `cluster_builder` | the builder's cluster settings and transports (feature `cluster`) |
//! | `app` | [`App`] (built) and [`RunningApp`] (serving): start-up, shutdown |
//! | `handle` | [`AppHandle`]: sessions, groups, pushes, kicks, RPC |
//! | `fanout` | pushes to many sessions: encoded once, queued without waiting, each group's sessions cached |
//! | `dispatch` | client messages to local handlers, or to the cluster runtime |
//! | `cluster_glue` | the cluster runtime started from the builder's settings; the server's side of its hooks |
//! | `metrics_wiring` | the reporters, the periodic gauges, response-time reporting |
//! | `docs` | [`Builder::docs`] |
//! | `worker` | [`AppHandle`] as the reliable-RPC worker's sender (feature `worker`) |
//!
//! # Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `cluster` | yes | cluster mode: `Builder::{frontend, metadata, remote, route, cluster, memory_cluster}`, `AppHandle::{rpc, rpc_to, ...}`, the unique-session module (`pitaya-cluster-runtime`) |
//! | `etcd` + `nats` | no | `Builder::etcd_nats_cluster` |
//! | `etcd` + `grpc` | no | `Builder::etcd_grpc_cluster`, with the etcd binding storage |
//! | `worker` | no | `AppHandle` as `pitaya_worker::RpcSender` |
//! | `otlp` | no | OpenTelemetry parents for the cluster hops' spans |
//!
//! Without `cluster` the server is standalone only; a second bind of a uid then closes
//! the older session without a kick packet (the unique-session module belongs to the
//! cluster runtime).

mod acceptor_spec;
mod app;
mod builder;
#[cfg(feature = "cluster")]
mod cluster_builder;
#[cfg(feature = "cluster")]
mod cluster_glue;
mod dispatch;
mod docs;
mod fanout;
mod handle;
mod metrics_wiring;
#[cfg(feature = "worker")]
mod worker;

pub use acceptor_spec::AcceptorSpec;
pub use app::{App, RunningApp};
pub use builder::Builder;
pub use handle::AppHandle;
