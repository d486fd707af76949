//! `pitaya-bot`: runs a scenario spec against a Pitaya server and reports.
//!
//! Exit status: 0 when the run passed; 1 when an assertion failed, no bot connected, or
//! the error rate is above `--max-error-rate`; 2 for a bad command line, spec or address; 3 when the
//! report could not be written or pushed.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pitaya_bot::{Report, RunOptions, Runner, Spec, parse_duration};
use pitaya_client::TlsOptions;

/// Runs a pitaya-bot scenario spec (YAML, or JSON for `.json` files) against a Pitaya
/// server and reports per-route counts, errors by PIT code and latency percentiles.
#[derive(Debug, Parser)]
#[command(name = "pitaya-bot", version)]
struct Args {
    /// The spec file.
    spec: PathBuf,
    /// Server address (`tcp://h:p`, `h:p`, `tls://h:p`, `ws://h:p/path`, `wss://...`);
    /// overrides the spec's `address`.
    #[arg(long)]
    addr: Option<String>,
    /// Number of bots (overrides the spec).
    #[arg(long)]
    bots: Option<usize>,
    /// Loop iterations per bot (overrides the spec).
    #[arg(long)]
    iterations: Option<u64>,
    /// Run the loop for this long, e.g. `30s` (overrides the spec).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Spread bot starts over this long, e.g. `5s` (overrides the spec).
    #[arg(long, value_parser = parse_duration)]
    ramp_up: Option<Duration>,
    /// Set a spec variable: `--var name=value`; the value is read as JSON when it parses
    /// (`3`, `true`, `{"a":1}`), else taken as a string. Repeatable.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    vars: Vec<String>,
    /// Write the JSON report to this file (`-` for stdout, instead of the table).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Fail (exit 1) when failed calls / attempted calls exceeds this fraction, e.g. 0.01.
    #[arg(long)]
    max_error_rate: Option<f64>,
    /// Hide the live progress line (it is also hidden when stdout or stderr is not a
    /// terminal).
    #[arg(long, short)]
    quiet: bool,
    /// POST the figures to this Prometheus Pushgateway (`http://host:9091`).
    #[arg(long)]
    pushgateway: Option<String>,
    /// Job name for `--pushgateway`.
    #[arg(long, default_value = "pitaya_bot")]
    pushgateway_job: String,
    /// Trust the certificates of this PEM file for `tls://` and `wss://`.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Accept any server certificate (self-signed test servers only).
    #[arg(long, conflicts_with = "ca")]
    insecure: bool,
    /// Name checked against the server certificate instead of the address's host.
    #[arg(long)]
    server_name: Option<String>,
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("pitaya-bot: {message}");
    ExitCode::from(code)
}

fn tls(args: &Args) -> Result<Option<TlsOptions>, String> {
    let tls = if let Some(path) = &args.ca {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Some(TlsOptions::with_root_pem(&pem).map_err(|e| e.to_string())?)
    } else if args.insecure {
        Some(TlsOptions::insecure())
    } else {
        None
    };
    Ok(match (tls, &args.server_name) {
        (Some(t), Some(name)) => Some(t.server_name(name.clone())),
        (t, _) => t,
    })
}

fn prepare(args: &Args) -> Result<(Spec, RunOptions), String> {
    let mut spec = Spec::load(&args.spec).map_err(|e| e.to_string())?;
    if let Some(bots) = args.bots {
        if bots == 0 {
            return Err("--bots must be at least 1".into());
        }
        spec.bots = bots;
    }
    if args.iterations.is_some() {
        spec.iterations = args.iterations;
    }
    if args.duration.is_some() {
        spec.duration = args.duration;
    }
    if let Some(r) = args.ramp_up {
        spec.ramp_up = r;
    }
    for var in &args.vars {
        let (name, value) =
            var.split_once('=').ok_or_else(|| format!("--var {var:?}: expected NAME=VALUE"))?;
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        spec.set_var(name, value).map_err(|e| e.to_string())?;
    }
    let progress =
        !args.quiet && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    Ok((spec, RunOptions { address: args.addr.clone(), tls: tls(args)?, progress }))
}

fn write_outputs(args: &Args, report: &Report) -> Result<(), String> {
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout().lock();
    match &args.report {
        Some(path) if path.as_os_str() == "-" => writeln!(stdout, "{json}"),
        Some(path) => {
            std::fs::write(path, format!("{json}\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            write!(stdout, "{}", report.table())
        }
        None => write!(stdout, "{}", report.table()),
    }
    .map_err(|e| format!("cannot write to stdout: {e}"))
}

#[cfg(feature = "pushgateway")]
async fn push(args: &Args, report: &Report) -> Result<(), String> {
    match &args.pushgateway {
        Some(url) => pitaya_bot::pushgateway::push(url, &args.pushgateway_job, report.prometheus())
            .await
            .map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

#[cfg(not(feature = "pushgateway"))]
async fn push(args: &Args, _report: &Report) -> Result<(), String> {
    match &args.pushgateway {
        Some(_) => Err("built without the `pushgateway` feature".into()),
        None => Ok(()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let (spec, options) = match prepare(&args) {
        Ok(ready) => ready,
        Err(e) => return fail(2, e),
    };
    let runner = match Runner::new(spec, options) {
        Ok(r) => r,
        Err(e) => return fail(2, e),
    };
    let stop = runner.stop_handle();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.stop();
        }
    });
    let report = runner.run().await;
    let mut status = ExitCode::SUCCESS;
    if let Err(e) = write_outputs(&args, &report) {
        status = fail(3, e);
    }
    if let Err(e) = push(&args, &report).await {
        status = fail(3, e);
    }
    let reasons = report.verdict(args.max_error_rate);
    if !reasons.is_empty() {
        eprintln!("pitaya-bot: FAILED: {}", reasons.join("; "));
        return ExitCode::from(1);
    }
    status
}
