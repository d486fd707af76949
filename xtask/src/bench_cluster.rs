//! The cluster section of `cargo xtask bench`: what forwarding a request costs, against
//! what the transport alone allows.
//!
//! Two processes of the conformance server (the `testing` example of
//! pitaya-cluster-examples) share a private nats-server and etcd: a `connector` frontend
//! and a `game` backend. loadgen drives the frontend on two routes to the same handler,
//! `testsvc.testrequestreceivereturnsraw`, which returns the raw request body (what
//! loadgen checks): `connector.…` is served on the frontend itself, `game.…` goes
//! frontend → NATS (or gRPC) → backend → frontend.
//!
//! The baselines are the transports alone, with the `raw_rpc` example of pitaya-examples:
//! a raw async-nats request-reply over the same nats-server (one client connection, like
//! the frontend's, against a responder echoing 64 B), and a raw tonic unary echo. Each
//! shape (connections × requests in flight: 1x1, 4x10, 50x1) is measured on the
//! standalone route, on the raw baseline and forwarded, one after the other, so that each
//! ratio compares figures of the same run taken close together.
//!
//! CPU per request is the frontend's plus the backend's user + system time over exactly
//! the measured window (loadgen reads `/proc/<pid>/stat` when the window opens and when
//! it closes), divided by the requests answered in it; nats-server is not in it.
//!
//! The push cases ("cluster push") start 2 connector frontends and 1 game backend on
//! NATS, twice: the backend as started (a push to many users goes out as one
//! `sys.pushbatch` RPC per frontend) and with `PITAYA_CLUSTER_RPC_CLIENT_PUSHBATCH=false`
//! (Go's path, one NATS message per uid: the baseline). `loadgen push-fanout` binds 1,000
//! members spread over the frontends, each to its own uid, and one more client sends
//! `game.testsvc.testsendtousers` to all of them, keeping at most a window of messages not
//! yet delivered to every member; the table gives the members' pushes/s, batched over
//! baseline at each window, and whether every member got every message.
//!
//! `--repeat N` runs the whole section N times and prints, after each run's table, the
//! median of every figure and of every ratio (each ratio taken within its run). As in the
//! load section, the figures are printed, never asserted: they are wall-clock figures.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pitaya_test_services::{Etcd, Nats};

use super::{
    LOAD_SECONDS, LOADGEN_SLACK, Output, Pinning, Running, START_TIMEOUT, WARMUP_SECONDS,
    json_number, load_average, loadgen, secs, target_dir,
};

/// What the testing server logs once it is registered in etcd, synced and subscribed to
/// NATS.
const READY_LINE: &str = "all modules started!";
/// Request body size, in bytes.
const PAYLOAD: &str = "64";
/// The ready line is logged at info by the server runtime's `app` module (its target
/// named for both the runtime crate and the facade, wherever the module lives); anything
/// else the servers print is a warning or an error, worth showing after the table. No
/// heartbeat adds a packet to the cases.
const SERVER_ENV: [(&str, &str); 2] = [
    ("RUST_LOG", "warn,pitaya_server::app=info,pitaya::app=info"),
    ("PITAYA_HEARTBEAT_INTERVAL", "60s"),
];
/// How many lines each server's log may show after the table.
const LOG_LINES_SHOWN: usize = 10;
/// The targets: forwarded req/s over the raw baseline's of the same shape, and
/// frontend + backend CPU per forwarded request at 4x10.
const TARGET_1X1: f64 = 0.6;
const TARGET_CONCURRENT: f64 = 0.5;
const TARGET_US_4X10: f64 = 25.0;

const STANDALONE: &str = "connector.testsvc.testrequestreceivereturnsraw";
const FORWARDED: &str = "game.testsvc.testrequestreceivereturnsraw";

/// Connections × requests in flight.
#[derive(Debug, Clone, Copy)]
struct Shape {
    name: &'static str,
    conns: &'static str,
    inflight: &'static str,
    /// The least forwarded / raw req/s ratio the issue asks for at this shape.
    target: f64,
}

const SHAPES: [Shape; 3] = [
    Shape { name: "1x1", conns: "1", inflight: "1", target: TARGET_1X1 },
    Shape { name: "4x10", conns: "4", inflight: "10", target: TARGET_CONCURRENT },
    Shape { name: "50x1", conns: "50", inflight: "1", target: TARGET_CONCURRENT },
];

/// What drives a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// loadgen on the frontend's own route.
    Standalone,
    /// `raw_rpc nats-load` against `raw_rpc nats-serve`.
    RawNats,
    /// loadgen on the forwarded route, the cluster on NATS.
    Nats,
    /// `raw_rpc grpc-load` against `raw_rpc grpc-serve`.
    RawGrpc,
    /// loadgen on the forwarded route, the cluster on gRPC.
    Grpc,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::RawNats => "raw nats",
            Self::Nats => "nats",
            Self::RawGrpc => "raw tonic",
            Self::Grpc => "grpc",
        }
    }

    fn is_raw(self) -> bool {
        matches!(self, Self::RawNats | Self::RawGrpc)
    }

    /// The raw baseline a forwarded case is divided by.
    fn baseline(self) -> Option<Self> {
        match self {
            Self::Nats => Some(Self::RawNats),
            Self::Grpc => Some(Self::RawGrpc),
            Self::Standalone | Self::RawNats | Self::RawGrpc => None,
        }
    }
}

