//! `cargo xtask bench`: Criterion benches, callgrind instruction counts, load, cluster load.
//!
//! Wall-clock figures move with the machine and its load; instruction counts do not, so
//! they are what to compare between commits. Each case of the `instructions` bench target
//! of pitaya-codec runs under callgrind twice, N times and 0 times; the difference divided
//! by N is the cost of one operation without process start-up or fixture setup. Ratios
//! against reference cases of the same run make the table readable at a glance. The same
//! section then runs the whole echo example under callgrind with tracing off, at its
//! defaults and with Prometheus on (`bench_server.rs`): instructions per request, the
//! figure that tells what tracing and metrics cost.
//!
//! The load section (alone with `--load-only`, or some of its parts with `--part`) starts
//! the echo example and the hand-written `baseline_echo` server as child processes and
//! drives them with the `loadgen` example: pipelined requests (`echo`), compressed
//! against uncompressed echo and the zlib level table (`compression`), resident memory
//! per idle connection (`idle`), as many idle connections answering heartbeats as the
//! open-file limit allows, up to 100,000 (`scale`), and group broadcast against the hand-written `baseline_broadcast` server (`broadcast`,
//! alone also with `--broadcast-only`, see `bench_broadcast.rs`).
//! Servers and loadgen get a CPU each unless `--no-pin`. Its figures are printed, never
//! asserted: they are wall-clock figures.
//!
//! The cluster section (alone with `--cluster-only`, see `bench_cluster.rs`) drives a
//! connector frontend of the conformance server, on a route it serves itself and on one it
//! forwards over NATS or gRPC to a backend, at 1x1, 4x10 and 50x1, and prints the forwarded
//! cases against a raw request-reply over the same transport (the `raw_rpc` example), with
//! the servers' CPU per request over the measured window; `--repeat N` runs it N times and
//! prints the medians.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[path = "bench_broadcast.rs"]
mod broadcast;
#[path = "bench_cluster.rs"]
mod cluster;
#[path = "bench_server.rs"]
mod server;

/// Which sections of `cargo xtask bench` run; all of them by default.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Sections {
    /// Only run the callgrind instruction counts (fast, deterministic).
    #[arg(long, conflicts_with_all = ["load_only", "cluster_only", "broadcast_only"])]
    callgrind_only: bool,
    /// With `--callgrind-only`: only the whole echo server's instructions per request,
    /// not the codec, dispatch and metrics drivers (which build in the bench profile).
    #[arg(long, requires = "callgrind_only")]
    server_only: bool,
    /// Only run the load section: loadgen against the echo example and the baseline.
    #[arg(long, conflicts_with_all = ["cluster_only", "broadcast_only"])]
    load_only: bool,
    /// Only run the broadcast cases of the load section: group broadcast on the echo
    /// example against the `baseline_broadcast` server at 1,000 and 10,000 members,
    /// median of 3 rounds (or `--repeat N`).
    #[arg(long, conflicts_with = "cluster_only")]
    broadcast_only: bool,
    /// Only run the cluster section: loadgen against a connector frontend that serves one
    /// route itself and forwards another over NATS to a game backend.
    #[arg(long)]
    cluster_only: bool,
    /// Run the cluster section, and the load section's request cases, this many times and
    /// print each figure's median (each ratio taken within its run); e.g.
    /// `--cluster-only --repeat 3`. Once (the default), the request cases keep the best of
    /// two rounds. The broadcast cases run 3 times unless this asks for more than 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    repeat: u32,
    /// Only these parts of the load section (comma-separated; implies `--load-only`):
    /// `echo` (request cases against the baseline), `compression` (compressed against
    /// uncompressed echo at 64 B, 1 KiB and 4 KiB, and the zlib level table), `idle`
    /// (memory per idle connection at 10,000), `scale` (100,000 idle connections with
    /// heartbeats, or as many as the open-file limit allows), `broadcast`.
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with_all = ["callgrind_only", "cluster_only"])]
    part: Vec<LoadPart>,
    /// Run the load and cluster sections without pinning servers and load generator to
    /// CPUs (they then share every core, as in production); by default they are pinned
    /// whenever `taskset` and two CPUs are there.
    #[arg(long)]
    no_pin: bool,
}

/// A part of the load section, for `--part`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LoadPart {
    Echo,
    Compression,
    Idle,
    Scale,
    Broadcast,
}

/// Runs the Criterion benches, the callgrind section, the load section and the cluster
/// section, as `sections` asks.
pub(crate) fn run(root: &Path, sections: Sections) -> Result<()> {
    let load_only = sections.load_only || !sections.part.is_empty();
    let all =
        !(sections.callgrind_only || load_only || sections.cluster_only || sections.broadcast_only);
    NO_PIN.store(sections.no_pin, std::sync::atomic::Ordering::Relaxed);
    if all {
        super::cargo(&["bench", "-p", "pitaya-codec"])?;
    }
    if all || sections.callgrind_only {
        callgrind(root, sections.server_only)?;
    }
    if all || load_only {
        let parts = if sections.part.is_empty() {
            vec![
                LoadPart::Echo,
                LoadPart::Compression,
                LoadPart::Idle,
                LoadPart::Scale,
                LoadPart::Broadcast,
            ]
        } else {
            sections.part.clone()
        };
        load(root, &parts, &sections)?;
    }
    if sections.broadcast_only {
        broadcast_only(root, &sections)?;
    }
    if all || sections.cluster_only {
        cluster::run(root, sections.repeat)?;
    }
    Ok(())
}

/// One line of `instructions --list`.
struct Case {
    name: String,
    iterations: u64,
    /// The case the "vs reference" column divides by (the codec's `<op>/small/plain`).
    base: String,
    /// For a zlib case, the same case without zlib.
    uncompressed: Option<String>,
}

fn callgrind(root: &Path, server_only: bool) -> Result<()> {
    let valgrind = find_in_path("valgrind").filter(|path| {
        Command::new(path).arg("--version").output().is_ok_and(|o| o.status.success())
    });
    let Some(valgrind) = valgrind else {
        eprintln!(
            "xtask: SKIPPING the callgrind instruction counts: valgrind is not installed \
             (install it, e.g. `apt-get install valgrind`, to get them)"
        );
        return Ok(());
    };
    let started = Instant::now();
    let out_dir = target_dir(root).join("callgrind");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let drivers: &[&str] = if server_only { &[] } else { &DRIVERS };
    for package in drivers {
        callgrind_package(root, &valgrind, package, &out_dir)?;
    }
    let bins = build_examples(root)?;
    let programs =
        server::Programs { valgrind: &valgrind, root, echo: &bins.echo, loadgen: &bins.loadgen };
    let table = server::run(&programs, &out_dir)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(table.as_bytes())?;
    stdout.flush()?;
    eprintln!(
        "xtask: callgrind done in {:.0?}; profiles are in {} (read them with callgrind_annotate)",
        started.elapsed(),
        out_dir.display()
    );
    Ok(())
}

/// Packages with an `instructions` bench target speaking the `--list` / `<case> <N>`
/// protocol: the hot paths, codec, dispatch and the per-response metrics.
const DRIVERS: [&str; 3] = ["pitaya-codec", "pitaya-handler", "pitaya-metrics"];

