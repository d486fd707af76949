//! The cluster section of `cargo xtask bench`: what forwarding a request costs.
//!
//! Two processes of the conformance server (the `testing` example of
//! pitaya-cluster-examples) share a private nats-server and etcd: a `connector` frontend
//! and a `game` backend. loadgen drives the frontend on two routes to the same handler,
//! `testsvc.testrequestreceivereturnsraw`, which returns the raw request body (what
//! loadgen checks): `connector.…` is served on the frontend itself, `game.…` goes
//! frontend → NATS → backend → NATS → frontend. Each cluster case is printed against the
//! standalone case of the same concurrency, measured in the same run. As in the load
//! section, the figures are printed, never asserted.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pitaya_test_services::{Etcd, Nats};

use super::{
    LOAD_SECONDS, LOADGEN_SLACK, Output, Pinning, Running, START_TIMEOUT, WARMUP_SECONDS,
    cpu_seconds, json_number, load_average, loadgen, secs, target_dir,
};

/// What the testing server logs once it is registered in etcd, synced and subscribed to
/// NATS.
const READY_LINE: &str = "all modules started!";
/// Request body size, in bytes.
const PAYLOAD: &str = "64";
/// The ready line is logged at info; anything else the servers print is a warning or an
/// error, worth showing after the table. No heartbeat adds a packet to the cases.
const SERVER_ENV: [(&str, &str); 2] =
    [("RUST_LOG", "warn,pitaya::app=info"), ("PITAYA_HEARTBEAT_INTERVAL", "60s")];
/// How many lines each server's log may show after the table.
const LOG_LINES_SHOWN: usize = 10;

/// One loadgen run against the frontend.
struct ClusterCase {
    label: &'static str,
    route: &'static str,
    conns: &'static str,
    inflight: &'static str,
    /// The case whose req/s this one is divided by.
    against: Option<&'static str>,
}

const STANDALONE: &str = "connector.testsvc.testrequestreceivereturnsraw";
const FORWARDED: &str = "game.testsvc.testrequestreceivereturnsraw";

/// Standalone first at each concurrency, so that its reference is measured before it.
const CASES: [ClusterCase; 4] = [
    ClusterCase {
        label: "standalone 1x1",
        route: STANDALONE,
        conns: "1",
        inflight: "1",
        against: None,
    },
    ClusterCase {
        label: "cluster 1x1",
        route: FORWARDED,
        conns: "1",
        inflight: "1",
        against: Some("standalone 1x1"),
    },
    ClusterCase {
        label: "standalone 4x10",
        route: STANDALONE,
        conns: "4",
        inflight: "10",
        against: None,
    },
    ClusterCase {
        label: "cluster 4x10",
        route: FORWARDED,
        conns: "4",
        inflight: "10",
        against: Some("standalone 4x10"),
    },
];

/// The forwarded cases again over gRPC (with etcd binding storage), against the same
/// standalone references measured on the NATS cluster's frontend in this run.
const GRPC_CASES: [ClusterCase; 2] = [
    ClusterCase {
        label: "grpc 1x1",
        route: FORWARDED,
        conns: "1",
        inflight: "1",
        against: Some("standalone 1x1"),
    },
    ClusterCase {
        label: "grpc 4x10",
        route: FORWARDED,
        conns: "4",
        inflight: "10",
        against: Some("standalone 4x10"),
    },
];

/// What one case measured.
struct ClusterRow {
    name: &'static str,
    against: Option<&'static str>,
    req_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    errors: f64,
    /// Frontend and backend CPU over the loadgen run, in % of one core.
    frontend_cpu: f64,
    backend_cpu: f64,
    /// nats-server CPU over the loadgen run, in % of one core, when its PID was found.
    nats_cpu: Option<f64>,
    /// Frontend plus backend CPU per request, warm-up included, in µs.
    servers_us_per_req: f64,
    /// Loadgen CPU over its run, in % of one core.
    loadgen_cpu: Option<f64>,
}

/// The frontend and the backend, with the services they need; dropping it kills the two
/// servers first, then nats-server and etcd (fields drop in declaration order).
struct Cluster {
    frontend: Running,
    backend: Running,
    frontend_addr: String,
    /// The PID of nats-server, for its CPU time; `None` when it was not found.
    nats_pid: Option<u32>,
    _nats: Nats,
    _etcd: Etcd,
}

