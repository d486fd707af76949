//! Pitaya for Rust on etcd, wire-compatible with Go Pitaya: Rust and Go servers sharing
//! an etcd form one cluster.
//!
//! **Layer:** implementations (the table in `xtask/src/layers.rs`): may depend on crates of
//! the foundation, serialization, core, services and contracts layers.
//!
//! - [`EtcdServiceDiscovery`]: service discovery (spec §5).
//! - [`EtcdBindingStorage`]: which frontend holds each uid (spec §8.6), needed by the
//!   gRPC transport.
//! - [`EtcdGroups`]: groups shared by every server of the cluster (spec §9).
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//!
//! use pitaya_cluster::{DieSignal, Server, ServiceDiscovery};
//! use pitaya_etcd::EtcdServiceDiscovery;
//!
//! # async fn run() -> Result<(), pitaya_core::Error> {
//! // `pitaya.cluster.sd.etcd.*`, with Go's defaults unless configured otherwise.
//! let config = pitaya_config::PitayaConfig::default().cluster.sd.etcd;
//! let die = DieSignal::new();
//! let sd = Arc::new(EtcdServiceDiscovery::new(
//!     config,
//!     Server::new("connector", true, BTreeMap::new()),
//!     die.clone(),
//! ));
//! sd.start().await?; // registered, first sync done, watching
//! let games = sd.servers_by_type("game"); // in memory, cheap
//! # drop(games);
//! tokio::select! {
//!     reason = die.wait() => tracing::error!(%reason, "lost the etcd registration"),
//!     _ = tokio::signal::ctrl_c() => {}
//! }
//! sd.stop().await; // revoke: peers see this server leave at once
//! # Ok(())
//! # }
//! ```
//!
//! # What goes over the wire
//! - Key `<prefix>servers/<type>/<id>` (prefix `pitaya/` by default), value the
//!   [`Server`](pitaya_cluster::Server) record as Go's JSON, on a lease of
//!   `heartbeat.ttl` in whole seconds (60 by default), renewed about every TTL/3.
//! - A watch on `<prefix>servers/` plus a full sync every `syncservers.interval`. As in
//!   Go, a record for an id already known is ignored, a DELETE removes by the key's last
//!   segment, keys that are not exactly `servers/<type>/<id>` and invalid records are
//!   ignored (logged), and `servertypesblacklist` types are ignored except our own entry.
//! - `stop()` revokes the lease, so the key goes at once, then waits `shutdown.delay`.
//! - [`is_connected`](EtcdServiceDiscovery::is_connected) (the application's readiness
//!   check) reads the key `health-check` with limit 1, bounded by `revoke.timeout`, as
//!   Go's `IsConnected` does.
//!
//! # Where this differs from Go, and why
//! - Sync and watch agree by revision: a sync lists at revision R and the watch resumes at
//!   R + 1, so no event is lost or applied out of order around a sync.
//! - This server stays in its own view from `start()` to `stop()`, and listeners are told
//!   about it (as with `MemoryDiscovery`). If its key disappears (deleted by hand, lease
//!   revoked or expired) the discovery notices through its watch and puts the key back at
//!   once, reusing the lease when etcd still has it, instead of waiting for the next
//!   keep-alive.
//! - A broken watch is re-created after a resync (with backoff) rather than by rebuilding
//!   the client after 10 failures: the gRPC channel reconnects by itself.
//!
//! # Layout
//! - [`EtcdServiceDiscovery`] (`discovery`): the handle, its lifecycle and lookups.
//! - `lease`: registration, keep-alive, recovery (then the die signal) and revocation.
//! - `watch` and `sync`: the watch task and the full sync it runs.
//! - `view`: the in-memory servers and the listeners.
//! - `keys`, `shared`, `backoff`, `error`: key layout, state shared with the tasks,
//!   retry delays, [`SdError`].
//!
//! The crate has no cargo features. etcd is reached over plain-text gRPC (Go Pitaya's
//! discovery has no TLS settings either).

mod backoff;
mod bindings;
mod discovery;
mod error;
mod groups;
mod keys;
mod lease;
mod shared;
mod sync;
mod view;
mod watch;

pub use bindings::{BindingStorageError, EtcdBindingStorage};
pub use discovery::EtcdServiceDiscovery;
pub use error::SdError;
pub use groups::EtcdGroups;
/// The configuration [`EtcdBindingStorage::new`] takes (`pitaya.modules.bindingstorage.etcd.*`).
pub use pitaya_config::model::EtcdBindingStorageConfig;
/// The configuration [`EtcdGroups::connect`] takes (`pitaya.groups.etcd.*`).
pub use pitaya_config::model::EtcdGroupsConfig;
/// The configuration [`EtcdServiceDiscovery::new`] takes (`pitaya.cluster.sd.etcd.*`).
pub use pitaya_config::model::EtcdSdConfig;