fn callgrind_package(root: &Path, valgrind: &Path, package: &str, out_dir: &Path) -> Result<()> {
    let bin = build_driver(root, package)?;
    let cases = list_cases(&bin)?;

    let mut per_op = Vec::with_capacity(cases.len());
    for case in &cases {
        let file = |n: u64| out_dir.join(format!("{}.{n}.out", case.name.replace(['/', '+'], "_")));
        let (zero, full) = (file(0), file(case.iterations));
        // The two runs are independent processes: running them side by side halves the
        // wait on a two-core machine and cannot change what callgrind counts.
        let baseline = spawn_callgrind(valgrind, root, &bin, &case.name, 0, &zero)?;
        let measured = spawn_callgrind(valgrind, root, &bin, &case.name, case.iterations, &full)?;
        // Wait for both before reporting a failure, so that no valgrind outlives xtask.
        let (baseline, measured) = (finish(baseline, &case.name), finish(measured, &case.name));
        baseline.and(measured)?;
        let (at_zero, at_n) = (total_instructions(&zero)?, total_instructions(&full)?);
        let Some(delta) = at_n.checked_sub(at_zero) else {
            bail!(
                "{}: {at_n} instructions with N = {} but {at_zero} with N = 0",
                case.name,
                case.iterations
            );
        };
        per_op.push(delta as f64 / case.iterations as f64);
    }

    let table = render(&cases, &per_op)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "\n{package}: instructions per operation")?;
    stdout.write_all(table.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Builds the `instructions` bench target in the bench profile (what `cargo bench` runs)
/// and returns its path, taken from Cargo's own report of the artifact rather than guessed
/// from the target directory layout.
fn build_driver(root: &Path, package: &str) -> Result<PathBuf> {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .args(["build", "--profile", "bench", "-p", package, "--bench", "instructions"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    eprintln!("xtask: running {cmd:?}");
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed with {}", out.status);
    }
    let stdout = String::from_utf8(out.stdout).context("cargo's JSON output is not UTF-8")?;
    for line in stdout.lines() {
        let is_driver = line.contains(r#""reason":"compiler-artifact""#)
            && line.contains(r#""name":"instructions""#);
        if let Some(path) = is_driver.then(|| json_string_field(line, "executable")).flatten() {
            return Ok(PathBuf::from(path?));
        }
    }
    bail!("cargo built no `instructions` executable (is the bench target still declared?)")
}

/// The string value of `"field":"..."` in one line of Cargo's compact JSON; `None` when the
/// field is absent or `null`. A full JSON parser would be a dependency for one field.
fn json_string_field(line: &str, field: &str) -> Option<Result<String>> {
    let start = line.find(&format!(r#""{field}":""#))? + field.len() + 4;
    let mut value = String::new();
    let mut chars = line.get(start..)?.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(Ok(value)),
            '\\' => match chars.next() {
                Some(e @ ('"' | '\\' | '/')) => value.push(e),
                other => {
                    return Some(Err(anyhow::anyhow!(
                        "unsupported escape \\{} in cargo's `{field}`",
                        other.unwrap_or(' ')
                    )));
                }
            },
            c => value.push(c),
        }
    }
    Some(Err(anyhow::anyhow!("unterminated `{field}` in cargo's JSON output")))
}

fn list_cases(bin: &Path) -> Result<Vec<Case>> {
    let out = Command::new(bin)
        .arg("--list")
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!("{} --list failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout).context("case list is not UTF-8")?;
    let cases = text
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let &[name, iterations, base, uncompressed] = fields.as_slice() else {
                bail!("malformed case line {line:?}: want name, N, base, uncompressed");
            };
            let iterations: u64 =
                iterations.parse().with_context(|| format!("iteration count in {line:?}"))?;
            if iterations == 0 {
                bail!("case {name} asks for 0 iterations");
            }
            Ok(Case {
                name: name.to_owned(),
                iterations,
                base: base.to_owned(),
                uncompressed: (uncompressed != "-").then(|| uncompressed.to_owned()),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if cases.is_empty() {
        bail!("{} --list printed no cases", bin.display());
    }
    Ok(cases)
}

/// Where `program` is on PATH: resolved here because the callgrind runs get an empty
/// environment, PATH included.
fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| p.is_file())
}

fn target_dir(root: &Path) -> PathBuf {
    // A relative CARGO_TARGET_DIR is relative to the workspace root, where main() cds.
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// `valgrind --tool=callgrind` writing to `out_file`, in a fixed environment; the program
/// and its arguments are for the caller to add.
fn callgrind_command(valgrind: &Path, root: &Path, out_file: &Path) -> Command {
    let mut cmd = Command::new(valgrind);
    // The client's environment is copied onto its stack, so its size shifts alignments
    // and with them the count: a mere `cd` in the calling shell (which sets OLDPWD) moved
    // totals by dozens of instructions. A fixed environment and directory make the counts
    // depend on the code alone.
    cmd.env_clear().current_dir(root);
    if let Some(lib) = std::env::var_os("VALGRIND_LIB") {
        cmd.env("VALGRIND_LIB", lib);
    }
    // glibc's memset and memcpy switch to `rep stosb`/`rep movsb` above a few KiB, and
    // callgrind counts each byte those move as one instruction: the clearing of zlib's
    // tables then made up 90% of a small compressed encode, and a 64 KiB copy counted ten
    // times its vector-loop cost. These thresholds keep glibc on its vector loops, whose
    // count tracks the time they take.
    cmd.env(
        "GLIBC_TUNABLES",
        "glibc.cpu.x86_rep_stosb_threshold=0x7fffffffffffffff:\
         glibc.cpu.x86_rep_movsb_threshold=0x7fffffffffffffff",
    )
    .arg("--tool=callgrind")
    .arg("--quiet")
    .arg(format!("--callgrind-out-file={}", out_file.display()));
    cmd
}

fn spawn_callgrind(
    valgrind: &Path,
    root: &Path,
    bin: &Path,
    case: &str,
    n: u64,
    out_file: &Path,
) -> Result<Child> {
    let mut cmd = callgrind_command(valgrind, root, out_file);
    cmd.arg(bin).args([case, &n.to_string()]).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.spawn().with_context(|| format!("starting {cmd:?}"))
}

fn finish(child: Child, case: &str) -> Result<()> {
    let out =
        child.wait_with_output().with_context(|| format!("waiting for valgrind on {case}"))?;
    if !out.status.success() {
        bail!(
            "valgrind on {case} failed with {}:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The `summary:` (or, from older valgrinds, `totals:`) line of a callgrind profile: every
/// instruction the process executed, since Ir is the only event collected.
fn total_instructions(file: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .or_else(|| text.lines().find_map(|l| l.strip_prefix("totals:")))
        .with_context(|| format!("no summary or totals line in {}", file.display()))?;
    let first = value.split_whitespace().next().unwrap_or_default();
    first.parse().with_context(|| format!("instruction total {first:?} in {}", file.display()))
}

fn render(cases: &[Case], per_op: &[f64]) -> Result<String> {
    let lookup =
        |name: &str| cases.iter().position(|c| c.name == name).and_then(|i| per_op.get(i).copied());
    let ratio = |value: f64, reference: Option<&str>| -> Result<String> {
        let Some(reference) = reference else {
            return Ok("-".to_owned());
        };
        let of = lookup(reference)
            .with_context(|| format!("reference case {reference} was not measured"))?;
        Ok(format!("{:.2}x", value / of))
    };
    let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(0).max(4);
    let mut table = String::new();
    writeln!(
        table,
        "\ncallgrind instructions per operation = (Ir(N) - Ir(0)) / N\n\
         vs reference: against the case the driver names (codec: <op>/small/plain; dispatch: \
         dispatch/raw; metrics: report/map); vs no zlib: against the same case without zlib \
         (both from this run)\n"
    )?;
    writeln!(
        table,
        "{:<width$}  {:>5}  {:>12}  {:>14}  {:>10}",
        "case", "N", "instr/op", "vs reference", "vs no zlib"
    )?;
    for (case, &value) in cases.iter().zip(per_op) {
        writeln!(
            table,
            "{:<width$}  {:>5}  {:>12.0}  {:>14}  {:>10}",
            case.name,
            case.iterations,
            value,
            ratio(value, Some(&case.base))?,
            ratio(value, case.uncompressed.as_deref())?,
        )?;
    }
    Ok(table)
}

// ---------------------------------------------------------------------------------------
// Load: the echo example against the baseline server, driven by the loadgen example.
// ---------------------------------------------------------------------------------------

/// Measured seconds per request case, after the warm-up.
const LOAD_SECONDS: &str = "5";
/// Rounds over all the cases; each case keeps its best.
const ROUNDS: u32 = 2;
const WARMUP_SECONDS: &str = "1";
/// Idle connections for the memory figure, and how long loadgen holds them.
const IDLE_CONNS: u64 = 10_000;
const IDLE_HOLD_SECONDS: &str = "4";
/// Time for the server's memory to settle once every idle connection is announced.
const IDLE_SETTLE: Duration = Duration::from_millis(1500);
/// Long enough that no idle connection is closed (spec §1.6: after 2 to 3 intervals),
/// and that no heartbeat adds a packet to the request cases.
const SERVER_ENV: [(&str, &str); 2] = [("PITAYA_HEARTBEAT_INTERVAL", "60s"), ("RUST_LOG", "warn")];
/// How long a server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Slack on top of what a loadgen run should take before it is killed.
const LOADGEN_SLACK: Duration = Duration::from_secs(60);

/// A server of the load section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerKind {
    Baseline,
    /// The hand-written fan-out server of the broadcast cases.
    BaselineBroadcast,
    Echo,
    EchoCompressed,
    /// The echo example with Prometheus metrics on (response time per request).
    EchoMetrics,
    /// The echo example as a user starts it: no `RUST_LOG`, so tracing at its default
    /// level (`info`), and metrics at their defaults (off, as in Go).
    EchoDefaults,
    /// The echo example with tracing off (`RUST_LOG=off`): what the defaults are weighed
    /// against.
    EchoNoTracing,
}

impl ServerKind {
    fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::BaselineBroadcast => "baseline_broadcast",
            Self::Echo => "echo",
            Self::EchoCompressed => "echo --compression",
            Self::EchoMetrics => "echo +metrics",
            Self::EchoDefaults => "echo defaults",
            Self::EchoNoTracing => "echo -tracing",
        }
    }
}

/// One request case: `loadgen` with 4 connections × 10 requests in flight.
struct LoadCase {
    label: &'static str,
    server: ServerKind,
    ws: bool,
    payload: usize,
    /// The case whose req/s this one is divided by.
    against: Option<&'static str>,
    /// The `--part`s that run this case.
    parts: &'static [LoadPart],
}

const ECHO: &[LoadPart] = &[LoadPart::Echo];
const ECHO_AND_COMPRESSION: &[LoadPart] = &[LoadPart::Echo, LoadPart::Compression];
const COMPRESSION: &[LoadPart] = &[LoadPart::Compression];

/// The compressed cases and the uncompressed ones they are weighed against, by payload.
const COMPRESSED_PAIRS: [(&str, &str); 3] = [
    ("echo --compression tcp 64B", "echo tcp 64B"),
    ("echo --compression tcp 1KiB", "echo tcp 1KiB"),
    ("echo --compression tcp 4KiB", "echo tcp 4KiB"),
];

const CASES: [LoadCase; 13] = [
    LoadCase {
        label: "tcp 64B",
        server: ServerKind::Baseline,
        ws: false,
        payload: 64,
        against: None,
        parts: ECHO,
    },
    LoadCase {
        label: "tcp 64B",
        server: ServerKind::Echo,
        ws: false,
        payload: 64,
        against: Some("baseline tcp 64B"),
        parts: ECHO_AND_COMPRESSION,
    },
    LoadCase {
        label: "tcp 1KiB",
        server: ServerKind::Baseline,
        ws: false,
        payload: 1024,
        against: None,
        parts: ECHO,
    },
    LoadCase {
        label: "tcp 1KiB",
        server: ServerKind::Echo,
        ws: false,
        payload: 1024,
        against: Some("baseline tcp 1KiB"),
        parts: ECHO_AND_COMPRESSION,
    },
    LoadCase {
        label: "tcp 4KiB",
        server: ServerKind::Baseline,
        ws: false,
        payload: 4096,
        against: None,
        parts: ECHO,
    },
    LoadCase {
        label: "tcp 4KiB",
        server: ServerKind::Echo,
        ws: false,
        payload: 4096,
        against: Some("baseline tcp 4KiB"),
        parts: ECHO_AND_COMPRESSION,
    },
    // 64 B stays under the codec's 128-byte threshold: what compression costs a server
    // whose messages are mostly small.
    LoadCase {
        label: "tcp 64B",
        server: ServerKind::EchoCompressed,
        ws: false,
        payload: 64,
        against: Some("echo tcp 64B"),
        parts: COMPRESSION,
    },
    LoadCase {
        label: "tcp 1KiB",
        server: ServerKind::EchoCompressed,
        ws: false,
        payload: 1024,
        against: Some("echo tcp 1KiB"),
        parts: COMPRESSION,
    },
    LoadCase {
        label: "tcp 4KiB",
        server: ServerKind::EchoCompressed,
        ws: false,
        payload: 4096,
        against: Some("echo tcp 4KiB"),
        parts: COMPRESSION,
    },
    LoadCase {
        label: "ws 64B",
        server: ServerKind::Echo,
        ws: true,
        payload: 64,
        against: Some("echo tcp 64B"),
        parts: ECHO,
    },
    // Metrics on vs off, in the same run (issue: at most 5 % of echo req/s).
    LoadCase {
        label: "tcp 64B",
        server: ServerKind::EchoMetrics,
        ws: false,
        payload: 64,
        against: Some("echo tcp 64B"),
        parts: ECHO,
    },
    // Tracing and metrics at their defaults vs tracing off, in the same run (issue: at
    // most 5 % of echo req/s).
    LoadCase {
        label: "tcp 64B",
        server: ServerKind::EchoNoTracing,
        ws: false,
        payload: 64,
        against: None,
        parts: ECHO,
    },
    LoadCase {
        label: "tcp 64B",
        server: ServerKind::EchoDefaults,
        ws: false,
        payload: 64,
        against: Some("echo -tracing tcp 64B"),
        parts: ECHO,
    },
];

/// What one request case measured.
#[derive(Clone)]
struct LoadRow {
    name: String,
    against: Option<&'static str>,
    req_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    errors: f64,
    /// Server CPU over the loadgen run, in % of one core.
    server_cpu: f64,
    /// Server CPU per request, warm-up included, in µs.
    server_us_per_req: f64,
    /// Loadgen CPU over its run, in % of one core.
    loadgen_cpu: Option<f64>,
    /// How far below this (best) round's req/s the worst round fell, as a fraction.
    spread: f64,
    /// req/s against the `against` case, and that case's server µs/req over ours: from
    /// the rows kept (best of rounds), or the median of each round's ratio (`--repeat`).
    ratio: Option<f64>,
    cpu_ratio: Option<f64>,
}

/// Builds the examples the benches run, in the release profile (what users run).
fn build_examples(root: &Path) -> Result<Bins> {
    super::cargo(&["build", "--release", "--examples", "-p", "pitaya-examples"])?;
    let dir = target_dir(root).join("release").join("examples");
    let bins = Bins {
        loadgen: dir.join("loadgen"),
        echo: dir.join("echo"),
        baseline: dir.join("baseline_echo"),
        baseline_broadcast: dir.join("baseline_broadcast"),
    };
    for bin in [&bins.loadgen, &bins.echo, &bins.baseline, &bins.baseline_broadcast] {
        if !bin.is_file() {
            bail!("{} was not built (is its [[example]] still declared?)", bin.display());
        }
    }
    Ok(bins)
}

/// Rounds of the broadcast cases: [`broadcast::ROUNDS`] unless `--repeat` asks for more
/// than one.
fn broadcast_rounds(sections: &Sections) -> u32 {
    if sections.repeat > 1 { sections.repeat } else { broadcast::ROUNDS }
}

/// The broadcast cases alone (`--broadcast-only`).
fn broadcast_only(root: &Path, sections: &Sections) -> Result<()> {
    let started = Instant::now();
    let bins = build_examples(root)?;
    // Children inherit the limit: the servers and loadgen each hold 10,000 sockets.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    let pin = Pinning::detect();
    eprintln!(
        "xtask: broadcast cases: {}; RLIMIT_NOFILE {nofile}; load average {}",
        pin.describe(),
        load_average()
    );
    let out = broadcast::run(&bins, &pin, broadcast_rounds(sections))?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    eprintln!(
        "xtask: broadcast cases done in {:.0?}; load average now {}",
        started.elapsed(),
        load_average()
    );
    Ok(())
}

fn load(root: &Path, parts: &[LoadPart], sections: &Sections) -> Result<()> {
    let repeat = sections.repeat;
    let started = Instant::now();
    let bins = build_examples(root)?;
    // Children inherit the limit: the servers and loadgen each hold IDLE_CONNS sockets.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising RLIMIT_NOFILE")?;
    let pin = Pinning::detect();
    eprintln!(
        "xtask: load section ({parts:?}): {}; RLIMIT_NOFILE {nofile}; load average {}",
        pin.describe(),
        load_average()
    );
    let has = |part| parts.contains(&part);
    let mut out = String::new();
    if has(LoadPart::Echo) || has(LoadPart::Compression) {
        let runs = request_cases(&bins, &pin, parts, repeat)?;
        render_requests(&mut out, &runs, &pin)?;
        if has(LoadPart::Compression) {
            render_compressed(&mut out, &runs)?;
        }
    }
    if has(LoadPart::Compression) {
        zlib_levels(root, &bins, &pin, &mut out)?;
    }
    if has(LoadPart::Idle) {
        let idle = [ServerKind::Echo, ServerKind::Baseline]
            .into_iter()
            .map(|kind| idle_memory(&bins, &pin, kind, IDLE_CONNS.min(nofile.saturating_sub(100))))
            .collect::<Result<Vec<_>>>()?;
        render_idle(&mut out, &idle)?;
    }
    if has(LoadPart::Scale) {
        let row = idle_scale(&bins, &pin, nofile)?;
        render_scale(&mut out, &row)?;
    }
    if has(LoadPart::Broadcast) {
        out.push_str(&broadcast::run(&bins, &pin, broadcast_rounds(sections))?);
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    stdout.flush()?;
    eprintln!(
        "xtask: load section done in {:.0?}; load average now {}",
        started.elapsed(),
        load_average()
    );
    Ok(())
}

struct Bins {
    loadgen: PathBuf,
    echo: PathBuf,
    baseline: PathBuf,
    baseline_broadcast: PathBuf,
}

/// Set from `--no-pin` before any section starts; [`Pinning::detect`] reads it, so that
/// the cluster section honours it too.
static NO_PIN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Where the servers and loadgen run. On a small machine they fight for the same cores
/// and the scheduler decides the winner; one core each (servers on the first, loadgen
/// on the second) makes the figures a per-core comparison that repeats.
struct Pinning {
    taskset: Option<PathBuf>,
}

impl Pinning {
    /// Pinned when `taskset` and two CPUs are there, unless `--no-pin` asked otherwise.
    fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let wanted = !NO_PIN.load(std::sync::atomic::Ordering::Relaxed);
        let taskset = find_in_path("taskset").filter(|_| cores >= 2 && wanted);
        Self { taskset }
    }

    fn describe(&self) -> &'static str {
        match self.taskset {
            Some(_) => "servers pinned to CPU 0, loadgen to CPU 1 (taskset)",
            None if NO_PIN.load(std::sync::atomic::Ordering::Relaxed) => {
                "nothing pinned (--no-pin): servers and loadgen share every CPU"
            }
            None => "nothing pinned (needs taskset and two CPUs)",
        }
    }

    /// A command running `bin` on `cpu`; taskset execs it, so the child's PID is the
    /// program's own (which /proc readings rely on).
    fn command(&self, bin: &Path, cpu: u32) -> Command {
        match &self.taskset {
            Some(taskset) => {
                let mut cmd = Command::new(taskset);
                cmd.args(["-c", &cpu.to_string()]).arg(bin);
                cmd
            }
            None => Command::new(bin),
        }
    }
}

/// A child process and the lines it prints, killed by PID when dropped, error or not.
struct Running {
    name: String,
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

/// Which output of a child [`Running`] reads line by line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// Stdout is read; stderr goes to xtask's stderr.
    Stdout,
    /// Stderr (a server's log) is read to its end, so the server never blocks on it;
    /// stdout is discarded.
    Stderr,
    /// Stdout is read; stderr is discarded.
    StdoutOnly,
}

impl Running {
    fn spawn(cmd: Command, name: &str) -> Result<Self> {
        Self::spawn_reading(cmd, name, Output::Stdout)
    }

    fn spawn_reading(mut cmd: Command, name: &str, output: Output) -> Result<Self> {
        cmd.stdin(Stdio::null());
        match output {
            Output::Stdout => cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()),
            Output::Stderr => cmd.stdout(Stdio::null()).stderr(Stdio::piped()),
            Output::StdoutOnly => cmd.stdout(Stdio::piped()).stderr(Stdio::null()),
        };
        let mut child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let stream: Option<Box<dyn std::io::Read + Send>> = match output {
            Output::Stdout | Output::StdoutOnly => child.stdout.take().map(|s| Box::new(s) as _),
            Output::Stderr => child.stderr.take().map(|s| Box::new(s) as _),
        };
        let (tx, lines) = std::sync::mpsc::channel();
        // The guard exists before anything can fail, so the child never outlives xtask.
        let running = Self { name: name.to_owned(), child, lines };
        let stream = stream.with_context(|| format!("child {output:?} was not piped"))?;
        // A thread per child, so that a line can be awaited with a timeout.
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stream)) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(running)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line printed, within `timeout`.
    fn line(&mut self, timeout: Duration) -> Result<String> {
        use std::sync::mpsc::RecvTimeoutError;
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => bail!("{} printed nothing in {timeout:?}", self.name),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait()?;
                bail!("{} exited ({status}) before printing what was expected", self.name)
            }
        }
    }

    /// Waits up to `timeout` for a line that contains `needle`; the error quotes the last
    /// lines printed before it.
    fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        const TAIL: usize = 20;
        let deadline = Instant::now() + timeout;
        let mut tail = std::collections::VecDeque::with_capacity(TAIL);
        loop {
            match self.line(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(needle) => return Ok(()),
                Ok(line) => {
                    if tail.len() == TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                Err(e) => {
                    let tail = Vec::from(tail).join("\n");
                    return Err(e.context(format!(
                        "waiting for {needle:?} from {}; its last lines:\n{tail}",
                        self.name
                    )));
                }
            }
        }
    }

    /// The lines printed since the last read, without waiting.
    fn printed(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    /// Waits up to `timeout` for the child to exit, successfully.
    fn exit(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                bail!("{} still running after {timeout:?}; killed", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            bail!("{} failed with {status}", self.name);
        }
        Ok(())
    }

    /// Waits for the child to exit successfully within `timeout`, then returns the last
    /// line it printed.
    fn finish(mut self, timeout: Duration) -> Result<String> {
        self.exit(timeout)?;
        // The reader thread sends every line before the pipe reports EOF.
        let mut last = None;
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            last = Some(line);
        }
        last.with_context(|| format!("{} printed nothing", self.name))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // SIGKILL to this PID only; harmless when the child already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server started for the load section, with the addresses it printed.
struct Server {
    kind: ServerKind,
    process: Running,
    tcp: String,
    ws: Option<String>,
}

impl Server {
    fn start(bins: &Bins, pin: &Pinning, kind: ServerKind) -> Result<Self> {
        Self::start_with(bins, pin, kind, &[])
    }

    /// As [`Server::start`], with `env` set over [`SERVER_ENV`].
    fn start_with(
        bins: &Bins,
        pin: &Pinning,
        kind: ServerKind,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let mut cmd = match kind {
            ServerKind::Baseline => pin.command(&bins.baseline, 0),
            ServerKind::BaselineBroadcast => pin.command(&bins.baseline_broadcast, 0),
            ServerKind::Echo
            | ServerKind::EchoCompressed
            | ServerKind::EchoMetrics
            | ServerKind::EchoDefaults
            | ServerKind::EchoNoTracing => pin.command(&bins.echo, 0),
        };
        cmd.args(["--tcp", "127.0.0.1:0"]).envs(SERVER_ENV);
        match kind {
            ServerKind::Baseline | ServerKind::BaselineBroadcast => {}
            ServerKind::Echo => {
                cmd.args(["--ws", "127.0.0.1:0"]);
            }
            ServerKind::EchoCompressed => {
                cmd.arg("--compression");
            }
            ServerKind::EchoMetrics => {
                cmd.env("PITAYA_METRICS_PROMETHEUS_ENABLED", "true").env(
                    "PITAYA_METRICS_PROMETHEUS_PORT",
                    pitaya_test_services::free_port().to_string(),
                );
            }
            ServerKind::EchoDefaults => {
                cmd.env_remove("RUST_LOG");
            }
            ServerKind::EchoNoTracing => {
                cmd.env("RUST_LOG", "off");
            }
        }
        cmd.envs(env.iter().copied());
        let mut process = Running::spawn(cmd, kind.name())?;
        let line = process.line(START_TIMEOUT)?;
        let field = |name: &str| listening_field(&line, name).map(str::to_owned);
        let tcp = field("tcp=")
            .with_context(|| format!("{} printed {line:?}, not its listening line", kind.name()))?;
        Ok(Self { kind, process, tcp, ws: field("ws=") })
    }
}

/// The value of `name` (`tcp=`, `ws=`) in the echo example's listening line.
fn listening_field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|f| f.strip_prefix(name))
}

/// Runs loadgen with `args` to completion, within `timeout`; returns its result line.
fn loadgen(bin: &Path, pin: &Pinning, args: &[&str], timeout: Duration) -> Result<String> {
    let mut cmd = pin.command(bin, 1);
    cmd.args(args).env("RUST_LOG", "warn");
    Running::spawn(cmd, "loadgen")?.finish(timeout)
}

/// The request cases of one load section: the row kept for each case, and every round.
struct RequestRuns {
    rows: Vec<LoadRow>,
    rounds: Vec<Vec<LoadRow>>,
    /// Whether `rows` are medians (`--repeat`) rather than the best rounds.
    median: bool,
}

impl RequestRuns {
    /// `of(case, reference)` for the cases named: the median of each round's value with
    /// `--repeat`, else the value of the rows kept.
    fn ratio(&self, name: &str, against: &str, of: fn(&LoadRow, &LoadRow) -> f64) -> Option<f64> {
        let pair = |rows: &[LoadRow]| {
            let row = rows.iter().find(|r| r.name == name)?;
            let reference = rows.iter().find(|r| r.name == against)?;
            Some(of(row, reference))
        };
        if !self.median {
            return pair(&self.rows);
        }
        median(self.rounds.iter().filter_map(|round| pair(round)).collect())
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => values.get(mid).copied(),
        _ => Some((values.get(mid - 1)? + values.get(mid)?) / 2.0),
    }
}

/// Runs the cases of `parts` round by round: [`ROUNDS`] rounds keeping each case's best
/// (other work on the machine can only slow a round down, so the best is the one least
/// disturbed), or with `repeat` above 1 that many rounds keeping each case's median
/// round and the median of each round's ratios. The spread between rounds tells how much
/// to trust either.
fn request_cases(
    bins: &Bins,
    pin: &Pinning,
    parts: &[LoadPart],
    repeat: u32,
) -> Result<RequestRuns> {
    let cases: Vec<&LoadCase> =
        CASES.iter().filter(|c| c.parts.iter().any(|p| parts.contains(p))).collect();
    let mut kinds: Vec<ServerKind> = cases.iter().map(|c| c.server).collect();
    kinds.dedup();
    let mut servers = Vec::new();
    for kind in kinds {
        if !servers.iter().any(|s: &Server| s.kind == kind) {
            servers.push(Server::start(bins, pin, kind)?);
        }
    }
    let (rounds_wanted, median_mode) = if repeat > 1 { (repeat, true) } else { (ROUNDS, false) };
    let mut rounds = Vec::with_capacity(rounds_wanted as usize);
    for round in 1..=rounds_wanted {
        let mut rows = Vec::with_capacity(cases.len());
        for case in &cases {
            let server = servers
                .iter()
                .find(|s| s.kind == case.server)
                .context("every server kind of the cases is started above")?;
            rows.push(run_case(bins, pin, server, case, round, rounds_wanted)?);
        }
        rounds.push(rows);
    }
    let mut rows = Vec::with_capacity(cases.len());
    for i in 0..cases.len() {
        let mut of_case: Vec<&LoadRow> = rounds.iter().filter_map(|r| r.get(i)).collect();
        of_case.sort_by(|a, b| a.req_per_s.total_cmp(&b.req_per_s));
        let worst = of_case.first().map_or(f64::NAN, |r| r.req_per_s);
        let kept = if median_mode { of_case.get(of_case.len() / 2) } else { of_case.last() };
        let kept = kept.context("at least one round ran")?;
        rows.push(LoadRow {
            name: kept.name.clone(),
            spread: 1.0 - worst / of_case.last().map_or(f64::NAN, |r| r.req_per_s),
            ..(*kept).clone()
        });
    }
    let mut runs = RequestRuns { rows, rounds, median: median_mode };
    let ratios: Vec<(Option<f64>, Option<f64>)> = runs
        .rows
        .iter()
        .map(|row| match row.against {
            Some(against) => (
                runs.ratio(&row.name, against, |ours, base| ours.req_per_s / base.req_per_s),
                runs.ratio(&row.name, against, |ours, base| {
                    base.server_us_per_req / ours.server_us_per_req
                }),
            ),
            None => (None, None),
        })
        .collect();
    for (row, (ratio, cpu_ratio)) in runs.rows.iter_mut().zip(ratios) {
        row.ratio = ratio;
        row.cpu_ratio = cpu_ratio;
    }
    Ok(runs)
}

/// One loadgen run of `case` against `server`, with the server's CPU time around it.
fn run_case(
    bins: &Bins,
    pin: &Pinning,
    server: &Server,
    case: &LoadCase,
    round: u32,
    rounds: u32,
) -> Result<LoadRow> {
    let name = format!("{} {}", case.server.name(), case.label);
    let addr = match (case.ws, &server.ws) {
        (false, _) => server.tcp.as_str(),
        (true, Some(ws)) => ws.as_str(),
        (true, None) => bail!("{name}: the server has no WebSocket acceptor"),
    };
    eprintln!("xtask: load case {name} (round {round} of {rounds})");
    let payload = case.payload.to_string();
    let mut args = vec![
        "--addr",
        addr,
        "--conns",
        "4",
        "--inflight",
        "10",
        "--payload",
        &payload,
        "--duration",
        LOAD_SECONDS,
        "--warmup",
        WARMUP_SECONDS,
    ];
    if case.ws {
        args.push("--ws");
    }
    let per_case = secs(LOAD_SECONDS)? + secs(WARMUP_SECONDS)? + LOADGEN_SLACK;
    let cpu_before = cpu_seconds(server.process.pid())?;
    let wall = Instant::now();
    let line = loadgen(&bins.loadgen, pin, &args, per_case)?;
    let wall = wall.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(server.process.pid())? - cpu_before;
    let total = json_number(&line, "total_requests")?.unwrap_or(0.0);
    let need = |field| {
        json_number(&line, field)?.with_context(|| format!("no {field} in loadgen's {line}"))
    };
    let loadgen_cpu = match (json_number(&line, "cpu_s")?, json_number(&line, "elapsed_s")?) {
        (Some(cpu), Some(elapsed)) if elapsed > 0.0 => Some(100.0 * cpu / elapsed),
        _ => None,
    };
    Ok(LoadRow {
        name,
        against: case.against,
        req_per_s: need("req_per_s")?,
        p50_us: need("p50_us")?,
        p99_us: need("p99_us")?,
        max_us: need("max_us")?,
        errors: need("errors")?,
        server_cpu: 100.0 * server_cpu / wall,
        server_us_per_req: if total > 0.0 { server_cpu * 1e6 / total } else { f64::NAN },
        loadgen_cpu,
        spread: 0.0,
        ratio: None,
        cpu_ratio: None,
    })
}

/// What one idle-memory run measured.
struct IdleRow {
    server: ServerKind,
    asked: u64,
    established: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    fds_before: usize,
    fds_after: usize,
}

/// Starts a fresh `kind` server, so that no earlier case's allocations hide the cost,
/// and reads its VmRSS before and while loadgen holds `conns` idle connections.
fn idle_memory(bins: &Bins, pin: &Pinning, kind: ServerKind, conns: u64) -> Result<IdleRow> {
    eprintln!("xtask: idle memory of {} with {conns} connections", kind.name());
    let server = Server::start(bins, pin, kind)?;
    std::thread::sleep(Duration::from_millis(500));
    let pid = server.process.pid();
    let (rss_before_kib, fds_before) = (vm_rss_kib(pid)?, open_fds(pid)?);
    let mut cmd = pin.command(&bins.loadgen, 1);
    let conns_arg = conns.to_string();
    cmd.args(["--addr", &server.tcp, "--idle", &conns_arg, "--hold", IDLE_HOLD_SECONDS])
        .args(["--timeout", "60"])
        .env("RUST_LOG", "warn");
    let mut idle = Running::spawn(cmd, "loadgen --idle")?;
    let ready = idle.line(Duration::from_secs(90))?;
    std::thread::sleep(IDLE_SETTLE);
    let (rss_after_kib, fds_after) = (vm_rss_kib(pid)?, open_fds(pid)?);
    let last = idle.finish(Duration::from_secs(30))?;
    let established = json_number(&ready, "established")?
        .with_context(|| format!("loadgen announced {ready:?}, not its idle connections"))?;
    if let Some(errors) = json_number(&last, "errors")?.filter(|e| *e > 0.0) {
        eprintln!("xtask: {errors} idle connections to {} failed", kind.name());
    }
    Ok(IdleRow {
        server: kind,
        asked: conns,
        established: established as u64,
        rss_before_kib,
        rss_after_kib,
        fds_before,
        fds_after,
    })
}

fn render_requests(out: &mut String, runs: &RequestRuns, pin: &Pinning) -> Result<()> {
    let rows = &runs.rows;
    let kept = if runs.median {
        format!("median of {} rounds (ratios: median of each round's)", runs.rounds.len())
    } else {
        format!("best of {} rounds", runs.rounds.len())
    };
    writeln!(
        out,
        "\nload: 4 connections x 10 requests in flight on room.echo, {LOAD_SECONDS} s after a \
         {WARMUP_SECONDS} s warm-up, {kept}; {}\n\
         spread: how far the worst round fell below the best; srv/lg CPU: % of one core used \
         by the server / loadgen;\nsrv us/req: server CPU per request; ratio: req/s against \
         the case named; cpu ratio: its srv us/req over ours (below 1: we spend more)\n",
        pin.describe()
    )?;
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(4);
    writeln!(
        out,
        "{:<width$}  {:>9}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>7}  {:>10}  {:>6}  {:>6}  {:>9}  \
         against",
        "case",
        "req/s",
        "spread",
        "p50 us",
        "p99 us",
        "max us",
        "errors",
        "srv CPU",
        "srv us/req",
        "lg CPU",
        "ratio",
        "cpu ratio"
    )?;
    for row in rows {
        let ratio = |value: Option<f64>| value.map_or("-".to_owned(), |r| format!("{r:.2}x"));
        writeln!(
            out,
            "{:<width$}  {:>9.0}  {:>5.0}%  {:>6.0}  {:>6.0}  {:>6.0}  {:>6.0}  {:>6.0}%  \
             {:>10.2}  {:>6}  {:>6}  {:>9}  {}",
            row.name,
            row.req_per_s,
            100.0 * row.spread,
            row.p50_us,
            row.p99_us,
            row.max_us,
            row.errors,
            row.server_cpu,
            row.server_us_per_req,
            row.loadgen_cpu.map_or("-".to_owned(), |c| format!("{c:.0}%")),
            ratio(row.ratio),
            ratio(row.cpu_ratio),
            row.against.unwrap_or("-"),
        )?;
    }
    Ok(())
}

/// The server CPU compression adds: compressed against uncompressed echo, by payload.
fn render_compressed(out: &mut String, runs: &RequestRuns) -> Result<()> {
    writeln!(
        out,
        "\ncompression: echo --compression (the codec's default zlib level, see the level \
         table) against echo, same payloads; CPU ratio = compressed srv us/req / \
         uncompressed (1.00x: free){}\n",
        if runs.median { ", median of each round's ratio" } else { "" }
    )?;
    writeln!(
        out,
        "{:<8}  {:>16}  {:>14}  {:>9}  {:>9}",
        "payload", "uncompressed us", "compressed us", "CPU ratio", "req/s ratio"
    )?;
    for (compressed, plain) in COMPRESSED_PAIRS {
        let find = |name: &str| runs.rows.iter().find(|r| r.name == name);
        let (Some(z), Some(p)) = (find(compressed), find(plain)) else { continue };
        let cpu = runs.ratio(compressed, plain, |z, p| z.server_us_per_req / p.server_us_per_req);
        let req = runs.ratio(compressed, plain, |z, p| z.req_per_s / p.req_per_s);
        let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}x"));
        writeln!(
            out,
            "{:<8}  {:>16.2}  {:>14.2}  {:>9}  {:>9}",
            plain.rsplit(' ').next().unwrap_or(plain),
            p.server_us_per_req,
            z.server_us_per_req,
            fmt(cpu),
            fmt(req),
        )?;
    }
    Ok(())
}

