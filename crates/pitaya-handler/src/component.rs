//! [`Component`]: a named group of handlers, and its [`Lifecycle`] hooks.

use std::sync::Arc;

use pitaya_core::BoxFuture;

use crate::docs::Signature;
use crate::handler::{Erased, ErasedHandler, Handler};

/// Hooks a component runs with the server (Go's Init, AfterInit, BeforeShutdown and
/// Shutdown). Components start in registration order and stop in reverse.
pub trait Lifecycle: Send + Sync + 'static {
    /// Before the server accepts connections.
    fn init(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// After every component's `init`.
    fn after_init(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// When shutdown starts, while connections are still open.
    fn before_shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// After connections are closed.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

type NameFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A service: handlers registered under `name.method`.
///
/// Rust has no reflection, so methods are registered explicitly. A name function (Go's
/// `WithNameFunc`, e.g. lower-casing) is applied to every method name.
pub struct Component {
    pub(crate) name: String,
    pub(crate) methods: Vec<(String, Arc<dyn ErasedHandler>)>,
    pub(crate) lifecycle: Option<Arc<dyn Lifecycle>>,
    name_fn: Option<NameFn>,
}

impl Component {
    /// A component named `name` (the service part of its routes).
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), methods: Vec::new(), lifecycle: None, name_fn: None }
    }

    /// Applies `f` to method names registered from now on, e.g. `str::to_lowercase`.
    pub fn name_fn(mut self, f: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.name_fn = Some(Arc::new(f));
        self
    }

    /// Registers `handler` as method `method`. Its kind (request or notify) comes from its
    /// return type.
    pub fn handler<H: Handler<T>, T: 'static>(mut self, method: &str, handler: H) -> Self {
        let name = self.name_fn.as_ref().map_or_else(|| method.to_owned(), |f| f(method));
        self.methods.push((name, Arc::new(Erased::new(handler))));
        self
    }

    /// Sets the component's lifecycle hooks.
    pub fn lifecycle(mut self, hooks: impl Lifecycle) -> Self {
        self.lifecycle = Some(Arc::new(hooks));
        self
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Each method (as registered, after the name function) with its signature, in
    /// registration order; see [`docs`](crate::docs).
    pub fn signatures(&self) -> Vec<(String, Signature)> {
        self.methods.iter().map(|(m, h)| (m.clone(), h.signature())).collect()
    }
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let methods: Vec<&str> = self.methods.iter().map(|(m, _)| m.as_str()).collect();
        f.debug_struct("Component").field("name", &self.name).field("methods", &methods).finish()
    }
}
