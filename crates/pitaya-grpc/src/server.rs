//! [`GrpcRpcServer`]: serves `protos.Pitaya` over plaintext HTTP/2 and hands what arrives
//! to an [`RpcHandler`] (spec §7).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pitaya_cluster::{RpcHandler, RpcServer, UserSubscription};
use pitaya_core::{BoxFuture, Error};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::proto::pitaya_server::PitayaServer;
use crate::service::PitayaService;
use pitaya_cluster::gate::Gate;

/// How long [`RpcServer::stop`] lets the calls being served finish before it abandons
/// them. A caller with the default 5 s request timeout has given up by then anyway.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `stop` waits for connections to close once the calls were abandoned.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The gRPC RPC server of one server: plaintext HTTP/2, no interceptors, no TLS, as Go's
/// `grpc.NewServer()` (spec §7).
///
/// [`Self::bind`] opens the listener at once, so that a server started on port 0 knows
/// its port (put it in the SD metadata as `grpcPort`) before it registers. Calls are
/// served concurrently, each handler in its own task; per-user subscriptions are not
/// needed over gRPC (peers find a user's frontend through the binding storage).
pub struct GrpcRpcServer {
    local_addr: SocketAddr,
    life: tokio::sync::Mutex<Life>,
}

enum Life {
    Bound(TcpListener),
    Running(Running),
    Stopped,
}

/// Dropping `shutdown` starts the graceful shutdown too, so a server dropped without
/// `stop` does not keep serving.
struct Running {
    shutdown: oneshot::Sender<()>,
    serve: JoinHandle<Result<(), tonic::transport::Error>>,
    gate: Gate,
    abort: watch::Sender<bool>,
}

impl GrpcRpcServer {
    /// Binds `addr` (Go listens on `:<pitaya.cluster.rpc.server.grpc.port>`, all
    /// interfaces). Nothing is served until [`RpcServer::start`]; connections made before
    /// wait in the listen backlog.
    ///
    /// # Errors
    /// `PIT-000` with the OS error text when the address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> Result<Self, Error> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            Error::unknown(format!("rpc server: cannot listen on {addr}: {e}")).with_source(e)
        })?;
        let local_addr = listener.local_addr().map_err(|e| {
            Error::unknown(format!("rpc server: no local address: {e}")).with_source(e)
        })?;
        Ok(Self { local_addr, life: tokio::sync::Mutex::new(Life::Bound(listener)) })
    }

    /// The bound address; with port 0, the port the OS chose.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl RpcServer for GrpcRpcServer {
    /// Starts serving `/protos.Pitaya/{Call,PushToUser,SessionBindRemote,KickUser}`:
    /// - `Call`: the handler's Response with status OK, even when `Response.error` is set;
    ///   a Request whose `metadata` is missing or not a JSON object gets status Unknown
    ///   `no context found` without reaching the handler;
    /// - `PushToUser`: `Response{data:"ack"}`, or status Unknown with the handler's error
    ///   text (`session not found`);
    /// - `SessionBindRemote`: `Response{data:"ack"}`; handler errors are logged;
    /// - `KickUser`: the handler's `KickAnswer`, or status Unknown with its error text.
    ///
    /// A request that is not valid protobuf gets tonic's status Internal. A handler that
    /// panics gets status Internal; the server goes on.
    ///
    /// # Errors
    /// When called twice or after `stop`.
    fn start(&self, handler: Arc<dyn RpcHandler>) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let mut life = self.life.lock().await;
            let listener = match std::mem::replace(&mut *life, Life::Stopped) {
                Life::Bound(listener) => listener,
                other @ Life::Running(_) => {
                    *life = other;
                    return Err(Error::unknown("rpc server: already started"));
                }
                Life::Stopped => return Err(Error::unknown("rpc server: stopped")),
            };
            let gate = Gate::default();
            let (abort, aborted) = watch::channel(false);
            let service = PitayaService { handler, gate: gate.clone(), abort: aborted };
            let (shutdown, signal) = oneshot::channel::<()>();
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let serve = tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(PitayaServer::new(service))
                    .serve_with_incoming_shutdown(incoming, async {
                        // A dropped sender shuts down too.
                        let _ = signal.await;
                    }),
            );
            tracing::debug!(addr = %self.local_addr, "rpc server: serving gRPC");
            *life = Life::Running(Running { shutdown, serve, gate, abort });
            Ok(())
        })
    }

    /// Nothing to subscribe over gRPC: peers call `PushToUser` and `KickUser` on the
    /// frontend the binding storage names. Returns [`UserSubscription::none`].
    ///
    /// # Errors
    /// None.
    fn subscribe_user<'a>(
        &'a self,
        _uid: &'a str,
    ) -> BoxFuture<'a, Result<UserSubscription, Error>> {
        Box::pin(async { Ok(UserSubscription::none()) })
    }

    /// Stops accepting connections and tells the open ones to finish (HTTP/2 GOAWAY: no
    /// new calls), lets the calls being served finish within [`STOP_TIMEOUT`], then ends
    /// the handlers still running and closes. No task of this server outlives it, apart
    /// from connections whose peer ignores the shutdown for a further second (they are
    /// left to close on their own). Idempotent.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let mut life = self.life.lock().await;
            let Life::Running(running) = std::mem::replace(&mut *life, Life::Stopped) else {
                return;
            };
            let Running { shutdown, mut serve, gate, abort } = running;
            let _ = shutdown.send(());
            let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
            // The serve task ends once every connection closed, i.e. its calls answered;
            // handlers whose caller went away are still counted by the gate.
            let drained = tokio::time::timeout_at(deadline, &mut serve).await;
            let idle = gate
                .close_and_wait(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .await;
            if drained.is_err() || !idle {
                tracing::warn!("rpc server: calls still being served at stop; abandoned");
                let _ = abort.send(true);
            }
            let result = match drained {
                Ok(result) => Some(result),
                Err(_) => match tokio::time::timeout(CLOSE_GRACE, &mut serve).await {
                    Ok(result) => Some(result),
                    Err(_) => {
                        serve.abort();
                        None
                    }
                },
            };
            match result {
                Some(Ok(Ok(()))) | None => {}
                Some(Ok(Err(e))) => tracing::error!(error = %e, "rpc server: serving failed"),
                Some(Err(e)) => tracing::error!(error = %e, "rpc server: serve task failed"),
            }
        })
    }
}
