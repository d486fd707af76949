//! Core types shared by every Pitaya layer, kept as small as tracing-core: the
//! [`Error`] that travels to clients and peers with a `PIT-...` code, the error [`codes`],
//! and the boxed-future alias used by object-safe async traits.
//!
//! **Layer:** core (the table in `xtask/src/layers.rs`): may depend on crates of the
//! foundation and serialization layers.

pub mod codes;
pub mod context;
mod error;

pub use context::Context;
pub use error::{Error, StdError};

/// A boxed, sendable future, for object-safe async traits (callbacks, network entities).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