/// What one case measured, all over loadgen's (or raw_rpc's) measurement window.
#[derive(Debug, Clone)]
struct Row {
    kind: Kind,
    shape: Shape,
    req_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    errors: f64,
    /// Frontend and backend CPU (raw cases: client and responder), in % of one core.
    fe_cpu: Option<f64>,
    be_cpu: Option<f64>,
    /// nats-server CPU, in % of one core (NATS cases).
    nats_cpu: Option<f64>,
    /// Frontend + backend CPU (raw: client + responder) per request answered, in µs.
    us_per_req: Option<f64>,
    /// The driver's (loadgen's or the raw client's) CPU over its whole run, in % of one core.
    driver_cpu: Option<f64>,
}

impl Row {
    fn name(&self) -> String {
        format!("{} {}", self.kind.label(), self.shape.name)
    }
}

/// The binaries the section runs.
struct Bins {
    testing: PathBuf,
    loadgen: PathBuf,
    raw_rpc: PathBuf,
}

/// The frontend and the backend, with the services they need and the raw responder of
/// the same transport; dropping it kills the servers first, then nats-server and etcd
/// (fields drop in declaration order).
struct Cluster {
    frontend: Running,
    backend: Running,
    raw: Running,
    /// Where the raw client finds the raw responder: the NATS URL or the gRPC address.
    raw_target: String,
    frontend_addr: String,
    /// The PID of nats-server, for its CPU time; `None` when it was not found.
    nats_pid: Option<u32>,
    _nats: Nats,
    _etcd: Etcd,
}

/// Builds the examples, then runs the section `repeat` times, each run printing its
/// table; with more than one run, prints the medians. Every process it starts is killed
/// before it returns, error or not.
pub(super) fn run(root: &Path, repeat: u32) -> Result<()> {
    let started = Instant::now();
    crate::services::ensure_tools()?;
    crate::cargo(&["build", "--release", "--example", "testing", "-p", "pitaya-cluster-examples"])?;
    crate::cargo(&[
        "build",
        "--release",
        "--example",
        "loadgen",
        "--example",
        "raw_rpc",
        "-p",
        "pitaya-examples",
    ])?;
    let dir = target_dir(root).join("release").join("examples");
    let bins = Bins {
        testing: dir.join("testing"),
        loadgen: dir.join("loadgen"),
        raw_rpc: dir.join("raw_rpc"),
    };
    for bin in [&bins.testing, &bins.loadgen, &bins.raw_rpc] {
        if !bin.is_file() {
            bail!("{} was not built (is its [[example]] still declared?)", bin.display());
        }
    }
    let pin = Pinning::detect();
    let built = Instant::now();
    let repeat = repeat.max(1);
    let mut runs = Vec::with_capacity(repeat as usize);
    let mut push_runs = Vec::with_capacity(repeat as usize);
    for run in 1..=repeat {
        eprintln!(
            "xtask: cluster section, run {run} of {repeat}: {}; nats-server and etcd unpinned; \
             load average {}",
            pin.describe(),
            load_average()
        );
        let (rows, push_rows, logs) = one_run(&bins, &pin)?;
        let mut out = String::new();
        writeln!(out, "\ncluster run {run} of {repeat}")?;
        render(&mut out, &rows, &pin, None)?;
        render_push(&mut out, &push_rows, None)?;
        render_logs(&mut out, &logs)?;
        print(&out)?;
        runs.push(rows);
        push_runs.push(push_rows);
    }
    if runs.len() > 1 {
        let mut out = String::new();
        writeln!(
            out,
            "\ncluster: medians of {} runs (each ratio taken within its run)",
            runs.len()
        )?;
        let medians = medians(&runs)?;
        render(&mut out, &medians.rows, &pin, Some(&medians.ratios))?;
        let (push_rows, push_ratios) = push_medians(&push_runs)?;
        render_push(&mut out, &push_rows, Some(&push_ratios))?;
        print(&out)?;
    }
    eprintln!(
        "xtask: cluster section done in {:.0?} ({:.0?} after the builds); load average now {}",
        started.elapsed(),
        built.elapsed(),
        load_average()
    );
    Ok(())
}

fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// What each server logged after it was ready.
type Logs = Vec<(&'static str, Vec<String>)>;

/// One run of every case: the NATS cluster with its raw baseline, then the gRPC one.
fn one_run(bins: &Bins, pin: &Pinning) -> Result<(Vec<Row>, Vec<PushRow>, Logs)> {
    let mut rows = Vec::new();
    let nats = Cluster::start(bins, pin, false)?;
    for shape in SHAPES {
        for kind in [Kind::Standalone, Kind::RawNats, Kind::Nats] {
            rows.push(run_case(bins, pin, &nats, kind, shape)?);
        }
    }
    let mut logs = vec![
        ("nats frontend", nats.frontend.printed()),
        ("nats backend", nats.backend.printed()),
        ("raw nats responder", nats.raw.printed()),
    ];
    drop(nats);
    let grpc = Cluster::start(bins, pin, true)?;
    for shape in SHAPES {
        for kind in [Kind::RawGrpc, Kind::Grpc] {
            rows.push(run_case(bins, pin, &grpc, kind, shape)?);
        }
    }
    logs.push(("grpc frontend", grpc.frontend.printed()));
    logs.push(("grpc backend", grpc.backend.printed()));
    logs.push(("raw tonic server", grpc.raw.printed()));
    drop(grpc);
    let (push_rows, push_logs) = push_run(bins, pin)?;
    logs.extend(push_logs);
    Ok((rows, push_rows, logs))
}

fn render_logs(out: &mut String, logs: &Logs) -> Result<()> {
    for (name, logged) in logs {
        if logged.is_empty() {
            continue;
        }
        writeln!(out, "\n{name} logged {} lines after it was ready, among them:", logged.len())?;
        for line in logged.iter().take(LOG_LINES_SHOWN) {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

impl Cluster {
    /// Starts nats-server and etcd (which panic with the end of their log if they do not
    /// come up), then the backend and the frontend, each once it logged its ready line,
    /// and the raw responder of the transport. The backend goes first, so that the
    /// frontend's first etcd sync already finds it.
    fn start(bins: &Bins, pin: &Pinning, grpc: bool) -> Result<Self> {
        let (nats, etcd) = (Nats::start(), Etcd::start());
        // A fresh prefix, so that no server left in this etcd by anything else is found.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let sd_prefix = format!("bench-{}-{nanos}/", std::process::id());
        let env = Env { nats: nats.url(), etcd: etcd.endpoint(), sd_prefix, grpc };
        let backend = start_server(&bins.testing, pin, &env, "game", None, &[])?;
        let port = pitaya_test_services::free_port();
        let frontend = start_server(&bins.testing, pin, &env, "connector", Some(port), &[])?;
        // The responder shares the servers' core, as the client shares loadgen's.
        let mut cmd = pin.command(&bins.raw_rpc, 0);
        cmd.env_clear().env("RUST_LOG", "warn");
        if grpc {
            cmd.args(["grpc-serve", "--listen", "127.0.0.1:0"]);
        } else {
            cmd.args(["nats-serve", "--nats", &env.nats]);
        }
        let mut raw =
            Running::spawn(cmd, if grpc { "raw_rpc grpc-serve" } else { "raw_rpc nats-serve" })?;
        let ready = raw.line(START_TIMEOUT)?;
        let raw_target = if grpc {
            let value: serde_json::Value = serde_json::from_str(&ready)
                .with_context(|| format!("raw_rpc grpc-serve printed {ready:?}"))?;
            value["addr"].as_str().with_context(|| format!("no addr in {ready}"))?.to_owned()
        } else {
            env.nats.clone()
        };
        Ok(Self {
            frontend,
            backend,
            raw,
            raw_target,
            frontend_addr: format!("127.0.0.1:{port}"),
            nats_pid: if grpc { None } else { child_pid("nats-server") },
            _nats: nats,
            _etcd: etcd,
        })
    }
}

/// Where the servers find each other.
struct Env {
    nats: String,
    etcd: String,
    sd_prefix: String,
    /// gRPC RPC (with etcd binding storage) instead of NATS.
    grpc: bool,
}

/// Starts a `testing` server of `server_type`: a frontend on `port` if one is given, else
/// a backend. Its environment holds only what is set here, so no `PITAYA_*` variable of
/// the caller's shell changes the figures.
fn start_server(
    testing: &Path,
    pin: &Pinning,
    env: &Env,
    server_type: &str,
    port: Option<u16>,
    extra_env: &[(&str, &str)],
) -> Result<Running> {
    let free = || pitaya_test_services::free_port().to_string();
    let mut cmd = pin.command(testing, 0);
    cmd.env_clear()
        .args(["-type", server_type, "-port", &port.unwrap_or(0).to_string()])
        .arg(format!("-frontend={}", port.is_some()))
        .args(["-sdprefix", &env.sd_prefix, "-grpcport", &free()])
        .arg(format!("-grpc={}", env.grpc))
        .envs(SERVER_ENV)
        // Unused unless metrics are enabled, but never the default port of both servers.
        .env("PITAYA_METRICS_PROMETHEUS_PORT", free())
        .env("PITAYA_CLUSTER_RPC_CLIENT_NATS_CONNECT", &env.nats)
        .env("PITAYA_CLUSTER_RPC_SERVER_NATS_CONNECT", &env.nats)
        .env("PITAYA_CLUSTER_SD_ETCD_ENDPOINTS", &env.etcd)
        .env("PITAYA_MODULES_BINDINGSTORAGE_ETCD_ENDPOINTS", &env.etcd)
        .envs(extra_env.iter().copied());
    let name = format!("testing -type {server_type}");
    let mut server = Running::spawn_reading(cmd, &name, Output::Stderr)?;
    server.wait_for(READY_LINE, START_TIMEOUT)?;
    Ok(server)
}

/// One run of `kind` at `shape`, with the CPU time of the servers (or of the raw client
/// and responder) and of nats-server over the measured window.
fn run_case(
    bins: &Bins,
    pin: &Pinning,
    cluster: &Cluster,
    kind: Kind,
    shape: Shape,
) -> Result<Row> {
    eprintln!("xtask: cluster case {} {}", kind.label(), shape.name);
    // The processes whose window CPU is asked for, in this order; the NATS server last
    // when there is one.
    let mut pids = if kind.is_raw() {
        vec![cluster.raw.pid()]
    } else {
        vec![cluster.frontend.pid(), cluster.backend.pid()]
    };
    pids.extend(cluster.nats_pid);
    let pids_arg = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let mut args: Vec<&str> = match kind {
        Kind::Standalone | Kind::Nats | Kind::Grpc => vec![
            "--addr",
            &cluster.frontend_addr,
            "--route",
            if kind == Kind::Standalone { STANDALONE } else { FORWARDED },
        ],
        Kind::RawNats => vec!["nats-load", "--nats", &cluster.raw_target],
        Kind::RawGrpc => vec!["grpc-load", "--addr", &cluster.raw_target],
    };
    args.extend([
        "--conns",
        shape.conns,
        "--inflight",
        shape.inflight,
        "--payload",
        PAYLOAD,
        "--duration",
        LOAD_SECONDS,
        "--warmup",
        WARMUP_SECONDS,
        "--cpu-pids",
        &pids_arg,
    ]);
    let timeout = secs(LOAD_SECONDS)? + secs(WARMUP_SECONDS)? + LOADGEN_SLACK;
    let bin = if kind.is_raw() { &bins.raw_rpc } else { &bins.loadgen };
    let line = loadgen(bin, pin, &args, timeout)?;
    let value: serde_json::Value = serde_json::from_str(&line)
        .with_context(|| format!("{} printed {line:?}", bin.display()))?;
    let need = |field| json_number(&line, field)?.with_context(|| format!("no {field} in {line}"));
    let window = need("duration_s")?;
    let answered = need("requests")?;
    let window_cpu: Vec<Option<f64>> = value["window_cpu_s"]
        .as_array()
        .with_context(|| format!("no window_cpu_s in {line}"))?
        .iter()
        .map(serde_json::Value::as_f64)
        .collect();
    let cpu = |i: usize| window_cpu.get(i).copied().flatten();
    let (fe, be) =
        if kind.is_raw() { (value["own_window_cpu_s"].as_f64(), cpu(0)) } else { (cpu(0), cpu(1)) };
    let nats = cluster.nats_pid.and_then(|_| cpu(pids.len() - 1));
    let percent = |s: Option<f64>| s.map(|s| 100.0 * s / window);
    let us_per_req = match (fe, be) {
        (Some(fe), Some(be)) if answered > 0.0 => Some((fe + be) * 1e6 / answered),
        _ => None,
    };
    let driver_cpu = match (json_number(&line, "cpu_s")?, json_number(&line, "elapsed_s")?) {
        (Some(cpu), Some(elapsed)) if elapsed > 0.0 => Some(100.0 * cpu / elapsed),
        _ => None,
    };
    Ok(Row {
        kind,
        shape,
        req_per_s: need("req_per_s")?,
        p50_us: need("p50_us")?,
        p99_us: need("p99_us")?,
        errors: need("errors")?,
        fe_cpu: percent(fe),
        be_cpu: percent(be),
        nats_cpu: percent(nats),
        us_per_req,
        driver_cpu,
    })
}

/// The ratios of a row: req/s over the standalone case and over the raw baseline of the
/// same shape, from the same run.
#[derive(Debug, Clone, Copy, Default)]
struct Ratios {
    vs_standalone: Option<f64>,
    vs_raw: Option<f64>,
}

fn ratios(row: &Row, rows: &[Row]) -> Ratios {
    let find = |kind: Kind| {
        rows.iter().find(|r| r.kind == kind && r.shape.name == row.shape.name).map(|r| r.req_per_s)
    };
    let forwarded = row.kind.baseline().is_some();
    Ratios {
        vs_standalone: forwarded
            .then(|| find(Kind::Standalone))
            .flatten()
            .map(|s| row.req_per_s / s),
        vs_raw: row.kind.baseline().and_then(find).map(|raw| row.req_per_s / raw),
    }
}

/// The medians of several runs: each figure's median over the runs, and each ratio's
/// median over the ratios of the runs.
struct Medians {
    rows: Vec<Row>,
    ratios: Vec<Ratios>,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => values.get(n / 2).copied(),
        _ => Some((values.get(n / 2 - 1)? + values.get(n / 2)?) / 2.0),
    }
}

fn medians(runs: &[Vec<Row>]) -> Result<Medians> {
    let first = runs.first().context("at least one run")?;
    let mut rows = Vec::with_capacity(first.len());
    let mut all_ratios = Vec::with_capacity(first.len());
    for (i, template) in first.iter().enumerate() {
        let same: Vec<(&Row, Ratios)> = runs
            .iter()
            .map(|run| {
                let row = run.get(i).context("every run has the same cases")?;
                Ok((row, ratios(row, run)))
            })
            .collect::<Result<_>>()?;
        let of =
            |f: fn(&Row) -> Option<f64>| median(same.iter().filter_map(|(r, _)| f(r)).collect());
        let nan = f64::NAN;
        rows.push(Row {
            kind: template.kind,
            shape: template.shape,
            req_per_s: of(|r| Some(r.req_per_s)).unwrap_or(nan),
            p50_us: of(|r| Some(r.p50_us)).unwrap_or(nan),
            p99_us: of(|r| Some(r.p99_us)).unwrap_or(nan),
            errors: same.iter().map(|(r, _)| r.errors).sum(),
            fe_cpu: of(|r| r.fe_cpu),
            be_cpu: of(|r| r.be_cpu),
            nats_cpu: of(|r| r.nats_cpu),
            us_per_req: of(|r| r.us_per_req),
            driver_cpu: of(|r| r.driver_cpu),
        });
        let ratio =
            |f: fn(&Ratios) -> Option<f64>| median(same.iter().filter_map(|(_, q)| f(q)).collect());
        all_ratios.push(Ratios {
            vs_standalone: ratio(|q| q.vs_standalone),
            vs_raw: ratio(|q| q.vs_raw),
        });
    }
    Ok(Medians { rows, ratios: all_ratios })
}

/// Prints `rows`; their ratios come from `ratios` when given (medians), else from the
/// rows themselves (one run).
fn render(
    out: &mut String,
    rows: &[Row],
    pin: &Pinning,
    ratios_of: Option<&[Ratios]>,
) -> Result<()> {
    writeln!(
        out,
        "testing example, connector frontend + game backend, {PAYLOAD} B raw echo, \
         {LOAD_SECONDS} s after a {WARMUP_SECONDS} s warm-up; {} (frontend, backend and raw \
         responder share CPU 0; nats-server and etcd unpinned)\n\
         standalone: {STANDALONE} (served on the frontend); nats, grpc: {FORWARDED} (frontend \
         -> NATS or gRPC -> backend -> frontend)\n\
         raw nats: async-nats request-reply over the same nats-server, one client connection, \
         conns x in flight callers; raw tonic: unary echo over one tonic channel\n\
         1x1, 4x10, 50x1: connections x requests in flight; fe/be CPU: % of one core used by the \
         frontend / backend (raw rows: client / responder),\nover the measured window only; \
         us/req: fe + be CPU per request answered in the window (nats-server excluded); \
         lg CPU: the driver's whole run\n\
         vs std: req/s over standalone's; vs raw: req/s over the raw baseline's of the same \
         shape; target: the issue's (vs raw >= {TARGET_1X1} at 1x1, >= {TARGET_CONCURRENT} \
         otherwise; us/req <= {TARGET_US_4X10} at 4x10)\n",
        pin.describe()
    )?;
    let width = rows.iter().map(|r| r.name().len()).max().unwrap_or(0).max(4);
    writeln!(
        out,
        "{:<width$}  {:>9}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>8}  {:>7}  {:>6}  {:>6}  {:>6}  target",
        "case",
        "req/s",
        "p50 us",
        "p99 us",
        "errors",
        "fe CPU",
        "be CPU",
        "nats CPU",
        "us/req",
        "lg CPU",
        "vs std",
        "vs raw",
    )?;
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |c| format!("{c:.0}%"));
    let times = |v: Option<f64>| v.map_or("-".to_owned(), |r| format!("{r:.2}x"));
    for (i, row) in rows.iter().enumerate() {
        let ratio = match ratios_of {
            Some(all) => all.get(i).copied().unwrap_or_default(),
            None => ratios(row, rows),
        };
        let mut target = Vec::new();
        if let Some(vs_raw) = ratio.vs_raw {
            let met = if vs_raw >= row.shape.target { "met" } else { "below" };
            target.push(format!("vs raw >= {:.2}: {met}", row.shape.target));
        }
        if row.kind.baseline().is_some() && row.shape.name == "4x10" {
            let met = match row.us_per_req {
                Some(us) if us <= TARGET_US_4X10 => "met",
                Some(_) => "above",
                None => "unknown",
            };
            target.push(format!("us/req <= {TARGET_US_4X10}: {met}"));
        }
        writeln!(
            out,
            "{:<width$}  {:>9.0}  {:>6.0}  {:>6.0}  {:>6.0}  {:>6}  {:>6}  {:>8}  {:>7}  {:>6}  {:>6}  {:>6}  {}",
            row.name(),
            row.req_per_s,
            row.p50_us,
            row.p99_us,
            row.errors,
            pct(row.fe_cpu),
            pct(row.be_cpu),
            pct(row.nats_cpu),
            row.us_per_req.map_or("-".to_owned(), |us| format!("{us:.1}")),
            pct(row.driver_cpu),
            times(ratio.vs_standalone),
            times(ratio.vs_raw),
            if target.is_empty() { "-".to_owned() } else { target.join("; ") },
        )?;
    }
    Ok(())
}

/// The PID of a child of xtask running `program`: pitaya-test-services execs each service
/// in place of the shell that xtask spawns, but does not expose the PID.
fn child_pid(program: &str) -> Option<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
        // `pid (comm) state ppid ...`; comm may hold spaces, so split at the last `)`.
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1;
        let ppid = rest.split_whitespace().nth(1)?;
        (comm == program && ppid == me).then_some(pid)
    })
}

