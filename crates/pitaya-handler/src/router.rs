//! [`Router`]: the `service.method` table, and [`RouterService`] that dispatches into it.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};

use pitaya_core::{BoxFuture, Error};

use crate::component::{Component, Lifecycle};
use crate::handler::ErasedHandler;
use crate::{HandlerKind, Reply, Request};

/// Message Go Pitaya sends for a request to a notify handler.
pub const REQUEST_ON_NOTIFY: &str = "tried to request a notify route";

/// Handlers by `service.method`, keyed with foldhash: the table is looked up once per
/// message, and std's SipHash cost about 195 instructions of the echo server's ~5,300 per
/// request (callgrind). The keys are fixed before serving and the hasher is randomly
/// seeded, so a client choosing routes cannot grow a collision chain.
type HandlerTable = HashMap<String, Arc<dyn ErasedHandler>, foldhash::fast::RandomState>;

/// Handlers by `service.method` (Go's `Route.Short()`), plus the components' lifecycles.
#[derive(Default, Clone)]
pub struct Router {
    handlers: HandlerTable,
    lifecycles: Vec<(String, Arc<dyn Lifecycle>)>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a component's handlers.
    ///
    /// # Errors
    /// `PIT-000` when a component of that name is already registered, when it has no
    /// methods (both errors in Go too), or when one of its methods is registered twice.
    pub fn add(&mut self, component: Component) -> Result<(), Error> {
        let name = component.name;
        let prefix = format!("{name}.");
        if self.handlers.keys().any(|k| k.starts_with(&prefix)) {
            return Err(Error::unknown(format!("handler: service already defined: {name}")));
        }
        if component.methods.is_empty() {
            return Err(Error::unknown(format!("handler: service {name} has no exported methods")));
        }
        let mut added = HandlerTable::default();
        for (method, handler) in component.methods {
            let key = format!("{name}.{method}");
            if added.insert(key.clone(), handler).is_some() {
                return Err(Error::unknown(format!("handler: method registered twice: {key}")));
            }
        }
        self.handlers.extend(added);
        if let Some(hooks) = component.lifecycle {
            self.lifecycles.push((name, hooks));
        }
        Ok(())
    }

    /// The kind of the handler for `short` (`service.method`), if registered.
    pub fn kind(&self, short: &str) -> Option<HandlerKind> {
        self.handlers.get(short).map(|h| h.kind())
    }

    /// Every registered `service.method` with its kind, sorted.
    pub fn routes(&self) -> Vec<(String, HandlerKind)> {
        let mut routes: Vec<_> = self.handlers.iter().map(|(k, h)| (k.clone(), h.kind())).collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        routes
    }

    /// The components' lifecycle hooks, in registration order.
    pub fn lifecycles(&self) -> impl DoubleEndedIterator<Item = &Arc<dyn Lifecycle>> {
        self.lifecycles.iter().map(|(_, l)| l)
    }

    /// The router as the innermost service of a pipeline.
    pub fn into_service(self) -> RouterService {
        RouterService(Arc::new(self))
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("routes", &self.routes()).finish()
    }
}

/// The tower service that runs the handler a request names (spec §1.8):
/// - no handler: `PIT-404` `pitaya/handler: <svType>.<service>.<method> not found`;
/// - a request to a notify handler: `PIT-400` `tried to request a notify route`;
/// - a notify to a request handler: logged, run, its reply dropped.
#[derive(Clone)]
pub struct RouterService(Arc<Router>);

impl RouterService {
    /// The router behind the service.
    pub fn router(&self) -> &Router {
        &self.0
    }
}

impl tower::Service<Request> for RouterService {
    type Response = Reply;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Reply, Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let Some(handler) = self.0.handlers.get(req.route.short()) else {
            let err = Error::not_found(format!("pitaya/handler: {} not found", req.route));
            return Box::pin(std::future::ready(Err(err)));
        };
        match (req.kind, handler.kind()) {
            (HandlerKind::Request, HandlerKind::Notify) => {
                Box::pin(std::future::ready(Err(Error::bad_request(REQUEST_ON_NOTIFY))))
            }
            (HandlerKind::Notify, HandlerKind::Request) => {
                tracing::warn!(route = %req.route, "notify sent to a request handler; its reply is dropped");
                let fut = handler.call(req);
                Box::pin(async move { fut.await.map(|_| None) })
            }
            _ => handler.call(req),
        }
    }
}
