//! Modules on a running server: the binary module stops the server when its program
//! dies; application modules start in order and stop in reverse around the server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pitaya::{BinaryModule, BoxFuture, Component, Error, Module, ModuleContext, Pitaya, Session};

use crate::support::within;

fn component() -> Component {
    async fn ping(_s: Session) -> Result<bytes::Bytes, Error> {
        Ok(bytes::Bytes::from_static(b"pong"))
    }
    Component::new("m").handler("ping", ping)
}

#[tokio::test]
async fn a_dying_binary_shuts_the_server_down() {
    within(async {
        let app = Pitaya::builder()
            .tcp("127.0.0.1:0")
            .config(pitaya::config::ConfigLoader::new().load().unwrap())
            .component(component())
            .module("sidecar", BinaryModule::new("sh", ["-c", "sleep 0.3"]))
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), app.wait_for_signal())
            .await
            .expect("the program's exit must stop the server");
        app.shutdown().await;
    })
    .await;
}

struct Recorder(&'static str, Arc<Mutex<Vec<String>>>);

impl Module for Recorder {
    fn init<'a>(&'a self, ctx: &'a ModuleContext) -> BoxFuture<'a, Result<(), Error>> {
        self.1.lock().unwrap().push(format!("init {} {}", self.0, ctx.server.server_type));
        Box::pin(async { Ok(()) })
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.1.lock().unwrap().push(format!("shutdown {}", self.0));
        Box::pin(async {})
    }
}

#[tokio::test]
async fn modules_start_in_order_after_unique_session_and_stop_in_reverse() {
    within(async {
        let log = Arc::new(Mutex::new(Vec::new()));
        let app = Pitaya::builder()
            .server_type("lobby")
            .tcp("127.0.0.1:0")
            .config(pitaya::config::ConfigLoader::new().load().unwrap())
            .component(component())
            .module("a", Recorder("a", log.clone()))
            .module("b", Recorder("b", log.clone()))
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        app.shutdown().await;
        assert_eq!(
            *log.lock().unwrap(),
            ["init a lobby", "init b lobby", "shutdown b", "shutdown a"]
        );
        let dup = Pitaya::builder()
            .tcp("127.0.0.1:0")
            .component(component())
            .module(pitaya::modules::UNIQUE_SESSION, Recorder("x", log.clone()))
            .build()
            .unwrap()
            .start()
            .await;
        assert!(dup.is_err(), "a module name used twice is refused");
    })
    .await;
}