/// Members of the push cases, spread evenly over [`PUSH_FRONTENDS`] frontends.
const PUSH_MEMBERS: &str = "1000";
const PUSH_FRONTENDS: usize = 2;
/// Messages not yet delivered to every member, at most: one case per window.
const PUSH_WINDOWS: [&str; 2] = ["8", "32"];
/// Seconds measured, after [`WARMUP_SECONDS`] of sending.
const PUSH_SECONDS: &str = "4";
/// loadgen's bound on binding the members, and separately on the last pushes' arrival.
const PUSH_TIMEOUT: &str = "20";
/// The target: batched pushes/s over the baseline's, at the same window.
const TARGET_PUSH: f64 = 10.0;

/// The backend's push path in a push case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PushPath {
    /// As started by default: one `sys.pushbatch` RPC per frontend.
    Batched,
    /// `PITAYA_CLUSTER_RPC_CLIENT_PUSHBATCH=false`: Go's one NATS message per uid.
    Baseline,
}

impl PushPath {
    fn label(self) -> &'static str {
        match self {
            Self::Batched => "batched",
            Self::Baseline => "baseline",
        }
    }
}

/// What one push case measured.
#[derive(Debug, Clone)]
struct PushRow {
    path: PushPath,
    window: &'static str,
    pushes_per_s: f64,
    bound: f64,
    sent: f64,
    missing: f64,
    duplicates: f64,
    complete_members: f64,
    drain_ms: Option<f64>,
    errors: f64,
    /// Both frontends', the backend's, nats-server's and loadgen's CPU over the measured
    /// window, in % of one core.
    fe_cpu: Option<f64>,
    be_cpu: Option<f64>,
    nats_cpu: Option<f64>,
    lg_cpu: Option<f64>,
}

