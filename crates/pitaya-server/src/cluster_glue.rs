//! Cluster mode as the server runtime starts it (feature `cluster`): the builder's
//! cluster settings, the runtime built from the transports, and the server's side of
//! the cluster runtime's hooks ([`LocalHandlers`], [`RpcMetrics`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use pitaya_cluster_runtime::{
    ClusterFactory, ClusterRuntime, ClusterSetup, DieSignal, LocalHandlers, RouteFn, RpcMetrics,
    RuntimeOptions, Server,
};
use pitaya_config::PitayaConfig;
use pitaya_core::{BoxFuture, Error};
use pitaya_handler::{AppState, Remotes, Request};
use pitaya_serialize::Serializer;
use pitaya_session::SessionPool;

use crate::dispatch::HandlerCore;

/// What the builder collected for cluster mode.
pub(crate) struct ClusterSpec {
    pub(crate) frontend: bool,
    pub(crate) metadata: BTreeMap<String, String>,
    pub(crate) remotes: Remotes,
    pub(crate) routes: HashMap<String, RouteFn>,
    /// `None`: a standalone server.
    pub(crate) factory: Option<ClusterFactory>,
}

/// A started cluster runtime, and the modules its transports need.
pub(crate) type Started = (Arc<ClusterRuntime>, Vec<(String, Arc<dyn pitaya_modules::Module>)>);

/// Builds the transports with the spec's factory and starts the runtime on them; `None`
/// for a standalone server.
pub(crate) async fn start(
    spec: ClusterSpec,
    server_type: &str,
    config: &PitayaConfig,
    die: &DieSignal,
    pool: &SessionPool,
    handlers: Arc<HandlerCore>,
) -> Result<Option<Started>, Error> {
    let ClusterSpec { frontend, metadata, remotes, routes, factory } = spec;
    let Some(factory) = factory else {
        if !remotes.routes().is_empty() {
            tracing::warn!("remotes registered on a standalone server are never called");
        }
        return Ok(None);
    };
    let me = Arc::new(Server::new(server_type.to_owned(), frontend, metadata));
    let setup = ClusterSetup { server: me.clone(), config: config.clone(), die: die.clone() };
    let mut parts = factory(setup).await?;
    if parts.discovery.this_server().id != me.id {
        return Err(Error::unknown(
            "the cluster's discovery must register the server record it was given",
        ));
    }
    let options = RuntimeOptions {
        pool: pool.clone(),
        handlers,
        remotes,
        routes,
        loopback: config.cluster.rpc.server.loopback_enabled,
        data_compression: config.handler.messages.compression,
        push_batch: config.cluster.rpc.client.push_batch,
    };
    // The transports may have added metadata to the record (the bound gRPC port): the
    // runtime takes it from the discovery.
    let runtime = ClusterRuntime::new(&parts, options);
    runtime.start().await?;
    Ok(Some((runtime, std::mem::take(&mut parts.modules))))
}

impl LocalHandlers for HandlerCore {
    fn call(&self, req: Request) -> BoxFuture<'static, Result<Option<bytes::Bytes>, Error>> {
        HandlerCore::call(self, req)
    }

    fn serializer(&self) -> &Arc<dyn Serializer> {
        &self.serializer
    }

    fn state(&self) -> &AppState {
        &self.state
    }
}

/// User RPC round trips as `response_time_ns` with type `rpc` (spec §11.2).
pub(crate) struct RpcResponseTimes(pub(crate) Arc<dyn pitaya_metrics::Reporter>);

impl RpcMetrics for RpcResponseTimes {
    fn rpc_completed(&self, route: &str, took: Duration, result: Result<(), &Error>) {
        crate::metrics_wiring::report_response(self.0.as_ref(), route, "rpc", took, result);
    }
}