/// Payloads of the zlib level table: the compressed request cases above 128 bytes (the
/// 64-byte one is never compressed).
const ZLIB_PAYLOADS: &str = "1024,4096";
/// Deflates per callgrind run of one level and payload.
const ZLIB_CALLGRIND_ITERATIONS: u64 = 100;

/// One level's figures in the zlib table, per payload of [`ZLIB_PAYLOADS`].
struct LevelRow {
    level: u32,
    bytes: Vec<f64>,
    ns: Vec<f64>,
    /// Callgrind instructions per deflate; empty without valgrind.
    instructions: Vec<f64>,
}

/// Deflated size, time and (with valgrind) instructions of each zlib level on the
/// request payloads, through the codec's own deflate (`loadgen zlib-levels`); marks the
/// level of least CPU whose output stays within 5 % of zlib's default level (6) on every
/// payload, the rule the codec's default was chosen by.
fn zlib_levels(root: &Path, bins: &Bins, pin: &Pinning, out: &mut String) -> Result<()> {
    eprintln!("xtask: zlib levels");
    let line = loadgen(
        &bins.loadgen,
        pin,
        &["zlib-levels", "--payloads", ZLIB_PAYLOADS, "--iterations", "2000", "--batches", "7"],
        Duration::from_secs(300),
    )?;
    let payloads: Vec<usize> =
        ZLIB_PAYLOADS.split(',').map(str::parse).collect::<Result<_, _>>()?;
    let mut rows: Vec<LevelRow> = Vec::new();
    for level in 1..=9u32 {
        let mut row = LevelRow { level, bytes: vec![], ns: vec![], instructions: vec![] };
        for &payload in &payloads {
            let entry = format!(r#""level":{level},"payload":{payload}"#);
            // Rows are flat objects: `{"bytes":N,"level":L,"ns":T,"payload":P}` in some
            // key order; find the object that holds this level and payload.
            let object = line
                .split('{')
                .find(|o| {
                    o.contains(&format!(r#""level":{level},"#))
                        && o.contains(&format!(r#""payload":{payload}"#))
                })
                .with_context(|| format!("no {entry} in {line}"))?;
            let object = format!("{{{object}");
            let need = |f| json_number(&object, f)?.with_context(|| format!("no {f} in {object}"));
            row.bytes.push(need("bytes")?);
            row.ns.push(need("ns")?);
        }
        rows.push(row);
    }
    if let Some(valgrind) = find_in_path("valgrind") {
        let out_dir = target_dir(root).join("callgrind");
        std::fs::create_dir_all(&out_dir)?;
        for row in &mut rows {
            for &payload in &payloads {
                let run = |n: u64| -> Result<(Child, PathBuf)> {
                    let file = out_dir.join(format!("zlib.l{}.{payload}.{n}.out", row.level));
                    let mut cmd = callgrind_command(&valgrind, root, &file);
                    cmd.arg(&bins.loadgen)
                        .args(["zlib-levels", "--levels", &row.level.to_string()])
                        .args(["--payloads", &payload.to_string(), "--batches", "1"])
                        .args(["--iterations", &n.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped());
                    Ok((cmd.spawn().with_context(|| format!("starting {cmd:?}"))?, file))
                };
                let ((zero, zero_file), (full, full_file)) =
                    (run(0)?, run(ZLIB_CALLGRIND_ITERATIONS)?);
                let name = format!("zlib level {} {payload} B", row.level);
                let (a, b) = (finish(zero, &name), finish(full, &name));
                a.and(b)?;
                let delta =
                    total_instructions(&full_file)?.saturating_sub(total_instructions(&zero_file)?);
                row.instructions.push(delta as f64 / ZLIB_CALLGRIND_ITERATIONS as f64);
            }
        }
    }
    let six = rows.iter().find(|r| r.level == 6).context("level 6 was measured")?;
    let within: Vec<bool> =
        rows.iter().map(|r| r.bytes.iter().zip(&six.bytes).all(|(b, s)| *b <= s * 1.05)).collect();
    // CPU: instructions when counted (they do not move with the machine's load), else
    // time; summed over the payloads.
    let cost = |r: &LevelRow| -> f64 {
        if r.instructions.is_empty() { r.ns.iter().sum() } else { r.instructions.iter().sum() }
    };
    let chosen = rows
        .iter()
        .zip(&within)
        .filter(|(_, ok)| **ok)
        .min_by(|(a, _), (b, _)| cost(a).total_cmp(&cost(b)))
        .map(|(r, _)| r.level);
    writeln!(
        out,
        "\nzlib levels on the request payloads ({ZLIB_PAYLOADS} B of JSON-like text), through \
         pitaya-codec's deflate: bytes out, % of level 6's, ns per deflate (fastest of 7 \
         batches), callgrind instructions per deflate; *: least CPU within 5 % of level 6's \
         size on every payload; the codec's default is level {}\n",
        json_number(&line, "default_level")?.map_or("?".to_owned(), |l| l.to_string())
    )?;
    write!(out, "{:<6}", "level")?;
    for p in &payloads {
        write!(out, "  {:>8}  {:>6}  {:>9}  {:>10}", format!("{p} B out"), "vs 6", "ns", "instr")?;
    }
    writeln!(out)?;
    for row in &rows {
        let mark = if Some(row.level) == chosen { "*" } else { " " };
        write!(out, "{:<6}", format!("{}{mark}", row.level))?;
        for (i, _) in payloads.iter().enumerate() {
            let bytes = row.bytes.get(i).copied().unwrap_or(f64::NAN);
            let of_six = six.bytes.get(i).copied().unwrap_or(f64::NAN);
            let instr = row.instructions.get(i).map_or("-".to_owned(), |v| format!("{v:.0}"));
            write!(
                out,
                "  {:>8.0}  {:>5.1}%  {:>9.0}  {:>10}",
                bytes,
                100.0 * bytes / of_six,
                row.ns.get(i).copied().unwrap_or(f64::NAN),
                instr
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Connections of the scale case; fewer when the open-file limit is lower (each process,
/// server and loadgen, holds one descriptor per connection).
const SCALE_CONNS: u64 = 100_000;
/// Loopback source addresses the scale case's clients are spread over: one source to one
/// port runs out of ephemeral ports near 28,000 connections.
const SCALE_SOURCES: &str = "127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5";
/// Heartbeat interval of the scale case's server: short, so that the measured window
/// holds several rounds of heartbeats.
const SCALE_HEARTBEAT_SECONDS: u64 = 5;
/// Window over which the idle server's CPU is read: three heartbeat intervals.
const SCALE_WINDOW: Duration = Duration::from_secs(3 * SCALE_HEARTBEAT_SECONDS);

/// What the scale case measured.
struct ScaleRow {
    asked: u64,
    /// Why fewer than `asked` were tried, if so.
    limited_by: Option<String>,
    tried: u64,
    established: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    rss_end_kib: u64,
    /// Server CPU seconds per second of the window.
    cpu_per_s: f64,
    heartbeats_answered: f64,
    open_at_end: f64,
    errors: f64,
}

/// A fresh echo server with heartbeats every [`SCALE_HEARTBEAT_SECONDS`], holding
/// [`SCALE_CONNS`] idle connections (or as many as the open-file limit allows) whose
/// clients answer every heartbeat: resident memory per connection, and the server's CPU
/// per second over [`SCALE_WINDOW`] of idle time.
fn idle_scale(bins: &Bins, pin: &Pinning, nofile: u64) -> Result<ScaleRow> {
    // A few dozen descriptors for everything else each process opens.
    let allowed = nofile.saturating_sub(200);
    let tried = SCALE_CONNS.min(allowed);
    let limited_by = (tried < SCALE_CONNS).then(|| {
        format!(
            "RLIMIT_NOFILE is {nofile} (hard limit; raising it needs CAP_SYS_RESOURCE), and \
             the server holds one descriptor per connection"
        )
    });
    eprintln!("xtask: scale: {tried} idle connections with heartbeats");
    let interval = format!("{SCALE_HEARTBEAT_SECONDS}s");
    let server = Server::start_with(
        bins,
        pin,
        ServerKind::Echo,
        &[("PITAYA_HEARTBEAT_INTERVAL", &interval)],
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let pid = server.process.pid();
    let rss_before_kib = vm_rss_kib(pid)?;
    let hold = (IDLE_SETTLE + SCALE_WINDOW + Duration::from_secs(5)).as_secs().to_string();
    let tried_arg = tried.to_string();
    let mut cmd = pin.command(&bins.loadgen, 1);
    cmd.args(["--addr", &server.tcp, "--idle", &tried_arg, "--sources", SCALE_SOURCES])
        .args(["--heartbeats", "--hold", &hold, "--timeout", "180"])
        .env("RUST_LOG", "warn");
    let mut idle = Running::spawn(cmd, "loadgen --idle --heartbeats")?;
    let ready = idle.line(Duration::from_secs(240))?;
    std::thread::sleep(IDLE_SETTLE);
    let rss_after_kib = vm_rss_kib(pid)?;
    let cpu_before = cpu_seconds(pid)?;
    let window = Instant::now();
    std::thread::sleep(SCALE_WINDOW);
    let cpu_per_s = (cpu_seconds(pid)? - cpu_before) / window.elapsed().as_secs_f64();
    let rss_end_kib = vm_rss_kib(pid)?;
    let last = idle.finish(Duration::from_secs(120))?;
    let established = json_number(&ready, "established")?
        .with_context(|| format!("loadgen announced {ready:?}, not its idle connections"))?;
    let get = |field| json_number(&last, field).map(|v| v.unwrap_or(f64::NAN));
    Ok(ScaleRow {
        asked: SCALE_CONNS,
        limited_by,
        tried,
        established: established as u64,
        rss_before_kib,
        rss_after_kib,
        rss_end_kib,
        cpu_per_s,
        heartbeats_answered: get("heartbeats_answered")?,
        open_at_end: get("open_at_end")?,
        errors: get("errors")?,
    })
}

fn render_scale(out: &mut String, row: &ScaleRow) -> Result<()> {
    writeln!(
        out,
        "\nscale: fresh echo server, heartbeat every {SCALE_HEARTBEAT_SECONDS} s, idle TCP \
         connections from {SCALE_SOURCES} whose clients answer each heartbeat; RSS {:.1} s \
         after all are announced and at the end of a {} s window over which server CPU is read",
        IDLE_SETTLE.as_secs_f64(),
        SCALE_WINDOW.as_secs()
    )?;
    if let Some(why) = &row.limited_by {
        writeln!(out, "asked for {}, tried {}: {why}", row.asked, row.tried)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:>7}  {:>11}  {:>10}  {:>10}  {:>12}  {:>12}  {:>9}  {:>12}  {:>10}  {:>11}  {:>6}",
        "conns",
        "established",
        "RSS before",
        "RSS after",
        "KiB per conn",
        "KiB/conn end",
        "CPU/s",
        "us/conn/s",
        "heartbeats",
        "open at end",
        "errors"
    )?;
    let per_conn = |kib: u64| match row.established {
        0 => f64::NAN,
        n => kib.saturating_sub(row.rss_before_kib) as f64 / n as f64,
    };
    writeln!(
        out,
        "{:>7}  {:>11}  {:>6} KiB  {:>6} KiB  {:>12.2}  {:>12.2}  {:>8.2}%  {:>12.3}  {:>10.0}  \
         {:>11.0}  {:>6.0}",
        row.tried,
        row.established,
        row.rss_before_kib,
        row.rss_after_kib,
        per_conn(row.rss_after_kib),
        per_conn(row.rss_end_kib),
        100.0 * row.cpu_per_s,
        if row.established > 0 { row.cpu_per_s * 1e6 / row.established as f64 } else { f64::NAN },
        row.heartbeats_answered,
        row.open_at_end,
        row.errors,
    )?;
    Ok(())
}

fn render_idle(out: &mut String, rows: &[IdleRow]) -> Result<()> {
    writeln!(
        out,
        "\nidle memory: fresh server, VmRSS before and {:.1} s after loadgen announced its \
         handshaken, acknowledged, idle TCP connections\n",
        IDLE_SETTLE.as_secs_f64()
    )?;
    writeln!(
        out,
        "{:<8}  {:>6}  {:>11}  {:>10}  {:>10}  {:>13}  {:>13}",
        "server", "conns", "established", "RSS before", "RSS after", "open fds", "KiB per conn"
    )?;
    for row in rows {
        let per_conn = match row.established {
            0 => f64::NAN,
            n => row.rss_after_kib.saturating_sub(row.rss_before_kib) as f64 / n as f64,
        };
        writeln!(
            out,
            "{:<8}  {:>6}  {:>11}  {:>7} KiB  {:>7} KiB  {:>13}  {:>13.2}",
            row.server.name(),
            row.asked,
            row.established,
            row.rss_before_kib,
            row.rss_after_kib,
            format!("{} -> {}", row.fds_before, row.fds_after),
            per_conn,
        )?;
    }
    Ok(())
}

/// The number `"field": N` in a flat JSON line (loadgen's); `None` when absent or `null`.
/// As with [`json_string_field`], a JSON parser would be a dependency for a few fields.
fn json_number(line: &str, field: &str) -> Result<Option<f64>> {
    let Some(at) = line.find(&format!(r#""{field}":"#)) else { return Ok(None) };
    let value = line.get(at + field.len() + 3..).unwrap_or_default();
    let value = value.split([',', '}']).next().unwrap_or_default().trim();
    if value == "null" {
        return Ok(None);
    }
    let number = value.parse().with_context(|| format!("`{field}` is {value:?} in {line}"))?;
    Ok(Some(number))
}

fn secs(text: &str) -> Result<Duration> {
    Ok(Duration::from_secs(text.parse().with_context(|| format!("{text:?} seconds"))?))
}

/// User plus system CPU seconds of `pid`, all threads, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after `(comm)`, which may hold spaces: utime and stime (14 and 15 in proc(5))
    // are the 12th and 13th.
    let rest =
        stat.rsplit_once(')').map(|(_, r)| r).with_context(|| format!("malformed {path}"))?;
    let mut ticks = rest.split_whitespace().skip(11).take(2).map(str::parse::<u64>);
    let (Some(Ok(user)), Some(Ok(system))) = (ticks.next(), ticks.next()) else {
        bail!("no utime and stime in {path}");
    };
    // proc(5) counts in USER_HZ, which is 100 on every Linux ABI.
    Ok((user + system) as f64 / 100.0)
}

/// The resident set of `pid` in KiB, from the `VmRSS:` line of `/proc/<pid>/status`.
fn vm_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .with_context(|| format!("no VmRSS in {path}"))?;
    let kib = value.trim().trim_end_matches("kB").trim();
    kib.parse().with_context(|| format!("VmRSS {value:?} in {path}"))
}

/// Open descriptors of `pid`: shows that the server still holds the idle connections.
fn open_fds(pid: u32) -> Result<usize> {
    let path = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&path).with_context(|| format!("listing {path}"))?.count())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}
