//! [`Peers`]: one tonic [`Channel`] per discovered server, dialed when the server is
//! discovered or on first use (spec §7).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use pitaya_cluster::Server;
use tokio::runtime::Handle;
use tokio::sync::OnceCell;
use tokio::task::AbortHandle;
use tonic::transport::{Channel, Endpoint};

use crate::address::{address_keys, dial_uri, grpc_address};

/// How peers are dialed.
#[derive(Debug, Clone)]
pub(crate) struct DialSettings {
    pub(crate) dial_timeout: Duration,
    pub(crate) lazy: bool,
    pub(crate) region: String,
}

/// The servers this client can reach, by id. Closed by [`Peers::close`]: it then forgets
/// every peer and ignores new ones.
pub(crate) struct Peers {
    settings: DialSettings,
    runtime: Option<Handle>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    by_id: HashMap<String, Arc<Peer>>,
    closed: bool,
}

/// One server's connection. The channel is made once: by the eager dial when it succeeds,
/// otherwise lazily by the first call (tonic then connects, and reconnects, on demand).
pub(crate) struct Peer {
    uri: String,
    endpoint: Endpoint,
    dial_timeout: Duration,
    channel: OnceCell<Channel>,
    dialing: Mutex<Option<AbortHandle>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Peers {
    /// No peers yet. `runtime` runs the eager dials when `server_added` is called from
    /// outside a tokio runtime.
    pub(crate) fn new(settings: DialSettings, runtime: Option<Handle>) -> Self {
        Self { settings, runtime, state: Mutex::default() }
    }

    /// The peer of server `id`, if it has a usable address and was not removed.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Peer>> {
        lock(&self.state).by_id.get(id).cloned()
    }

    /// Records `server`, replacing a previous record with another address, and dials it
    /// unless dialing is lazy. A server without a usable address is logged and gets no
    /// peer (calls to it fail with "no connection").
    pub(crate) fn add(&self, server: &Server) {
        let Some(peer) = self.peer_for(server) else {
            lock(&self.state).by_id.remove(&server.id).inspect(|old| old.stop_dialing());
            return;
        };
        let peer = Arc::new(peer);
        {
            let mut state = lock(&self.state);
            if state.closed {
                return;
            }
            if state.by_id.get(&server.id).is_some_and(|old| old.uri == peer.uri) {
                // Rediscovered at the same address: keep the connection.
                return;
            }
            if let Some(old) = state.by_id.insert(server.id.clone(), peer.clone()) {
                old.stop_dialing();
            }
        }
        tracing::debug!(server = %server.id, uri = %peer.uri, "grpc client: added server");
        if !self.settings.lazy {
            self.dial(&server.id, peer);
        }
    }

    /// Forgets server `id`. Calls in flight keep their channel and finish; the connection
    /// closes when the last of them ends.
    pub(crate) fn remove(&self, id: &str) {
        if let Some(old) = lock(&self.state).by_id.remove(id) {
            old.stop_dialing();
            tracing::debug!(server = %id, "grpc client: removed server");
        }
    }

    /// Forgets every peer and ignores servers added from now on.
    pub(crate) fn close(&self) {
        let old = {
            let mut state = lock(&self.state);
            state.closed = true;
            std::mem::take(&mut state.by_id)
        };
        old.values().for_each(|p| p.stop_dialing());
    }

    fn peer_for(&self, server: &Server) -> Option<Peer> {
        let Some((host, port)) = grpc_address(server, &self.settings.region) else {
            let (host_key, port_key) = address_keys(server, &self.settings.region);
            tracing::error!(
                server = %server.id,
                "grpc client: server has no {host_key} or {port_key} in its metadata: it cannot be called"
            );
            return None;
        };
        let endpoint = dial_uri(&host, &port).and_then(|uri| {
            let endpoint = Endpoint::from_shared(uri.clone()).ok()?;
            Some((uri, endpoint))
        });
        let Some((uri, endpoint)) = endpoint else {
            tracing::error!(server = %server.id, %host, %port, "grpc client: invalid gRPC address: the server cannot be called");
            return None;
        };
        let dial_timeout = self.settings.dial_timeout;
        let endpoint = endpoint.connect_timeout(dial_timeout).tcp_nodelay(true);
        Some(Peer {
            uri,
            endpoint,
            dial_timeout,
            channel: OnceCell::new(),
            dialing: Mutex::default(),
        })
    }

    fn dial(&self, id: &str, peer: Arc<Peer>) {
        let runtime = Handle::try_current().ok().or_else(|| self.runtime.clone());
        let Some(runtime) = runtime else {
            tracing::debug!(server = %id, "grpc client: no runtime to dial on; dialing on first use");
            return;
        };
        let id = id.to_owned();
        let task = runtime.spawn({
            let peer = peer.clone();
            async move {
                if let Err(e) = peer.connect().await {
                    tracing::error!(server = %id, uri = %peer.uri, error = %e, "grpc client: unable to connect to server");
                }
            }
        });
        *lock(&peer.dialing) = Some(task.abort_handle());
    }
}

impl Peer {
    /// The channel to this server, made lazily if the eager dial has not succeeded (it
    /// waits for a dial in progress).
    pub(crate) async fn channel(&self) -> Channel {
        self.channel.get_or_init(|| async { self.endpoint.connect_lazy() }).await.clone()
    }

    /// Connects now (TCP and HTTP/2 handshake within the dial timeout) unless a channel
    /// exists already.
    async fn connect(&self) -> Result<(), String> {
        self.channel
            .get_or_try_init(|| async {
                match tokio::time::timeout(self.dial_timeout, self.endpoint.connect()).await {
                    Ok(Ok(channel)) => Ok(channel),
                    Ok(Err(e)) => Err(display_chain(&e)),
                    Err(_) => Err(format!("no connection within {:?}", self.dial_timeout)),
                }
            })
            .await
            .map(|_| ())
    }

    fn stop_dialing(&self) {
        if let Some(task) = lock(&self.dialing).take() {
            task.abort();
        }
    }
}

/// `e` and its sources, as tonic's transport errors say little at the top.
fn display_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