impl PushRow {
    fn name(&self) -> String {
        format!("push {} w{}", self.path.label(), self.window)
    }

    /// Every member bound and got every message sent, exactly once.
    fn nothing_dropped(&self) -> bool {
        self.missing == 0.0
            && self.duplicates == 0.0
            && self.complete_members == self.bound
            && PUSH_MEMBERS.parse::<f64>().is_ok_and(|m| self.bound == m)
            && self.sent > 0.0
    }
}

/// The push cases: a cluster of [`PUSH_FRONTENDS`] connectors and one game backend on
/// NATS, started twice (batched, then the baseline), each driven once per window.
fn push_run(bins: &Bins, pin: &Pinning) -> Result<(Vec<PushRow>, Logs)> {
    // A thousand client sockets in loadgen and half as many in each frontend (which
    // inherit xtask's limit).
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    if nofile < 2_048 {
        eprintln!(
            "xtask: RLIMIT_NOFILE is only {nofile}; the push cases may not open every member"
        );
    }
    let mut rows = Vec::new();
    let mut logs = Logs::new();
    for path in [PushPath::Batched, PushPath::Baseline] {
        let (nats, etcd) = (Nats::start(), Etcd::start());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let sd_prefix = format!("bench-push-{}-{nanos}/", std::process::id());
        let env = Env { nats: nats.url(), etcd: etcd.endpoint(), sd_prefix, grpc: false };
        let backend_env: &[(&str, &str)] = match path {
            PushPath::Batched => &[],
            PushPath::Baseline => &[("PITAYA_CLUSTER_RPC_CLIENT_PUSHBATCH", "false")],
        };
        let backend = start_server(&bins.testing, pin, &env, "game", None, backend_env)?;
        let mut frontends = Vec::with_capacity(PUSH_FRONTENDS);
        let mut addrs = Vec::with_capacity(PUSH_FRONTENDS);
        for _ in 0..PUSH_FRONTENDS {
            let port = pitaya_test_services::free_port();
            frontends.push(start_server(&bins.testing, pin, &env, "connector", Some(port), &[])?);
            addrs.push(format!("127.0.0.1:{port}"));
        }
        let addrs = addrs.join(",");
        // Frontends, then the backend, then nats-server when found.
        let mut pids: Vec<u32> = frontends.iter().map(Running::pid).collect();
        pids.push(backend.pid());
        let nats_pid = child_pid("nats-server");
        pids.extend(nats_pid);
        let pids = pids.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        for window in PUSH_WINDOWS {
            rows.push(push_case(bins, pin, &addrs, &pids, nats_pid.is_some(), path, window)?);
        }
        let [backend_name, frontend_name] = match path {
            PushPath::Batched => ["push batched backend", "push batched frontend"],
            PushPath::Baseline => ["push baseline backend", "push baseline frontend"],
        };
        logs.push((backend_name, backend.printed()));
        for frontend in &frontends {
            logs.push((frontend_name, frontend.printed()));
        }
        // Servers first, then nats-server and etcd.
        drop(frontends);
        drop(backend);
        drop((nats, etcd));
    }
    Ok((rows, logs))
}

