//! [`AppHandle`] as the reliable-RPC worker's [`RpcSender`] (feature `worker`).
//!
//! The worker is started after the server, with the handle of the running app, so that
//! its jobs find the cluster up:
//!
//! ```no_run
//! # async fn demo(app: pitaya_server::App) -> Result<(), pitaya_core::Error> {
//! use pitaya_worker::{RpcJobs, Worker, WorkerOptions};
//! let opts = WorkerOptions::from_config(&app.config().worker);
//! let running = app.start().await?;
//! let worker = Worker::new(opts, RpcJobs::new(), running.handle().clone()).start()?;
//! running.wait_for_signal().await;
//! worker.stop().await;
//! running.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! It is not a [`Module`](pitaya_modules::Module): modules start inside `App::start`, before the
//! handle is handed out, and get no handle in their context.

use bytes::Bytes;
use pitaya_core::{BoxFuture, Context, Error};
use pitaya_worker::RpcSender;

use crate::AppHandle;

impl RpcSender for AppHandle {
    fn rpc<'a>(
        &'a self,
        ctx: &'a Context,
        server_id: Option<&'a str>,
        route: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<Bytes, Error>> {
        Box::pin(self.rpc_raw(ctx, server_id, route, Some(data)))
    }
}
