//! Modules: services that start and stop with the server (Go Pitaya's
//! `RegisterModule`).
//!
//! **Layer:** implementations (the table in `xtask/src/layers.rs`): may depend on crates of
//! the foundation, serialization, core, services and contracts layers.
//!
//! A [`Module`] has four hooks. The server calls every module's [`Module::init`] in
//! registration order (an error aborts the start), then every [`Module::after_init`];
//! at shutdown [`Module::before_shutdown`] and, once connections are closed,
//! [`Module::shutdown`], both in reverse order. Modules are registered by name; a name
//! used twice is refused.
//!
//! Built-in: [`BinaryModule`] runs an external program beside the server and stops the
//! server when it dies. The facade crate adds the unique-session and binding-storage
//! modules.

mod binary;

use std::sync::Arc;

use pitaya_cluster::{DieSignal, Server};
use pitaya_core::{BoxFuture, Error};
use pitaya_session::SessionPool;

pub use binary::BinaryModule;

/// What a module gets when it starts.
#[derive(Debug, Clone)]
pub struct ModuleContext {
    /// This server's record (registered in discovery in cluster mode).
    pub server: Arc<Server>,
    /// The server's sessions, to register session callbacks.
    pub sessions: SessionPool,
    /// Raise it to shut the server down (a module that cannot go on).
    pub die: DieSignal,
}

/// A service with the server's lifecycle. Every hook has a default that does nothing.
pub trait Module: Send + Sync + 'static {
    /// Starts the module, before the server accepts clients or registers in discovery.
    ///
    /// # Errors
    /// An error aborts the server's start.
    fn init<'a>(&'a self, _ctx: &'a ModuleContext) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// After every module's `init`.
    fn after_init(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// When shutdown starts, while connections are still open.
    fn before_shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// After connections are closed and RPCs drained.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Modules by name, in registration order.
#[derive(Default, Clone)]
pub struct Modules(Vec<(String, Arc<dyn Module>)>);

impl Modules {
    /// No modules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `module` under `name`.
    ///
    /// # Errors
    /// `PIT-000` when `name` is taken (Go refuses it too).
    pub fn register(
        &mut self,
        name: impl Into<String>,
        module: Arc<dyn Module>,
    ) -> Result<(), Error> {
        let name = name.into();
        if self.get(&name).is_some() {
            return Err(Error::unknown(format!("a module named {name} is already registered")));
        }
        self.0.push((name, module));
        Ok(())
    }

    /// The module named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Module>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// The names, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Runs every `init` in order, then every `after_init`.
    ///
    /// # Errors
    /// The first `init` error, with the module's name; modules already started are
    /// shut down again, in reverse order.
    pub async fn start(&self, ctx: &ModuleContext) -> Result<(), Error> {
        for (i, (name, m)) in self.0.iter().enumerate() {
            if let Err(e) = m.init(ctx).await {
                tracing::error!(module = %name, error = %e, "module failed to start");
                for (_, started) in self.0[..i].iter().rev() {
                    started.shutdown().await;
                }
                return Err(e.with_metadata("module", name.as_str()));
            }
            tracing::debug!(module = %name, "module started");
        }
        for (_, m) in &self.0 {
            m.after_init().await;
        }
        Ok(())
    }

    /// Runs every `before_shutdown`, in reverse order.
    pub async fn before_shutdown(&self) {
        for (_, m) in self.0.iter().rev() {
            m.before_shutdown().await;
        }
    }

    /// Runs every `shutdown`, in reverse order.
    pub async fn shutdown(&self) {
        for (name, m) in self.0.iter().rev() {
            m.shutdown().await;
            tracing::debug!(module = %name, "module stopped");
        }
    }
}

impl std::fmt::Debug for Modules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    struct Rec(&'static str, Arc<Mutex<Vec<String>>>, bool);

    impl Module for Rec {
        fn init<'a>(&'a self, _: &'a ModuleContext) -> BoxFuture<'a, Result<(), Error>> {
            self.1.lock().unwrap().push(format!("init {}", self.0));
            let fail = self.2;
            Box::pin(async move { if fail { Err(Error::unknown("no")) } else { Ok(()) } })
        }
        fn after_init(&self) -> BoxFuture<'_, ()> {
            self.1.lock().unwrap().push(format!("after {}", self.0));
            Box::pin(async {})
        }
        fn before_shutdown(&self) -> BoxFuture<'_, ()> {
            self.1.lock().unwrap().push(format!("before {}", self.0));
            Box::pin(async {})
        }
        fn shutdown(&self) -> BoxFuture<'_, ()> {
            self.1.lock().unwrap().push(format!("shutdown {}", self.0));
            Box::pin(async {})
        }
    }

    fn ctx() -> ModuleContext {
        ModuleContext {
            server: Arc::new(Server::new("t", true, Default::default())),
            sessions: SessionPool::new(),
            die: DieSignal::new(),
        }
    }

    #[tokio::test]
    async fn order_is_registration_then_reverse() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut m = Modules::new();
        m.register("a", Arc::new(Rec("a", log.clone(), false))).unwrap();
        m.register("b", Arc::new(Rec("b", log.clone(), false))).unwrap();
        assert!(m.register("a", Arc::new(Rec("x", log.clone(), false))).is_err());
        m.start(&ctx()).await.unwrap();
        m.before_shutdown().await;
        m.shutdown().await;
        assert_eq!(
            *log.lock().unwrap(),
            [
                "init a",
                "init b",
                "after a",
                "after b",
                "before b",
                "before a",
                "shutdown b",
                "shutdown a"
            ]
        );
    }

    #[tokio::test]
    async fn a_failing_init_stops_the_started_ones() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut m = Modules::new();
        m.register("a", Arc::new(Rec("a", log.clone(), false))).unwrap();
        m.register("b", Arc::new(Rec("b", log.clone(), true))).unwrap();
        m.register("c", Arc::new(Rec("c", log.clone(), false))).unwrap();
        let e = m.start(&ctx()).await.unwrap_err();
        assert_eq!(e.metadata()["module"], "b");
        assert_eq!(*log.lock().unwrap(), ["init a", "init b", "shutdown a"]);
    }
}