/// One run of `loadgen push-fanout` against the frontends at `addrs`.
fn push_case(
    bins: &Bins,
    pin: &Pinning,
    addrs: &str,
    pids: &str,
    with_nats: bool,
    path: PushPath,
    window: &'static str,
) -> Result<PushRow> {
    eprintln!("xtask: cluster case push {} window {window}", path.label());
    let args = [
        "--timeout",
        PUSH_TIMEOUT,
        "--cpu-pids",
        pids,
        "push-fanout",
        "--addrs",
        addrs,
        "--members",
        PUSH_MEMBERS,
        "--window",
        window,
        "--seconds",
        PUSH_SECONDS,
        "--warmup",
        WARMUP_SECONDS,
    ];
    let timeout =
        secs(PUSH_SECONDS)? + secs(WARMUP_SECONDS)? + 2 * secs(PUSH_TIMEOUT)? + LOADGEN_SLACK;
    let line = loadgen(&bins.loadgen, pin, &args, timeout)?;
    let need = |field| json_number(&line, field)?.with_context(|| format!("no {field} in {line}"));
    let value: serde_json::Value = serde_json::from_str(&line)
        .with_context(|| format!("{} printed {line:?}", bins.loadgen.display()))?;
    let window_s = need("duration_s")?;
    // loadgen reports the frontends, the backend, nats-server if asked, then itself.
    let cpu: Vec<Option<f64>> = value["window_cpu_s"]
        .as_array()
        .with_context(|| format!("no window_cpu_s in {line}"))?
        .iter()
        .map(|v| v.as_f64().filter(|_| window_s > 0.0).map(|s| 100.0 * s / window_s))
        .collect();
    let at = |i: usize| cpu.get(i).copied().flatten();
    let fe_cpu = (0..PUSH_FRONTENDS).map(at).sum::<Option<f64>>();
    let be_cpu = at(PUSH_FRONTENDS);
    let nats_cpu = if with_nats { at(PUSH_FRONTENDS + 1) } else { None };
    let lg_cpu = cpu.last().copied().flatten();
    Ok(PushRow {
        path,
        window,
        fe_cpu,
        be_cpu,
        nats_cpu,
        lg_cpu,
        pushes_per_s: need("pushes_per_s")?,
        bound: need("bound")?,
        sent: need("sent")?,
        missing: need("missing")?,
        duplicates: need("duplicates")?,
        complete_members: need("complete_members")?,
        drain_ms: json_number(&line, "drain_ms")?,
        errors: need("errors")?,
    })
}

