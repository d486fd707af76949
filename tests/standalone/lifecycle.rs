//! Component lifecycle hooks: init and after_init before the server serves, in
//! registration order; before_shutdown and shutdown on the way down, in reverse.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use pitaya::{BoxFuture, Component, Error, Lifecycle};

use crate::support::{Server, config, echo_builder, within};

struct Hooks {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Hooks {
    fn record(&self, event: &str) -> BoxFuture<'_, ()> {
        let line = format!("{} {event}", self.name);
        let log = self.log.clone();
        Box::pin(async move { log.lock().unwrap_or_else(|e| e.into_inner()).push(line) })
    }
}

impl Lifecycle for Hooks {
    fn init(&self) -> BoxFuture<'_, ()> {
        self.record("init")
    }
    fn after_init(&self) -> BoxFuture<'_, ()> {
        self.record("after_init")
    }
    fn before_shutdown(&self) -> BoxFuture<'_, ()> {
        self.record("before_shutdown")
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.record("shutdown")
    }
}

async fn ping(_body: Bytes) -> Result<Bytes, Error> {
    Ok(Bytes::from_static(b"pong"))
}

#[tokio::test]
async fn hooks_run_in_order_around_serving() {
    within(async {
        let log = Arc::new(Mutex::new(Vec::new()));
        let component = |name: &'static str| {
            Component::new(name).handler("ping", ping).lifecycle(Hooks { name, log: log.clone() })
        };
        let builder = echo_builder(config(&[])).component(component("a")).component(component("b"));
        let server = Server::start(builder).await;
        let snapshot = || log.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(snapshot(), ["a init", "b init", "a after_init", "b after_init"]);
        let (client, _pushes) = server.client().await;
        assert_eq!(client.request("b.ping", "").await.expect("ping"), "pong");
        server.shutdown().await;
        assert_eq!(
            snapshot()[4..],
            ["b before_shutdown", "a before_shutdown", "b shutdown", "a shutdown"]
        );
    })
    .await;
}
