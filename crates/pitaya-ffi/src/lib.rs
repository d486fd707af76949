//! A C ABI over the pitaya-rs cluster runtime: a server written in any language with a C
//! FFI (C, C++, C#, Python through `ctypes`...) joins a Pitaya cluster on etcd + NATS or
//! etcd + gRPC, and Go and Rust servers see it as a peer. This is the role of Go Pitaya's
//! libpitaya-cluster.
//!
//! **Layer:** bindings and tools (the table in `xtask/src/layers.rs`): built on the server
//! runtime and the crates below it, never on the `pitaya` facade.
//!
//! The reference for C callers is the generated header `include/pitaya.h` (cbindgen, from
//! the doc comments of this crate; `tests/header.rs` fails when the committed header is
//! stale). In short:
//!
//! ```c
//! PitayaBuilder *b = pitaya_builder_new("room", false);
//! pitaya_builder_set(b, "pitaya.cluster.sd.etcd.prefix", "pitaya/");
//! pitaya_builder_handler(b, "room", "echo", PITAYA_KIND_REQUEST, echo, NULL);
//! PitayaServer *server;
//! PitayaError *err = pitaya_start(b, &server);      /* consumes b */
//! /* ... until SIGTERM ... */
//! pitaya_shutdown(server);                           /* graceful; frees server */
//! ```
//!
//! | Module | What it holds |
//! |---|---|
//! | `boundary` | [`PitayaError`], [`PitayaBuffer`], argument conversions, the panic guard every exported function runs in |
//! | `builder` | [`PitayaBuilder`]: configuration, metadata, transport, acceptors, handlers and remotes |
//! | `call` | [`PitayaCall`] and [`PitayaRequest`]: one incoming request, notify or remote call, answered now or later, and its session |
//! | `server` | [`PitayaServer`]: start, graceful shutdown, RPC, pushes, kicks, groups |
//! | `log` | the log callback |
//!
//! Every exported function catches panics and turns them into an error; callbacks are
//! declared `C-unwind` so that a panic in a callback written in Rust reaches the library's
//! guard and becomes an error reply instead of an abort.

mod boundary;
mod builder;
mod call;
mod log;
mod server;

pub use boundary::{PitayaBuffer, PitayaError, pitaya_buffer_free, pitaya_error_free};
pub use builder::{
    PitayaBuilder, PitayaHandlerFn, PitayaKind, PitayaTransport, pitaya_builder_config_json,
    pitaya_builder_free, pitaya_builder_handler, pitaya_builder_metadata, pitaya_builder_new,
    pitaya_builder_remote, pitaya_builder_set, pitaya_builder_tcp, pitaya_builder_transport,
    pitaya_builder_ws,
};
pub use call::{
    PitayaCall, PitayaRequest, pitaya_call_bind, pitaya_call_fail, pitaya_call_respond,
    pitaya_call_set_session_data,
};
pub use log::{PitayaLogFn, pitaya_set_log_callback};
pub use server::{
    PitayaServer, pitaya_group_add_member, pitaya_group_broadcast, pitaya_group_create,
    pitaya_group_delete, pitaya_group_members, pitaya_group_remove_member, pitaya_kick_users,
    pitaya_push_to_users, pitaya_rpc, pitaya_server_client_addr, pitaya_server_id, pitaya_shutdown,
    pitaya_start,
};
