//! `pitaya-cli`: a command-line client for Pitaya servers, like Go Pitaya's `pitaya-cli`.
//!
//! **Layer:** bindings and tools (the table in `xtask/src/layers.rs`): may depend on the
//! runtime crates and anything below them, never on the facade.
//!
//! Interactive (a line editor with history and completion of commands and routes) or
//! scripted (`--filename`: one command a line, each waiting for its reply; the exit code
//! is 1 when any command failed).
//!
//! ```text
//! $ pitaya-cli --docs connector.docsHandler.docs
//! pitaya> connect 127.0.0.1:3250
//! pitaya> request room.echojson {"hello": "world"}
//! sv-> {"hello":"world"}
//! pitaya> request room.fail
//! sv-> error PIT-499: fail
//! ```
//!
//! Replies are printed as `sv-> BODY` (error responses as `sv-> error CODE: MSG` with
//! their metadata), pushes as `sv-> push ROUTE BODY`, as they arrive: at the prompt, a
//! push that comes while a line is being typed is printed above the prompt, which is
//! redrawn with the line as typed so far (rustyline's external printer). Compressed bodies
//! are inflated by the client. With protobuf descriptors (`--proto`, `--descriptor-set`,
//! or fetched through `--docs`), requests are written as JSON and sent as protobuf, and
//! protobuf replies are shown as JSON.
//!
//! Session resume (`docs/resume.md`): the CLI asks for it unless `--no-resume` is given.
//! A server with resume enabled grants a token, printed after `connected to ...` as
//! `resume token T (ttl 30s)`; a connection that drops is then resumed by itself (printed
//! as `connection dropped (...); resuming` and `resumed session (token T2)` or `fresh
//! session ...`), and the `resume` command drops the connection on purpose and resumes,
//! printing the outcome.
//!
//! # Layout
//! - `command.rs`: parsing a line into a command.
//! - `shell.rs`: the state (connection, handshake, schema) and what each command does.
//! - `schema.rs`: descriptors and JSON ↔ protobuf by reflection (prost-reflect).
//! - `docs.rs`: fetching a server's documentation and descriptors.
//! - `repl.rs`: the line editor; `output.rs`: how results are written; `gate.rs`: when
//!   the printer may write, so that output never lands on a prompt.

mod command;
mod docs;
mod gate;
mod output;
mod repl;
mod schema;
mod shell;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use crate::output::Out;
use crate::schema::Schema;
use crate::shell::{Flow, Settings, Shell};

/// Command-line client for Pitaya servers.
#[derive(Debug, Parser)]
#[command(name = "pitaya-cli", version, about)]
struct Args {
    /// Run the commands of FILE (one a line) instead of prompting; exit 1 if any fails.
    #[arg(long, short = 'f')]
    filename: Option<PathBuf>,
    /// Pretty-print JSON replies and pushes.
    #[arg(long)]
    pretty: bool,
    /// Route of the server's documentation (e.g. connector.docsHandler.docs): on connect,
    /// list its routes and fetch the protobuf descriptors of their types.
    #[arg(long)]
    docs: Option<String>,
    /// A .proto file describing messages (compiled with protox; repeatable).
    #[arg(long = "proto", value_name = "FILE")]
    protos: Vec<PathBuf>,
    /// Import path for --proto (repeatable; default: each file's folder).
    #[arg(long = "proto-include", short = 'I', value_name = "DIR")]
    includes: Vec<PathBuf>,
    /// An encoded FileDescriptorSet (protoc --descriptor_set_out; repeatable).
    #[arg(long = "descriptor-set", value_name = "FILE")]
    descriptor_sets: Vec<PathBuf>,
    /// PEM certificate(s) to trust for tls:// and wss:// (e.g. a self-signed server's).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Accept any TLS certificate (testing only).
    #[arg(long)]
    insecure: bool,
    /// Name to check the server certificate against instead of the host.
    #[arg(long)]
    server_name: Option<String>,
    /// Use TLS on host:port and ws:// addresses too.
    #[arg(long)]
    tls: bool,
    /// Seconds to wait for a reply.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Seconds to wait for connect and handshake.
    #[arg(long, default_value_t = 5.0)]
    connect_timeout: f64,
    /// Do not ask for session resume: send exactly the handshake Go's pitaya-cli sends.
    /// By default the CLI asks (`sys.resume`, docs/resume.md), shows the token a server
    /// with resume grants, resumes by itself after a dropped connection, and offers the
    /// `resume` command.
    #[arg(long)]
    no_resume: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            Out::std(false).error(format!("{e:#}"));
            ExitCode::from(2)
        }
    }
}

/// Runs the CLI; `Ok(false)` when a scripted command failed.
fn run(args: Args) -> Result<bool> {
    let secs = |s: f64, what: &str| {
        Duration::try_from_secs_f64(s).with_context(|| format!("bad --{what} {s}"))
    };
    let settings = Settings {
        docs_route: args.docs.clone(),
        ca: args.ca.clone(),
        insecure: args.insecure,
        server_name: args.server_name.clone(),
        tls: args.tls,
        timeout: secs(args.timeout, "timeout")?,
        connect_timeout: secs(args.connect_timeout, "connect-timeout")?,
        resume: !args.no_resume,
    };
    let mut schema = Schema::default();
    if !args.protos.is_empty() {
        schema.add_proto_files(&args.protos, &args.includes).context("compiling --proto files")?;
    }
    for set in &args.descriptor_sets {
        schema.add_descriptor_set(set)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match &args.filename {
        Some(file) => {
            let script = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let mut shell = Shell::new(settings, schema, Out::std(args.pretty));
            Ok(runtime.block_on(run_script(&mut shell, &script)))
        }
        None => repl::run(&runtime, settings, schema, args.pretty).map(|()| true),
    }
}

/// Runs each line in order, each after the previous one's reply; true when all succeeded.
async fn run_script(shell: &mut Shell, script: &str) -> bool {
    let mut ok = true;
    for line in script.lines() {
        match shell.run_line(line).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => return ok,
            Err(()) => ok = false,
        }
    }
    shell.close().await;
    ok
}
