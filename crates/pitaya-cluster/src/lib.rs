//! The cluster layer of Pitaya for Rust (spec §5, §6, §8).
//!
//! **Layer:** contracts (the table in `xtask/src/layers.rs`): may depend on crates of the
//! foundation, serialization, core and services layers.
//!
//! # Layout
//! - [`Server`]: a server's record, in the JSON Go Pitaya writes to etcd.
//! - [`ServiceDiscovery`] and [`SdListener`]: who is in the cluster. `pitaya-etcd`
//!   implements it over etcd.
//! - [`RpcClient`], [`RpcServer`] and [`RpcHandler`]: messages between servers.
//!   `pitaya-nats` implements the transport over NATS.
//! - [`BindingStorage`]: which frontend holds a uid (needed by gRPC).
//! - [`memory`]: in-process implementations of both, for tests and single-process
//!   clusters.
//! - [`context`]: the `reqTimeout` rules of the propagated context.
//! - [`gate`]: in-flight accounting for transports that drain on stop.
//! - [`DieSignal`]: how a layer that cannot go on asks the application to stop.
//! - [`Unreachable`]: how an RPC client marks a call that never reached its target.
//!
//! Swapping NATS for gRPC, or etcd for another discovery, means passing another
//! implementation of these traits; nothing else changes.

mod binding;
pub mod context;
mod die;
mod discovery;
pub mod gate;
pub mod memory;
mod rpc;
mod server;
mod unreachable;

pub use binding::{BINDING_NOT_FOUND, BindingStorage};
pub use die::DieSignal;
pub use discovery::{SdListener, ServiceDiscovery};
pub use pitaya_protos::protos;
pub use rpc::{RpcClient, RpcHandler, RpcServer, RpcServerLoad, UserSubscription};
pub use server::{
    GRPC_EXTERNAL_HOST_KEY, GRPC_EXTERNAL_PORT_KEY, GRPC_HOST_KEY, GRPC_PORT_KEY, REGION_KEY,
    Server,
};
pub use unreachable::{Unreachable, UnreachableKind, unreachable_kind};

use std::time::Duration;

use pitaya_core::Error;

/// Message of a call that timed out on the caller's side (spec §6.3).
pub const TIMEOUT_MESSAGE: &str = "rpc client: request timeout";

/// The `PIT-408` error a caller gets when `route` on `target_id` did not answer in
/// `timeout` (spec §6.3), with Go's metadata.
pub fn timeout_error(timeout: Duration, route: &str, me: &str, target_id: &str) -> Error {
    Error::new(pitaya_core::codes::TIMEOUT, TIMEOUT_MESSAGE)
        .with_metadata("timeout", pitaya_config::godur::format(timeout))
        .with_metadata("route", route)
        .with_metadata("server", me)
        .with_metadata("peer.id", target_id)
}
