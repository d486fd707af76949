//! The cluster runtime of pitaya-rs: what a server does in a cluster of Pitaya servers,
//! over any implementation of the cluster traits of `pitaya-cluster` (spec §6, §8).
//!
//! **Layer:** cluster runtime, above the cluster traits and the transports' layer, below
//! the server runtime (`pitaya-server`). It may depend on the wire, session, handler,
//! module and cluster-trait crates; never on a concrete transport (etcd, NATS, gRPC), on
//! the server runtime or on the facade. What it needs from the server (running local
//! handlers, metrics) it asks through its own small traits, [`LocalHandlers`] and
//! [`RpcMetrics`], which the server runtime implements.
//!
//! | Module | What it holds |
//! |---|---|
//! | `runtime` | [`ClusterRuntime`]: forwarding, user RPC, push and kick by uid |
//! | `incoming` | starting to receive, and serving peers: Sys RPCs (forwarded client messages), User RPCs, the `sys` remotes, pushes, kicks and bind announcements |
//! | `remote_session` | a backend's relayed session: bind, push, kick, data and answers by hand, through the frontend |
//! | [`modules`] | the unique-session and binding-storage modules |
//! | `parts` | [`ClusterParts`], [`ClusterSetup`], custom routing |
//! | `health` | routing around servers a call could not reach, probing them back |
//! | `hooks` | [`LocalHandlers`], [`RpcMetrics`] |
//! | `telemetry` | joining each hop's span to the propagated trace |
//! | `errors` | Pitaya errors to and from a peer's `Response.error` |
//! | `batch` | pushes to many users in one message per frontend, between pitaya-rs servers |
//!
//! Everything of `pitaya-cluster` (traits, protos, in-memory transports) is re-exported,
//! so this crate is the one cluster path a server needs.
//!
//! # Features
//! | feature | what it adds |
//! |---|---|
//! | `otlp` | OpenTelemetry parents for the hop spans, through `pitaya-otel` |

mod batch;
mod errors;
mod health;
mod hooks;
mod incoming;
pub mod modules;
mod parts;
mod remote_session;
mod runtime;
mod telemetry;

pub use pitaya_cluster::*;

pub use hooks::{LocalHandlers, RpcMetrics};
pub use parts::{ClusterFactory, ClusterParts, ClusterSetup, RouteFn, RouteRequest, boxed_factory};
pub use runtime::{ClusterRuntime, NO_SERVER_TYPE, NO_SERVERS, NONSENSE_RPC, RuntimeOptions};