/// Batched pushes/s over the baseline's at the same window, of one run.
fn push_ratio(row: &PushRow, rows: &[PushRow]) -> Option<f64> {
    (row.path == PushPath::Batched)
        .then(|| {
            rows.iter()
                .find(|r| r.path == PushPath::Baseline && r.window == row.window)
                .map(|base| row.pushes_per_s / base.pushes_per_s)
        })
        .flatten()
}

/// Prints the push cases; their ratios come from `ratios_of` when given (medians), else
/// from the rows themselves (one run).
fn render_push(
    out: &mut String,
    rows: &[PushRow],
    ratios_of: Option<&[Option<f64>]>,
) -> Result<()> {
    writeln!(
        out,
        "\ncluster push: {PUSH_FRONTENDS} connector frontends + 1 game backend of the testing \
         example on NATS; {PUSH_MEMBERS} members spread evenly over the frontends, each bound to \
         its own uid\n(connector.testsvc.testonlybindid); one more client on the first frontend \
         sends game.testsvc.testsendtousers naming every member's uid, with a sequence number,\n\
         keeping at most w (the window) messages not yet delivered to every member; \
         {PUSH_SECONDS} s after a {WARMUP_SECONDS} s warm-up (servers share CPU 0)\n\
         batched: the backend as started (one sys.pushbatch RPC per frontend); baseline: the \
         backend with PITAYA_CLUSTER_RPC_CLIENT_PUSHBATCH=false (Go's path, one NATS message per \
         uid)\npushes/s: pushes received by the members within the measured window; msgs/s: \
         pushes/s per member; missing, dup: pushes a member never got, or got twice, of all \
         messages sent;\ncomplete: members that got every message; drain: from the last send to \
         its delivery to everyone;\nfe CPU (both frontends), be CPU, nats CPU, lg CPU \
         (loadgen, holding every client): % of one core over the measured window; vs base: batched pushes/s over the baseline's at the same \
         window (target >= {TARGET_PUSH}x)\n"
    )?;
    let width = rows.iter().map(|r| r.name().len()).max().unwrap_or(0).max(4);
    writeln!(
        out,
        "{:<width$}  {:>9}  {:>7}  {:>7}  {:>7}  {:>5}  {:>9}  {:>8}  {:>6}  {:>6}  {:>6}  {:>8}  {:>6}  {:>7}  {:<14}  target",
        "case",
        "pushes/s",
        "msgs/s",
        "sent",
        "missing",
        "dup",
        "complete",
        "drain ms",
        "errors",
        "fe CPU",
        "be CPU",
        "nats CPU",
        "lg CPU",
        "vs base",
        "delivered",
    )?;
    let members: f64 = PUSH_MEMBERS.parse()?;
    let pct = |v: Option<f64>| v.map_or("-".to_owned(), |c| format!("{c:.0}%"));
    for (i, row) in rows.iter().enumerate() {
        let ratio = match ratios_of {
            Some(all) => all.get(i).copied().flatten(),
            None => push_ratio(row, rows),
        };
        let target = ratio.map_or("-".to_owned(), |r| {
            let met = if r >= TARGET_PUSH { "met" } else { "below" };
            format!("vs base >= {TARGET_PUSH}: {met}")
        });
        let delivered = if row.nothing_dropped() {
            "all, once".to_owned()
        } else {
            format!("DROPPED {:.0}", row.missing + (members - row.bound).max(0.0) * row.sent)
        };
        writeln!(
            out,
            "{:<width$}  {:>9.0}  {:>7.0}  {:>7.0}  {:>7.0}  {:>5.0}  {:>4.0}/{:<4.0}  {:>8}  {:>6.0}  {:>6}  {:>6}  {:>8}  {:>6}  {:>7}  {:<14}  {}",
            row.name(),
            row.pushes_per_s,
            row.pushes_per_s / members,
            row.sent,
            row.missing,
            row.duplicates,
            row.complete_members,
            row.bound,
            row.drain_ms.map_or("-".to_owned(), |ms| format!("{ms:.1}")),
            row.errors,
            pct(row.fe_cpu),
            pct(row.be_cpu),
            pct(row.nats_cpu),
            pct(row.lg_cpu),
            ratio.map_or("-".to_owned(), |r| format!("{r:.1}x")),
            delivered,
            target,
        )?;
    }
    Ok(())
}

