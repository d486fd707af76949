//! [`ServiceDiscovery`]: which servers are in the cluster.

use std::sync::Arc;

use pitaya_core::{BoxFuture, Error};

use crate::Server;

/// Told when servers join or leave the cluster. Called from the discovery's own task:
/// implementations must not block.
pub trait SdListener: Send + Sync + 'static {
    /// `server` was discovered.
    fn server_added(&self, server: &Arc<Server>);
    /// `server` left (its key was deleted or its lease expired).
    fn server_removed(&self, server: &Arc<Server>);
}

/// Service discovery (spec §5): registers this server and keeps a view of the others.
///
/// Lookups are synchronous and cheap: implementations keep the view in memory and update
/// it from their watch, so routing a message never waits on the discovery backend.
pub trait ServiceDiscovery: Send + Sync + 'static {
    /// This server's record.
    fn this_server(&self) -> &Arc<Server>;

    /// Registers this server, runs the first full sync and starts watching. Resolves
    /// once peers can see this server and this server sees its peers.
    ///
    /// # Errors
    /// When the backend cannot be reached or the registration fails.
    fn start(&self) -> BoxFuture<'_, Result<(), Error>>;

    /// Deregisters this server (peers see it leave at once) and stops watching.
    /// Idempotent.
    fn stop(&self) -> BoxFuture<'_, ()>;

    /// The server with `id`, this one included.
    fn server(&self, id: &str) -> Option<Arc<Server>>;

    /// Every known server of `server_type`, this one included.
    fn servers_by_type(&self, server_type: &str) -> Vec<Arc<Server>>;

    /// Every known server.
    fn servers(&self) -> Vec<Arc<Server>>;

    /// Adds a listener. It is first told about every server already known.
    fn add_listener(&self, listener: Arc<dyn SdListener>);

    /// Whether the discovery reaches its backend right now (Go's `IsConnected`), for the
    /// application's readiness check. Resolves within a bound the implementation
    /// documents; `false` when the backend does not answer in time or the discovery is
    /// not running.
    ///
    /// The default is `true`: a discovery without a remote backend (in-process, static)
    /// is always connected.
    fn is_connected(&self) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(true))
    }
}
