//! Servers started in-process for the bot tests, and helpers to run the binary.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use pitaya::RunningApp;
use pitaya::config::PitayaConfig;
use pitaya_examples::echo::{self, EchoArgs};

/// The echo example on free loopback ports (TCP and WebSocket).
pub struct Echo {
    pub running: RunningApp,
}

impl Echo {
    pub async fn start() -> Self {
        Self::start_with(Self::args()).await
    }

    /// TCP and WebSocket on free loopback ports.
    pub fn args() -> EchoArgs {
        EchoArgs {
            tcp: Some("127.0.0.1:0".into()),
            ws: Some("127.0.0.1:0".into()),
            ..EchoArgs::default()
        }
    }

    pub async fn start_with(args: EchoArgs) -> Self {
        let running =
            echo::start_with_config(&args, PitayaConfig::default()).await.expect("echo starts");
        Self { running }
    }

    pub fn addr(&self, websocket: bool) -> SocketAddr {
        addr(&self.running, websocket)
    }
}

/// The first acceptor address of the wanted kind.
pub fn addr(running: &RunningApp, websocket: bool) -> SocketAddr {
    running
        .local_addrs()
        .iter()
        .find(|(t, _)| t.is_websocket() == websocket)
        .map(|(_, a)| *a)
        .expect("acceptor")
}

/// `examples/bot/NAME` in the repository.
pub fn example_spec(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bot").join(name)
}

/// Runs the `pitaya-bot` binary off the test's runtime.
pub async fn run_bot(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pitaya-bot"))
            .args(&args)
            .output()
            .expect("pitaya-bot runs")
    })
    .await
    .expect("join")
}
