//! [`BindingStorage`]: which frontend holds a user (spec §8.6). The gRPC transport needs
//! it to reach a user by uid; NATS does not (it publishes on per-user subjects).

use pitaya_core::{BoxFuture, Error};

/// Message of a lookup for a uid without binding (Go's text).
pub const BINDING_NOT_FOUND: &str = "binding for this user was not found in etcd";

/// Where users are bound. Implemented over etcd by `pitaya-etcd`
/// (`<prefix>bindings/<frontendType>/<uid>` = frontend server id).
pub trait BindingStorage: Send + Sync + 'static {
    /// The id of the frontend of type `frontend_type` that holds `uid`.
    ///
    /// # Errors
    /// `PIT-000` [`BINDING_NOT_FOUND`] when no binding exists; storage errors.
    fn frontend_of<'a>(
        &'a self,
        uid: &'a str,
        frontend_type: &'a str,
    ) -> BoxFuture<'a, Result<String, Error>>;

    /// Records that `uid` is now bound on this server (a frontend, after a bind).
    ///
    /// # Errors
    /// Storage errors.
    fn put<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), Error>>;

    /// Removes the binding of `uid` on this server's type (its session closed). As in Go
    /// the delete is unconditional.
    ///
    /// # Errors
    /// Storage errors.
    fn remove<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), Error>>;
}
