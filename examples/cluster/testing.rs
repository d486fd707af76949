//! The conformance server: Go Pitaya's `examples/testing/main.go` in Rust, with the same
//! flags, handlers, remotes and readiness line, so that Pitaya's e2e scenarios (and the
//! Rust port of them in `tests/cluster`) drive it unchanged.
//!
//! ```text
//! cargo build --release --example testing
//! target/release/examples/testing -type connector -port 32222 -sdprefix test/
//! target/release/examples/testing -type game -frontend=false -sdprefix test/
//! ```
//!
//! Flags follow Go's `flag` package: `-k v`, `-k=v`, `--k=v`, and a bare boolean
//! (`-debug`) all parse. NATS (`nats://localhost:4222`) and etcd (`localhost:2379`) come
//! from Pitaya's defaults, overridable with `PITAYA_*` variables. Once registered in etcd,
//! synced and subscribed to NATS, the server logs `all modules started!` on stderr.

use std::process::ExitCode;

use pitaya::SerializerKind;
use pitaya::config::ConfigLoader;
use pitaya_cluster_examples::testing::{Options, builder};

/// The flags of Go's testing server, with its defaults.
struct Flags {
    opts: Options,
    sd_prefix: String,
    debug: bool,
    grpc: bool,
}

/// Reads a Go-style boolean flag: bare (`-debug`) means true, `-debug=false` sets it.
fn bool_flag(args: &mut pico_args::Arguments, name: &'static str, default: bool) -> Result<bool, String> {
    let long: &'static str = Box::leak(format!("-{name}").into_boxed_str());
    let double: &'static str = Box::leak(format!("--{name}").into_boxed_str());
    if args.contains(long) || args.contains(double) {
        return Ok(true);
    }
    for key in [long, double] {
        if let Some(v) = args.opt_value_from_str::<_, String>(key).map_err(|e| e.to_string())? {
            return match v.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
                _ => Err(format!("invalid boolean value {v:?} for -{name}")),
            };
        }
    }
    Ok(default)
}

fn value_flag<T: std::str::FromStr>(
    args: &mut pico_args::Arguments,
    name: &'static str,
    default: T,
) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let long: &'static str = Box::leak(format!("-{name}").into_boxed_str());
    let double: &'static str = Box::leak(format!("--{name}").into_boxed_str());
    for key in [long, double] {
        if let Some(v) = args.opt_value_from_str::<_, T>(key).map_err(|e| e.to_string())? {
            return Ok(v);
        }
    }
    Ok(default)
}

fn parse_flags() -> Result<Flags, String> {
    let mut args = pico_args::Arguments::from_env();
    let port = value_flag(&mut args, "port", 32222u16)?;
    let server_type = value_flag(&mut args, "type", "connector".to_owned())?;
    let frontend = bool_flag(&mut args, "frontend", true)?;
    let serializer = match value_flag(&mut args, "serializer", "json".to_owned())?.as_str() {
        "json" => SerializerKind::Json,
        "protobuf" => SerializerKind::Protobuf,
        other => return Err(format!("serializer should be either json or protobuf, not {other:?}")),
    };
    let sd_prefix = value_flag(&mut args, "sdprefix", "pitaya/".to_owned())?;
    let debug = bool_flag(&mut args, "debug", false)?;
    let grpc = bool_flag(&mut args, "grpc", false)?;
    let grpc_port = value_flag(&mut args, "grpcport", 3434u16)?;
    let rest = args.finish();
    if !rest.is_empty() {
        return Err(format!("unknown arguments: {rest:?}"));
    }
    Ok(Flags {
        opts: Options { server_type, port, frontend, serializer, grpc_port },
        sd_prefix,
        debug,
        grpc,
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

#[tokio::main]
async fn main() -> ExitCode {
    let flags = match parse_flags() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("testing: {e}");
            return ExitCode::from(2);
        }
    };
    let _guard = init_logging(flags.debug);
    if flags.grpc {
        tracing::error!("gRPC RPC is not available yet: run with -grpc=false (NATS)");
        return ExitCode::from(2);
    }
    // As in Go: these two flags beat the environment.
    let config = ConfigLoader::standard(None)
        .and_then(|l| {
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
    let app = builder(&flags.opts).config(config).etcd_nats_cluster().build();
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
