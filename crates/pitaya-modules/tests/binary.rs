//! The binary module with real child processes (`sh`, `sleep`).

use std::sync::Arc;
use std::time::Duration;

use pitaya_cluster::{DieSignal, Server};
use pitaya_modules::{BinaryModule, Module, ModuleContext};
use pitaya_session::SessionPool;

fn ctx() -> ModuleContext {
    ModuleContext {
        server: Arc::new(Server::new("t", true, Default::default())),
        sessions: SessionPool::new(),
        die: DieSignal::new(),
    }
}

#[tokio::test]
async fn the_program_dying_stops_the_server() {
    let ctx = ctx();
    let m = BinaryModule::new("sh", ["-c", "echo hello; sleep 0.2; exit 3"]);
    m.init(&ctx).await.unwrap();
    let reason =
        tokio::time::timeout(Duration::from_secs(5), ctx.die.wait()).await.expect("die signal");
    assert!(reason.contains("exited"), "{reason}");
    assert!(m.exited());
}

#[tokio::test]
async fn shutdown_terminates_the_program_without_the_die_signal() {
    let ctx = ctx();
    let m = BinaryModule::new("sleep", ["30"]);
    m.init(&ctx).await.unwrap();
    assert!(!m.exited());
    tokio::time::timeout(Duration::from_secs(5), m.shutdown()).await.expect("stops within 5 s");
    assert!(ctx.die.reason().is_none());
}

#[tokio::test]
async fn a_program_ignoring_sigterm_is_killed_after_the_grace_period() {
    let ctx = ctx();
    let m = BinaryModule::new("sh", ["-c", "trap '' TERM; sleep 30"])
        .graceful_shutdown(Duration::from_millis(300));
    m.init(&ctx).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(5), m.shutdown()).await.expect("killed");
    assert!(ctx.die.reason().is_none());
}

#[tokio::test]
async fn a_missing_program_fails_init() {
    let e = BinaryModule::new("/nonexistent/program", Vec::<String>::new())
        .init(&ctx())
        .await
        .unwrap_err();
    assert!(e.message().contains("cannot start"));
}
