//! Configuration precedence (spec §13.1): defaults < `PITAYA_*` environment < explicit
//! override or flag, seen by a client through the handshake and the compression flag.
//!
//! The environment is process-wide, so each case runs the echo server in a child process:
//! this same test binary, re-run with only [`child_process_entry`] selected and the
//! variables set. The parent never changes its own environment.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use pitaya::config::ConfigLoader;
use pitaya_examples::echo::{self, EchoArgs};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::support::{Raw, json, wait, within};

/// Tells the child which configuration path to take; absent in a normal run.
const CHILD_MODE: &str = "STANDALONE_CHILD_MODE";

/// The echo server of a child process. Returns at once in a normal test run.
///
/// Modes: `env` loads defaults and the environment as the echo binary does (`--compression`
/// off); `flag` adds `--compression`; `override` sets `pitaya.heartbeat.interval = 3s` on
/// top of the environment, as an app's command-line flag would; `dict` is `env` with
/// `--dict`.
#[tokio::test]
async fn child_process_entry() {
    let Ok(mode) = std::env::var(CHILD_MODE) else { return };
    let args = EchoArgs {
        tcp: Some("127.0.0.1:0".to_owned()),
        compression: mode == "flag",
        dict: mode == "dict",
        ..EchoArgs::default()
    };
    let running = if mode == "override" {
        let config = ConfigLoader::standard(None)
            .expect("environment")
            .set("pitaya.heartbeat.interval", "3s")
            .load()
            .expect("configuration");
        echo::start_with_config(&args, config).await
    } else {
        echo::start(&args).await
    }
    .expect("the child's echo server starts");
    // Written past libtest's capture, which only covers the print macros.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", pitaya_examples::listening_line(running.local_addrs())).unwrap();
    out.flush().unwrap();
    drop(out);
    // The parent closes our stdin when done; the cap keeps an orphan from lingering.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    });
    let _ = tokio::time::timeout(Duration::from_secs(30), stdin_closed).await;
    running.shutdown().await;
}

struct ChildServer {
    process: Child,
    lines: Lines<BufReader<ChildStdout>>,
    addr: SocketAddr,
}

impl ChildServer {
    async fn spawn(mode: &str, env: &[(&str, &str)]) -> Self {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut cmd = Command::new(exe);
        cmd.args(["config::child_process_entry", "--exact", "--test-threads=1", "-q"]);
        // Only the variables of this case reach the child.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("PITAYA_") {
                cmd.env_remove(name);
            }
        }
        cmd.env(CHILD_MODE, mode)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut process = cmd.spawn().expect("spawn the child");
        let mut lines = BufReader::new(process.stdout.take().expect("piped stdout")).lines();
        let addr = wait("the child to listen", listening_addr(&mut lines)).await;
        Self { process, lines, addr }
    }

    /// Closes the child's stdin, which shuts its server down, and checks it exits cleanly.
    async fn finish(mut self) {
        drop(self.process.stdin.take());
        // Drain stdout so libtest's last lines never meet a closed pipe.
        wait("the child's output", async {
            while let Ok(Some(_)) = self.lines.next_line().await {}
        })
        .await;
        let status = wait("the child to exit", self.process.wait()).await.expect("child status");
        assert!(status.success(), "child exited with {status}");
    }

    /// `sys.heartbeat` of the handshake response.
    async fn announced_heartbeat(&self) -> serde_json::Value {
        let mut raw = Raw::connect(self.addr).await;
        json(&raw.handshake().await.body)["sys"]["heartbeat"].clone()
    }

    /// The flag byte of the response to a large `room.echo`.
    async fn large_response_flag(&self) -> u8 {
        let mut raw = Raw::connect(self.addr).await;
        raw.handshake().await;
        let large = vec![b'z'; 1000];
        raw.request(1, "room.echo", &large).await;
        let (flag, msg) = raw.flagged_message().await;
        assert_eq!(msg.data, large);
        flag
    }

    /// The flag byte of the `onNotify` push a `room.notify` with a full route gets.
    async fn push_flag(&self) -> u8 {
        let mut raw = Raw::connect(self.addr).await;
        raw.handshake().await;
        raw.notify("room.notify", b"x").await;
        let push = raw.frame().await.expect("a push, not a close");
        *push.body.first().expect("a message has a flag byte")
    }
}

async fn listening_addr<R: AsyncRead + Unpin>(lines: &mut Lines<BufReader<R>>) -> SocketAddr {
    while let Some(line) = lines.next_line().await.expect("read the child's stdout") {
        if let Some(at) = line.find("listening tcp=") {
            let addr = line[at + "listening tcp=".len()..].split_whitespace().next();
            return addr.and_then(|a| a.parse().ok()).expect("an address after tcp=");
        }
    }
    panic!("the child exited without listening");
}

#[tokio::test]
async fn defaults_apply_when_nothing_is_set() {
    within(async {
        let child = ChildServer::spawn("env", &[]).await;
        assert_eq!(child.announced_heartbeat().await, 30);
        child.finish().await;
    })
    .await;
}

#[tokio::test]
async fn environment_beats_defaults() {
    within(async {
        let child = ChildServer::spawn("env", &[("PITAYA_HEARTBEAT_INTERVAL", "7s")]).await;
        assert_eq!(child.announced_heartbeat().await, 7);
        child.finish().await;
    })
    .await;
}

#[tokio::test]
async fn explicit_override_beats_environment() {
    within(async {
        let child = ChildServer::spawn("override", &[("PITAYA_HEARTBEAT_INTERVAL", "7s")]).await;
        assert_eq!(child.announced_heartbeat().await, 3);
        child.finish().await;
    })
    .await;
}

#[tokio::test]
async fn compression_flag_beats_environment() {
    within(async {
        // The echo binary turns compression off unless asked: by the environment...
        let child = ChildServer::spawn("env", &[]).await;
        assert_eq!(child.large_response_flag().await, 0x04);
        child.finish().await;
        let child =
            ChildServer::spawn("env", &[("PITAYA_HANDLER_MESSAGES_COMPRESSION", "true")]).await;
        assert_eq!(child.large_response_flag().await, 0x14);
        child.finish().await;
        // ...and `--compression` wins over an environment that says no.
        let child =
            ChildServer::spawn("flag", &[("PITAYA_HANDLER_MESSAGES_COMPRESSION", "false")]).await;
        assert_eq!(child.large_response_flag().await, 0x14);
        child.finish().await;
    })
    .await;
}

#[tokio::test]
async fn route_compression_setting_reads_its_environment_variable() {
    within(async {
        const VAR: &str = "PITAYA_HANDLER_MESSAGES_COMPRESSROUTES_ONLYIFCLIENTDOES";
        // Unset, Go's push: the route as its code (0x07); set, the full route (0x06).
        for (env, expected) in [(&[][..], 0x07), (&[(VAR, "true")][..], 0x06)] {
            let child = ChildServer::spawn("dict", env).await;
            assert_eq!(child.push_flag().await, expected, "with {env:?}");
            child.finish().await;
        }
    })
    .await;
}
