//! Pitaya for Rust: a game-server framework wire-compatible with Go Pitaya.
//!
//! **Layer:** the facade, at the top of the server stack: re-exports of the layers below
//! (the server runtime `pitaya-server` and every crate it builds on), feature flags that
//! forward to them, and the entry point [`Pitaya::builder`]. It holds no logic; the FFI
//! crate and the tools sit beside it, on the runtime crates.
//!
//! The [`Builder`] assembles a server:
//!
//! ```no_run
//! use pitaya::{Component, Error, Json, Pitaya, Session};
//!
//! async fn hello(s: Session, Json(name): Json<String>) -> Result<Json<String>, Error> {
//!     s.bind(&name).await?;
//!     Ok(Json(format!("hello {name}")))
//! }
//!
//! # async fn run() -> Result<(), Error> {
//! Pitaya::builder()
//!     .server_type("connector")
//!     .tcp("127.0.0.1:3250")
//!     .component(Component::new("room").handler("hello", hello))
//!     .build()?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! # Crates
//! | module | crate | what |
//! |---|---|---|
//! | [`codec`] | `pitaya-codec` | wire codec (packets, messages, handshake) |
//! | [`serialize`] | `pitaya-serialize` | JSON and protobuf serializers |
//! | [`session`] | `pitaya-session` | sessions and the session pool |
//! | [`handler`] | `pitaya-handler` | components, extractors, pipelines |
//! | [`groups`] | `pitaya-groups` | groups (rooms) |
//! | [`acceptor`] | `pitaya-acceptor` | TCP, WebSocket, TLS acceptors |
//! | [`agent`] | `pitaya-agent` | per-connection protocol driver |
//! | [`config`] | `pitaya-config` | configuration with Pitaya's keys |
//! | [`cluster`] | `pitaya-cluster-runtime`, `pitaya-cluster` | cluster mode: discovery and RPC traits, forwarding, remotes, backend sessions |
//! | [`modules`] | `pitaya-cluster-runtime` | the unique-session and binding-storage modules |
//! | [`Builder`], [`App`], [`AppHandle`] | `pitaya-server` | the server runtime |
//! | `client` | `pitaya-client` | async client (feature `client`, on by default) |
//!
//! # Features
//! | feature | default | what it adds |
//! |---|---|---|
//! | `client` | yes | `pitaya::client`, the async Rust client |
//! | `etcd` | no | `pitaya::etcd`, etcd service discovery (its build needs `protoc`) |
//! | `nats` | no | `pitaya::nats`, NATS RPC; with `etcd`, `Builder::etcd_nats_cluster` |
//! | `grpc` | no | `pitaya::grpc`, gRPC RPC; with `etcd`, `Builder::etcd_grpc_cluster` (with etcd binding storage) |
//! | `worker` | no | `pitaya::worker`, reliable RPC through Redis workers; `AppHandle` is its `RpcSender` |
//! | `otlp` | no | `pitaya::otel`, OpenTelemetry export of the request spans over OTLP/gRPC (Jaeger), joined across servers |

/// Cluster mode: the cluster runtime (`pitaya-cluster-runtime`) with everything of the
/// cluster traits (`pitaya-cluster`) it re-exports.
pub use pitaya_cluster_runtime as cluster;
/// The framework's own modules: unique session and binding storage.
pub use pitaya_cluster_runtime::modules;
pub use pitaya_server::{AcceptorSpec, App, AppHandle, Builder, RunningApp};

pub use pitaya_acceptor as acceptor;
pub use pitaya_agent as agent;
#[cfg(feature = "client")]
pub use pitaya_client as client;
pub use pitaya_codec as codec;
pub use pitaya_config as config;
pub use pitaya_core::{BoxFuture, Error, codes};
pub use pitaya_core::{Context, context};
#[cfg(feature = "etcd")]
pub use pitaya_etcd as etcd;
pub use pitaya_groups as groups;
#[cfg(feature = "grpc")]
pub use pitaya_grpc as grpc;
pub use pitaya_handler as handler;
pub use pitaya_handler::{
    Component, Json, Lifecycle, Msg, Proto, RemoteComponent, RemoteRequest, RouteInfo, State,
    Valid, after_fn, before_fn,
};
pub use pitaya_metrics as metrics;
pub use pitaya_modules::{BinaryModule, Module, ModuleContext};
#[cfg(feature = "nats")]
pub use pitaya_nats as nats;
#[cfg(feature = "otlp")]
pub use pitaya_otel as otel;
pub use pitaya_serialize as serialize;
pub use pitaya_serialize::SerializerKind;
pub use pitaya_session as session;
pub use pitaya_session::{Session, SessionPool};
#[cfg(feature = "worker")]
pub use pitaya_worker as worker;

/// Entry point: `Pitaya::builder()`.
#[derive(Debug, Clone, Copy)]
pub struct Pitaya;

impl Pitaya {
    /// A builder with Go Pitaya's default configuration.
    pub fn builder() -> Builder {
        Builder::new()
    }
}
