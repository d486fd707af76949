//! Pitaya sessions (spec §8): one per client connection on a frontend.
//!
//! **Layer:** services (the table in `xtask/src/layers.rs`): may depend on crates of the
//! foundation, serialization and core layers.
//!
//! # Layout
//! - [`Session`]: id, bound uid, key-value data, handshake data, close callbacks, push and
//!   kick through its [`NetworkEntity`].
//! - [`SessionPool`]: creates sessions, finds them by id and uid, runs the app-wide
//!   callbacks (on bind, after bind, on close) and the handshake validators.
//! - [`NetworkEntity`]: what a session talks through (the agent on a frontend; an RPC
//!   proxy on a backend).
//! - [`SharedPush`]: one push for many sessions, encoded once per wire variant and
//!   queued without waiting ([`Session::try_push_shared`]).
//!
//! # Races
//! Go Pitaya has had races between kick, reconnect and bind (its issues #220, #251, #463).
//! Here the uid is claimed with a compare-and-set, the uid index is updated under one
//! lock together with the closed flag, and close removes the index entry only when it
//! still points to the closing session, so a reconnect that binds the same uid can never
//! be unindexed by the old connection's late close.

mod entity;
mod pool;
mod session;
mod shared_push;

pub use entity::{NetworkEntity, NoopEntity, QueueFree};
pub use pitaya_serialize::session_data::SessionData;
pub use pool::{HandshakeValidator, SessionPool, WeakSessionPool};
pub use session::Session;
pub use shared_push::{SharedPush, fan_out};

/// Error messages Go Pitaya sends for session operations (spec §2.5).
pub mod messages {
    /// Binding an empty uid.
    pub const ILLEGAL_UID: &str = "illegal uid";
    /// Binding a session that already has a uid.
    pub const ALREADY_BOUND: &str = "session is already bound to an uid";
    /// Looking up a session that does not exist.
    pub const NOT_FOUND: &str = "session not found";
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of our locks leaves plain data behind, still consistent
    // for readers: keep serving instead of poisoning every later caller.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
