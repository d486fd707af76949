//! [`PitayaService`]: the `protos.Pitaya` service of the RPC server, handing each call to
//! the runtime's [`RpcHandler`] (spec §7).

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use pitaya_cluster::RpcHandler;
use pitaya_cluster::protos::{BindMsg, KickAnswer, KickMsg, Push, Request, Response};
use pitaya_core::Context;
use tokio::sync::watch;
use tonic::Status;

use crate::errors::NO_CONTEXT;
use crate::proto::pitaya_server::Pitaya;
use pitaya_cluster::gate::Gate;

/// Serves the four methods. Each handler call runs in its own task, counted by `gate`: a
/// caller that gives up (deadline, reset stream) does not cancel it, as in Go, and the
/// server's stop can wait for it. Raising `abort` ends the ones still running.
pub(crate) struct PitayaService {
    pub(crate) handler: Arc<dyn RpcHandler>,
    pub(crate) gate: Gate,
    pub(crate) abort: watch::Receiver<bool>,
}

impl PitayaService {
    /// Runs `work` in a tracked task and waits for its output.
    async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, Status> {
        let pass = self.gate.enter().ok_or_else(|| Status::unavailable("rpc server: stopping"))?;
        let mut abort = self.abort.clone();
        let task = tokio::spawn(async move {
            let _pass = pass;
            tokio::select! {
                out = work => Some(out),
                // A dropped sender (server dropped without stop) aborts nothing.
                Ok(_) = abort.wait_for(|a| *a) => None,
            }
        });
        match task.await {
            Ok(Some(out)) => Ok(out),
            Ok(None) => Err(Status::unavailable("rpc server: stopped")),
            Err(e) => {
                tracing::error!(error = %e, "rpc server: handler task failed");
                Err(Status::internal("rpc server: handler failed"))
            }
        }
    }
}

/// The acknowledgement of a push or bind, `0a 03 61 63 6b` on the wire.
fn ack() -> Response {
    Response { data: Bytes::from_static(b"ack"), error: None }
}

/// Whether `metadata` carries a context Go would accept: present and a JSON object.
fn has_context(metadata: &Bytes) -> bool {
    !metadata.is_empty() && Context::decode_bytes(metadata.clone()).is_ok()
}

#[tonic::async_trait]
impl Pitaya for PitayaService {
    /// Spec §7: OK with the handler's Response even when `Response.error` is set; a
    /// Request without a context gets status Unknown `no context found` instead, as Go's
    /// server returns its context error as the gRPC error.
    async fn call(
        &self,
        request: tonic::Request<Request>,
    ) -> Result<tonic::Response<Response>, Status> {
        let req = request.into_inner();
        if !has_context(&req.metadata) {
            return Err(Status::unknown(NO_CONTEXT));
        }
        let work = self.handler.handle_request(req);
        self.run(work).await.map(tonic::Response::new)
    }

    /// `Response{data:"ack"}`, or status Unknown with the handler's error text
    /// (`session not found`).
    async fn push_to_user(
        &self,
        request: tonic::Request<Push>,
    ) -> Result<tonic::Response<Response>, Status> {
        let work = self.handler.handle_push(request.into_inner());
        match self.run(work).await? {
            Ok(()) => Ok(tonic::Response::new(ack())),
            Err(e) => Err(Status::unknown(e.message())),
        }
    }

    /// Always `Response{data:"ack"}`: Go's bind listeners return nothing, so a failed
    /// kick of the local holder is only logged.
    async fn session_bind_remote(
        &self,
        request: tonic::Request<BindMsg>,
    ) -> Result<tonic::Response<Response>, Status> {
        let work = self.handler.handle_bind(request.into_inner());
        if let Err(e) = self.run(work).await? {
            tracing::warn!(error = %e, "rpc server: bind announcement failed");
        }
        Ok(tonic::Response::new(ack()))
    }

    /// The handler's `KickAnswer` (`08 01`), or status Unknown with its error text
    /// (`session not found`).
    async fn kick_user(
        &self,
        request: tonic::Request<KickMsg>,
    ) -> Result<tonic::Response<KickAnswer>, Status> {
        let work = self.handler.handle_kick(request.into_inner());
        match self.run(work).await? {
            Ok(answer) => Ok(tonic::Response::new(answer)),
            Err(e) => Err(Status::unknown(e.message())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts() {
        let has = |b: &'static [u8]| has_context(&Bytes::from_static(b));
        assert!(has(b"{}"));
        assert!(has(br#"{"reqTimeout":"5s"}"#));
        assert!(!has(b""));
        assert!(!has(b"not json"));
        assert!(!has(b"[1]"));
    }
}
