//! Whole-server instruction counts: the echo example under callgrind, driven by loadgen.
//!
//! The load section's req/s on a shared two-core machine moves by ±20 % between rounds,
//! so it cannot tell whether metrics or tracing cost 5 %. Instructions can: each
//! configuration of the echo example runs under callgrind twice, under a short and a long
//! load, and the difference of the two totals over the difference of the two request
//! counts is the cost of one request, without start-up, handshakes or shutdown. The
//! figures count user-space instructions only (the kernel's share of a request, about
//! half of its CPU here, is not in them), so a ratio between two configurations
//! overstates the difference their CPU time would show.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{Output, Running, json_number, total_instructions};

/// Seconds of load of the short and the long run of each configuration.
const SHORT_SECONDS: u64 = 1;
const LONG_SECONDS: u64 = 4;
/// Valgrind starts a release server in a few seconds; this is far above that.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server under valgrind may take to drain and exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// One way of starting the echo example.
struct Config {
    name: &'static str,
    /// `RUST_LOG`; `None` leaves it unset, so the example's default (`info`) applies.
    log: Option<&'static str>,
    prometheus: bool,
    /// The configuration this one is divided by.
    against: Option<&'static str>,
}

const CONFIGS: [Config; 3] = [
    Config { name: "tracing off", log: Some("off"), prometheus: false, against: None },
    // What a user gets without configuring anything: tracing at `info`, metrics off (as
    // in Go, spec §13). The bound is on this one.
    Config { name: "defaults", log: None, prometheus: false, against: Some("tracing off") },
    Config { name: "defaults +prometheus", log: None, prometheus: true, against: Some("defaults") },
];

/// One configuration's two runs.
struct Row {
    name: &'static str,
    against: Option<&'static str>,
    requests: f64,
    per_request: f64,
}

/// Measures every configuration and returns the table to print.
/// The programs a measurement runs.
pub(super) struct Programs<'a> {
    pub(super) valgrind: &'a Path,
    /// The workspace root, the servers' working directory.
    pub(super) root: &'a Path,
    pub(super) echo: &'a Path,
    pub(super) loadgen: &'a Path,
}

pub(super) fn run(programs: &Programs<'_>, out_dir: &Path) -> Result<String> {
    let mut rows = Vec::with_capacity(CONFIGS.len());
    for config in &CONFIGS {
        let file = |seconds: u64| {
            out_dir.join(format!("server.{}.{seconds}s.out", config.name.replace([' ', '+'], "_")))
        };
        eprintln!("xtask: echo server under callgrind: {}", config.name);
        let short = measure(programs, config, SHORT_SECONDS, &file(SHORT_SECONDS))?;
        let long = measure(programs, config, LONG_SECONDS, &file(LONG_SECONDS))?;
        let requests = long.requests - short.requests;
        if requests <= 0.0 || long.instructions <= short.instructions {
            bail!(
                "{}: the {LONG_SECONDS} s run ({} requests, {} instructions) did not exceed the \
                 {SHORT_SECONDS} s run ({} requests, {} instructions)",
                config.name,
                long.requests,
                long.instructions,
                short.requests,
                short.instructions
            );
        }
        let per_request = (long.instructions - short.instructions) as f64 / requests;
        rows.push(Row { name: config.name, against: config.against, requests, per_request });
    }
    render(&rows)
}

struct Measured {
    instructions: u64,
    requests: f64,
}

/// Starts the echo example under callgrind, loads it for `seconds`, stops it with SIGTERM
/// (callgrind writes its profile when the process exits) and reads the totals.
fn measure(
    programs: &Programs<'_>,
    config: &Config,
    seconds: u64,
    out_file: &Path,
) -> Result<Measured> {
    let mut cmd = super::callgrind_command(programs.valgrind, programs.root, out_file);
    cmd.env("PITAYA_HEARTBEAT_INTERVAL", "60s");
    if let Some(level) = config.log {
        cmd.env("RUST_LOG", level);
    }
    if config.prometheus {
        cmd.env("PITAYA_METRICS_PROMETHEUS_ENABLED", "true")
            .env("PITAYA_METRICS_PROMETHEUS_PORT", pitaya_test_services::free_port().to_string());
    }
    cmd.arg(programs.echo).args(["--tcp", "127.0.0.1:0"]);
    let name = format!("echo ({}) under callgrind", config.name);
    let mut server = Running::spawn_reading(cmd, &name, Output::StdoutOnly)?;
    let line = server.line(START_TIMEOUT)?;
    let tcp = super::listening_field(&line, "tcp=")
        .with_context(|| format!("{name} printed {line:?}, not its listening line"))?;

    let mut load = Command::new(programs.loadgen);
    load.args(["--addr", tcp, "--duration", &seconds.to_string(), "--warmup", "0"])
        .env("RUST_LOG", "warn");
    let result = Running::spawn(load, "loadgen")?.finish(Duration::from_secs(seconds + 120))?;
    let requests = json_number(&result, "total_requests")?
        .with_context(|| format!("loadgen printed no total_requests: {result}"))?;
    let errors = json_number(&result, "errors")?.unwrap_or(0.0);
    if errors > 0.0 {
        bail!("{name}: loadgen saw {errors} errors: {result}");
    }

    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -TERM {} failed with {status}", server.pid());
    }
    server.exit(EXIT_TIMEOUT)?;
    Ok(Measured { instructions: total_instructions(out_file)?, requests })
}

fn render(rows: &[Row]) -> Result<String> {
    let mut out = String::new();
    writeln!(
        out,
        "\necho server under callgrind: instructions per request = (Ir({LONG_SECONDS} s) - \
         Ir({SHORT_SECONDS} s)) / (requests({LONG_SECONDS} s) - requests({SHORT_SECONDS} s)), \
         loadgen 4 x 10 in flight, 64 B;\nuser-space instructions only (the kernel's share \
         is not counted); vs: against the configuration named (both from this run)\n"
    )?;
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(6);
    writeln!(
        out,
        "{:<width$}  {:>9}  {:>10}  {:>6}  against",
        "config", "requests", "instr/req", "vs"
    )?;
    for row in rows {
        let ratio = match row.against {
            Some(name) => {
                let of = rows
                    .iter()
                    .find(|r| r.name == name)
                    .with_context(|| format!("reference configuration {name} was not measured"))?;
                format!("{:.3}x", row.per_request / of.per_request)
            }
            None => "-".to_owned(),
        };
        writeln!(
            out,
            "{:<width$}  {:>9.0}  {:>10.0}  {:>6}  {}",
            row.name,
            row.requests,
            row.per_request,
            ratio,
            row.against.unwrap_or("-")
        )?;
    }
    Ok(out)
}
