//! Pipelines (spec §12.4): before and after hooks around the router, as tower layers.
//!
//! Any `tower::Layer<HandlerService>` can wrap the handlers; [`before_fn`] and
//! [`after_fn`] are the sugar for Go-style hooks. A before hook may change the request
//! or stop it with an error (sent to the client; `PIT-000` unless it carries a code); an
//! after hook sees and may change the handler's result.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use pitaya_core::{BoxFuture, Error};
use tower::{Layer, Service};

use crate::{HandlerService, Reply, Request};

type BeforeFn = Arc<dyn Fn(Request) -> BoxFuture<'static, Result<Request, Error>> + Send + Sync>;
type AfterFn =
    Arc<dyn Fn(Result<Reply, Error>) -> BoxFuture<'static, Result<Reply, Error>> + Send + Sync>;

/// A layer running `f` on each request before the handler.
pub fn before_fn<F, Fut>(f: F) -> HookLayer
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Request, Error>> + Send + 'static,
{
    HookLayer(Hook::Before(Arc::new(move |r| Box::pin(f(r)))))
}

/// A layer running `f` on each handler result.
pub fn after_fn<F, Fut>(f: F) -> HookLayer
where
    F: Fn(Result<Reply, Error>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Reply, Error>> + Send + 'static,
{
    HookLayer(Hook::After(Arc::new(move |r| Box::pin(f(r)))))
}

#[derive(Clone)]
enum Hook {
    Before(BeforeFn),
    After(AfterFn),
}

/// A before or after hook as a tower layer.
#[derive(Clone)]
pub struct HookLayer(Hook);

impl Layer<HandlerService> for HookLayer {
    type Service = HandlerService;

    fn layer(&self, inner: HandlerService) -> HandlerService {
        HandlerService::new(HookService { hook: self.0.clone(), inner })
    }
}

impl std::fmt::Debug for HookLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Hook::Before(_) => "HookLayer(before)",
            Hook::After(_) => "HookLayer(after)",
        })
    }
}

#[derive(Clone)]
struct HookService {
    hook: Hook,
    inner: HandlerService,
}

impl Service<Request> for HookService {
    type Response = Reply;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Reply, Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone is the one that was polled ready, per tower's contract.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        match &self.hook {
            Hook::Before(f) => {
                let f = f.clone();
                Box::pin(async move { inner.call(f(req).await?).await })
            }
            Hook::After(f) => {
                let f = f.clone();
                Box::pin(async move { f(inner.call(req).await).await })
            }
        }
    }
}