/// The medians of the push cases over several runs, with each ratio's median over the
/// ratios of the runs; the drop figures are summed, so that a drop in any run shows.
fn push_medians(runs: &[Vec<PushRow>]) -> Result<(Vec<PushRow>, Vec<Option<f64>>)> {
    let first = runs.first().context("at least one run")?;
    let mut rows = Vec::with_capacity(first.len());
    let mut ratios = Vec::with_capacity(first.len());
    for (i, template) in first.iter().enumerate() {
        let same: Vec<(&PushRow, &[PushRow])> = runs
            .iter()
            .map(|run| {
                Ok((run.get(i).context("every run has the same push cases")?, run.as_slice()))
            })
            .collect::<Result<_>>()?;
        let sum = |f: fn(&PushRow) -> f64| same.iter().map(|(r, _)| f(r)).sum::<f64>();
        let min =
            |f: fn(&PushRow) -> f64| same.iter().map(|(r, _)| f(r)).fold(f64::INFINITY, f64::min);
        rows.push(PushRow {
            pushes_per_s: median(same.iter().map(|(r, _)| r.pushes_per_s).collect())
                .unwrap_or(f64::NAN),
            sent: median(same.iter().map(|(r, _)| r.sent).collect()).unwrap_or(f64::NAN),
            drain_ms: median(same.iter().filter_map(|(r, _)| r.drain_ms).collect()),
            missing: sum(|r| r.missing),
            duplicates: sum(|r| r.duplicates),
            errors: sum(|r| r.errors),
            bound: min(|r| r.bound),
            complete_members: min(|r| r.complete_members),
            fe_cpu: median(same.iter().filter_map(|(r, _)| r.fe_cpu).collect()),
            be_cpu: median(same.iter().filter_map(|(r, _)| r.be_cpu).collect()),
            nats_cpu: median(same.iter().filter_map(|(r, _)| r.nats_cpu).collect()),
            lg_cpu: median(same.iter().filter_map(|(r, _)| r.lg_cpu).collect()),
            ..template.clone()
        });
        ratios.push(median(same.iter().filter_map(|(r, run)| push_ratio(r, run)).collect()));
    }
    Ok((rows, ratios))
}
