//! [`BinaryModule`]: an external program that lives and dies with the server.

use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use pitaya_core::{BoxFuture, Error};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;

use crate::{Module, ModuleContext};

/// Runs `program` beside the server (Go's `modules.Binary`): started at `init`, its
/// stdout logged at info and its stderr at error, line by line. If it exits while the
/// server runs, the server shuts down. At shutdown it gets SIGTERM, then SIGKILL after
/// the graceful interval (15 s by default, as in Go).
pub struct BinaryModule {
    program: String,
    args: Vec<String>,
    graceful: Duration,
    state: Mutex<Option<Running>>,
}

struct Running {
    pid: Option<u32>,
    /// Becomes true when the program has exited.
    exited: watch::Receiver<bool>,
    /// Set before the module stops the program, so that its exit is not fatal.
    stopping: watch::Sender<bool>,
}

impl BinaryModule {
    /// A module running `program` with `args`.
    pub fn new(
        program: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            graceful: Duration::from_secs(15),
            state: Mutex::new(None),
        }
    }

    /// How long the program has to exit after SIGTERM before it is killed.
    pub fn graceful_shutdown(mut self, interval: Duration) -> Self {
        self.graceful = interval;
        self
    }

    /// Whether the program has exited (false before `init`).
    pub fn exited(&self) -> bool {
        self.lock().as_ref().is_some_and(|r| *r.exited.borrow())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn forward(stream: impl AsyncRead + Unpin + Send + 'static, program: String, is_err: bool) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if is_err {
                tracing::error!(binary = %program, "{line}");
            } else {
                tracing::info!(binary = %program, "{line}");
            }
        }
    });
}

impl Module for BinaryModule {
    fn init<'a>(&'a self, ctx: &'a ModuleContext) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut child = Command::new(&self.program)
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| {
                    Error::unknown(format!("binary module: cannot start {}: {e}", self.program))
                })?;
            if let Some(out) = child.stdout.take() {
                forward(out, self.program.clone(), false);
            }
            if let Some(err) = child.stderr.take() {
                forward(err, self.program.clone(), true);
            }
            let pid = child.id();
            let (exited_tx, exited) = watch::channel(false);
            let (stopping, stopping_rx) = watch::channel(false);
            let die = ctx.die.clone();
            let program = self.program.clone();
            tokio::spawn(async move {
                let status = child.wait().await;
                let _ = exited_tx.send(true);
                if !*stopping_rx.borrow() {
                    die.die(format!("binary module: {program} exited ({status:?})"));
                }
            });
            *self.lock() = Some(Running { pid, exited, stopping });
            Ok(())
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        let running = self.lock().take();
        Box::pin(async move {
            let Some(r) = running else { return };
            let _ = r.stopping.send(true);
            if *r.exited.borrow() {
                return;
            }
            if let Some(pid) = r.pid {
                // SIGTERM through kill(1): the workspace forbids unsafe code (libc::kill).
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            }
            let exited = r.exited.clone();
            let graceful = tokio::time::timeout(self.graceful, wait_exit(exited)).await;
            if graceful.is_err() {
                tracing::warn!(binary = %self.program, "did not exit after SIGTERM: killing it");
                if let Some(pid) = r.pid {
                    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status().await;
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), wait_exit(r.exited)).await;
            }
        })
    }
}

async fn wait_exit(mut exited: watch::Receiver<bool>) {
    let _ = exited.wait_for(|e| *e).await;
}

impl std::fmt::Debug for BinaryModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinaryModule")
            .field("program", &self.program)
            .field("args", &self.args)
            .finish()
    }
}