/// Builds the two examples, starts NATS, etcd and the two servers, runs [`CASES`] and
/// prints the table. Every process it starts is killed before it returns, error or not.
pub(super) fn run(root: &Path) -> Result<()> {
    let started = Instant::now();
    crate::services::ensure_tools()?;
    crate::cargo(&["build", "--release", "--example", "testing", "-p", "pitaya-cluster-examples"])?;
    // A no-op after the load section, which builds every example of pitaya-examples.
    crate::cargo(&["build", "--release", "--example", "loadgen", "-p", "pitaya-examples"])?;
    let dir = target_dir(root).join("release").join("examples");
    let (testing, loadgen_bin) = (dir.join("testing"), dir.join("loadgen"));
    for bin in [&testing, &loadgen_bin] {
        if !bin.is_file() {
            bail!("{} was not built (is its [[example]] still declared?)", bin.display());
        }
    }
    let pin = Pinning::detect();
    let built = Instant::now();
    eprintln!(
        "xtask: cluster section: {}; nats-server and etcd unpinned; load average {}",
        pin.describe(),
        load_average()
    );

    let cluster = Cluster::start(&testing, &pin, false)?;
    let mut rows = CASES
        .iter()
        .map(|case| run_case(&loadgen_bin, &pin, &cluster, case))
        .collect::<Result<Vec<_>>>()?;
    let mut logs =
        vec![("frontend", cluster.frontend.printed()), ("backend", cluster.backend.printed())];
    drop(cluster);
    let grpc = Cluster::start(&testing, &pin, true)?;
    for case in &GRPC_CASES {
        rows.push(run_case(&loadgen_bin, &pin, &grpc, case)?);
    }
    logs.push(("grpc frontend", grpc.frontend.printed()));
    logs.push(("grpc backend", grpc.backend.printed()));
    drop(grpc);

    let mut out = String::new();
    render(&mut out, &rows, &pin)?;
    for (name, logged) in logs {
        if logged.is_empty() {
            continue;
        }
        writeln!(out, "\n{name} logged {} lines after it was ready, among them:", logged.len())?;
        for line in logged.iter().take(LOG_LINES_SHOWN) {
            writeln!(out, "  {line}")?;
        }
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    eprintln!(
        "xtask: cluster section done in {:.0?} ({:.0?} after the builds); load average now {}",
        started.elapsed(),
        built.elapsed(),
        load_average()
    );
    Ok(())
}

impl Cluster {
    /// Starts nats-server and etcd (which panic with the end of their log if they do not
    /// come up), then the backend and the frontend, each once it logged its ready line.
    /// The backend goes first, so that the frontend's first etcd sync already finds it.
    fn start(testing: &Path, pin: &Pinning, grpc: bool) -> Result<Self> {
        let (nats, etcd) = (Nats::start(), Etcd::start());
        // A fresh prefix, so that no server left in this etcd by anything else is found.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let sd_prefix = format!("bench-{}-{nanos}/", std::process::id());
        let env = Env { nats: nats.url(), etcd: etcd.endpoint(), sd_prefix, grpc };
        let backend = start_server(testing, pin, &env, "game", None)?;
        let port = pitaya_test_services::free_port();
        let frontend = start_server(testing, pin, &env, "connector", Some(port))?;
        Ok(Self {
            frontend,
            backend,
            frontend_addr: format!("127.0.0.1:{port}"),
            nats_pid: child_pid("nats-server"),
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
        .env("PITAYA_MODULES_BINDINGSTORAGE_ETCD_ENDPOINTS", &env.etcd);
    let name = format!("testing -type {server_type}");
    let mut server = Running::spawn_reading(cmd, &name, Output::Stderr)?;
    server.wait_for(READY_LINE, START_TIMEOUT)?;
    Ok(server)
}

/// One loadgen run of `case`, with the CPU time of both servers around it.
fn run_case(
    loadgen_bin: &Path,
    pin: &Pinning,
    cluster: &Cluster,
    case: &ClusterCase,
) -> Result<ClusterRow> {
    eprintln!("xtask: cluster case {} ({})", case.label, case.route);
    let args = [
        "--addr",
        &cluster.frontend_addr,
        "--route",
        case.route,
        "--conns",
        case.conns,
        "--inflight",
        case.inflight,
        "--payload",
        PAYLOAD,
        "--duration",
        LOAD_SECONDS,
        "--warmup",
        WARMUP_SECONDS,
    ];
    let timeout = secs(LOAD_SECONDS)? + secs(WARMUP_SECONDS)? + LOADGEN_SLACK;
    let (frontend, backend) = (cluster.frontend.pid(), cluster.backend.pid());
    let before = (cpu_seconds(frontend)?, cpu_seconds(backend)?);
    let nats_before = cluster.nats_pid.map(cpu_seconds).transpose()?;
    let wall = Instant::now();
    let line = loadgen(loadgen_bin, pin, &args, timeout)?;
    let wall = wall.elapsed().as_secs_f64();
    let frontend_cpu = cpu_seconds(frontend)? - before.0;
    let backend_cpu = cpu_seconds(backend)? - before.1;
    let nats_cpu = match (cluster.nats_pid, nats_before) {
        (Some(pid), Some(before)) => Some(100.0 * (cpu_seconds(pid)? - before) / wall),
        _ => None,
    };
    let total = json_number(&line, "total_requests")?.unwrap_or(0.0);
    let need = |field| {
        json_number(&line, field)?.with_context(|| format!("no {field} in loadgen's {line}"))
    };
    let loadgen_cpu = match (json_number(&line, "cpu_s")?, json_number(&line, "elapsed_s")?) {
        (Some(cpu), Some(elapsed)) if elapsed > 0.0 => Some(100.0 * cpu / elapsed),
        _ => None,
    };
    let servers_cpu = frontend_cpu + backend_cpu;
    Ok(ClusterRow {
        name: case.label,
        against: case.against,
        req_per_s: need("req_per_s")?,
        p50_us: need("p50_us")?,
        p99_us: need("p99_us")?,
        max_us: need("max_us")?,
        errors: need("errors")?,
        frontend_cpu: 100.0 * frontend_cpu / wall,
        backend_cpu: 100.0 * backend_cpu / wall,
        nats_cpu,
        servers_us_per_req: if total > 0.0 { servers_cpu * 1e6 / total } else { f64::NAN },
        loadgen_cpu,
    })
}

fn render(out: &mut String, rows: &[ClusterRow], pin: &Pinning) -> Result<()> {
    writeln!(
        out,
        "\ncluster: testing example, connector frontend + game backend over a private NATS, \
         {PAYLOAD} B raw echo,\n{LOAD_SECONDS} s after a {WARMUP_SECONDS} s warm-up, one round; \
         {} (frontend and backend share CPU 0; nats-server and etcd unpinned)\n\
         standalone: {STANDALONE} (served on the frontend); cluster: {FORWARDED} (frontend -> \
         NATS -> backend -> frontend)\n\
         1x1, 4x10: connections x requests in flight; fe/be/nats CPU: % of one core used by the \
         frontend / backend / nats-server;\nsrv us/req: frontend + backend CPU per request; ratio: req/s \
         against the case named; cpu ratio: its srv us/req over ours (below 1: we spend more)\n",
        pin.describe()
    )?;
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
    writeln!(
        out,
        "{:<width$}  {:>9}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>8}  {:>10}  {:>6}  \
         {:>6}  {:>9}  against",
        "case",
        "req/s",
        "p50 us",
        "p99 us",
        "max us",
        "errors",
        "fe CPU",
        "be CPU",
        "nats CPU",
        "srv us/req",
        "lg CPU",
        "ratio",
        "cpu ratio"
    )?;
    for row in rows {
        let reference = row.against.and_then(|a| rows.iter().find(|r| r.name == a));
        let ratio = |of: fn(&ClusterRow, &ClusterRow) -> f64| {
            reference.map_or("-".to_owned(), |r| format!("{:.2}x", of(row, r)))
        };
        writeln!(
            out,
            "{:<width$}  {:>9.0}  {:>6.0}  {:>6.0}  {:>6.0}  {:>6.0}  {:>5.0}%  {:>5.0}%  {:>8}  \
             {:>10.2}  {:>6}  {:>6}  {:>9}  {}",
            row.name,
            row.req_per_s,
            row.p50_us,
            row.p99_us,
            row.max_us,
            row.errors,
            row.frontend_cpu,
            row.backend_cpu,
            row.nats_cpu.map_or("-".to_owned(), |c| format!("{c:.0}%")),
            row.servers_us_per_req,
            row.loadgen_cpu.map_or("-".to_owned(), |c| format!("{c:.0}%")),
            ratio(|ours, base| ours.req_per_s / base.req_per_s),
            ratio(|ours, base| base.servers_us_per_req / ours.servers_us_per_req),
            row.against.unwrap_or("-"),
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
