//! The `testing` server's entry point, shared by the example and the test harness's
//! binary.

use std::process::ExitCode;

use crate::testing::{Options, builder};
use pitaya::SerializerKind;
use pitaya::config::ConfigLoader;

/// The flags of Go's testing server, with its defaults.
struct Flags {
    opts: Options,
    sd_prefix: String,
    debug: bool,
    grpc: bool,
}

/// Reads a Go boolean flag: bare (`-debug`) means true, `-debug=false` sets it.
fn bool_flag(m: &getopts::Matches, name: &str, default: bool) -> Result<bool, String> {
    if !m.opt_present(name) {
        return Ok(default);
    }
    match m.opt_str(name).as_deref() {
        None | Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(format!("invalid boolean value {v:?} for -{name}")),
    }
}

fn value_flag<T: std::str::FromStr>(
    m: &getopts::Matches,
    name: &str,
    default: T,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match m.opt_str(name) {
        Some(v) => v.parse().map_err(|e| format!("invalid value {v:?} for -{name}: {e}")),
        None => Ok(default),
    }
}

fn parse_flags() -> Result<Flags, String> {
    // getopts in long-only mode reads Go's single-dash long flags (`-type x`, `-k=v`).
    let mut o = getopts::Options::new();
    o.long_only(true);
    o.optopt("", "port", "the port to listen", "PORT")
        .optopt("", "type", "the server type", "TYPE")
        .optflagopt("", "frontend", "if server is frontend", "BOOL")
        .optopt("", "serializer", "json or protobuf", "NAME")
        .optopt("", "sdprefix", "prefix to discover other servers", "PREFIX")
        .optflagopt("", "debug", "turn on debug logging", "BOOL")
        .optflagopt("", "grpc", "turn on grpc", "BOOL")
        .optopt("", "grpcport", "the grpc server port", "PORT");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let m = o.parse(&args).map_err(|e| e.to_string())?;
    if !m.free.is_empty() {
        return Err(format!("unexpected arguments: {:?}", m.free));
    }
    let serializer = match value_flag(&m, "serializer", "json".to_owned())?.as_str() {
        "json" => SerializerKind::Json,
        "protobuf" => SerializerKind::Protobuf,
        other => {
            return Err(format!("serializer should be either json or protobuf, not {other:?}"));
        }
    };
    Ok(Flags {
        opts: Options {
            server_type: value_flag(&m, "type", "connector".to_owned())?,
            port: value_flag(&m, "port", 32222u16)?,
            frontend: bool_flag(&m, "frontend", true)?,
            serializer,
            grpc_port: value_flag(&m, "grpcport", 3434u16)?,
        },
        sd_prefix: value_flag(&m, "sdprefix", "pitaya/".to_owned())?,
        debug: bool_flag(&m, "debug", false)?,
        grpc: bool_flag(&m, "grpc", false)?,
    })
}

fn init_logging(debug: bool) -> tracing_appender::non_blocking::WorkerGuard {
    // The e2e harness reads stderr only until the ready line: logging goes through a
    // lossy queue, so a pipe nobody reads drops lines instead of stalling the server.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .finish(std::io::stderr());
    let level = if debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(false).init();
    guard
}

/// The testing server's `main`: parses Go-style flags from the process arguments,
/// logs to stderr, and runs until SIGINT or SIGTERM.
pub async fn main() -> ExitCode {
    let flags = match parse_flags() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("testing: {e}");
            return ExitCode::from(2);
        }
    };
    let _guard = init_logging(flags.debug);
    // As in Go: these two flags beat the environment.
    let config = ConfigLoader::standard(None).and_then(|l| {
        l.set("pitaya.cluster.sd.etcd.prefix", &flags.sd_prefix)
            .set("pitaya.cluster.rpc.server.grpc.port", flags.opts.grpc_port)
            .load()
    });
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "bad configuration");
            return ExitCode::from(2);
        }
    };
    // As Go's example: gRPC comes with the etcd binding storage, NATS needs none.
    let builder = builder(&flags.opts).config(config);
    let app =
        if flags.grpc { builder.etcd_grpc_cluster() } else { builder.etcd_nats_cluster() }.build();
    let result = match app {
        Ok(app) => app.run().await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}
