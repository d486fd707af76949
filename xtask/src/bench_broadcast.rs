//! The broadcast cases of `cargo xtask bench` (alone with `--broadcast-only`): group
//! broadcast on the echo example against the hand-written `baseline_broadcast` server.
//!
//! For each member count, a fresh server of each kind (a group keeps the uids of members
//! that left, so a server is never reused) gets `loadgen --broadcast M --window 32`: M
//! members join group `room`, one more client sends 64 B `room.message` notifies with at
//! most 32 not yet delivered to every member, and the members count their `onMessage`
//! pushes and the delay from the sender's write to their receipt. Every case runs
//! [`ROUNDS`] times (or `--repeat N`), baseline and echo side by side in each round; the
//! table gives each figure's median, and each ratio's median over the ratios of the
//! rounds. Figures are printed, never asserted.

use anyhow::{Context, Result};
use std::fmt::Write as _;

use super::{
    Bins, LOADGEN_SLACK, Pinning, Server, ServerKind, WARMUP_SECONDS, json_number, loadgen, secs,
};

/// Member counts of the cases.
const MEMBERS: [&str; 2] = ["1000", "10000"];
/// Messages not yet delivered to every member, at most.
const WINDOW: &str = "32";
const PAYLOAD: &str = "64";
/// Measured seconds per case, after the warm-up.
const SECONDS: &str = "4";
/// Bound on opening the members, and separately on the last pushes' arrival.
const TIMEOUT: &str = "60";
/// Rounds by default: the median of three.
pub(super) const ROUNDS: u32 = 3;
/// Targets of issue 18: echo pushes/s at least this fraction of the baseline's at 1,000
/// members, and a p99 delivery latency at most this multiple of the baseline's.
const TARGET_PUSHES: f64 = 0.4;
const TARGET_P99: f64 = 2.0;

/// One loadgen run.
#[derive(Debug, Clone)]
struct Row {
    server: ServerKind,
    members: &'static str,
    pushes_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    bound: f64,
    sent: f64,
    missing: f64,
    duplicates: f64,
    errors: f64,
    complete_members: f64,
    /// Server and loadgen CPU over the measured window, in % of one core.
    server_cpu: Option<f64>,
    loadgen_cpu: Option<f64>,
}

impl Row {
    fn name(&self) -> String {
        format!("{} {}", self.server.name(), self.members)
    }

    /// Server CPU per push delivered in the window, in ns: what a push costs the server
    /// when the window, not the CPU, bounds the rate.
    fn server_ns_per_push(&self) -> Option<f64> {
        let cpu = self.server_cpu?;
        (self.pushes_per_s > 0.0).then(|| cpu / 100.0 / self.pushes_per_s * 1e9)
    }

    fn nothing_dropped(&self) -> bool {
        self.missing == 0.0
            && self.duplicates == 0.0
            && self.errors == 0.0
            && self.complete_members == self.bound
            && self.members.parse::<f64>().is_ok_and(|m| m == self.bound)
    }
}

/// Runs the cases `rounds` times and renders the medians.
pub(super) fn run(bins: &Bins, pin: &Pinning, rounds: u32) -> Result<String> {
    let mut runs: Vec<Vec<Row>> = Vec::new();
    for round in 1..=rounds {
        let mut rows = Vec::new();
        for members in MEMBERS {
            for kind in [ServerKind::BaselineBroadcast, ServerKind::Echo] {
                eprintln!(
                    "xtask: broadcast case {} {members} (round {round} of {rounds})",
                    kind.name()
                );
                rows.push(case(bins, pin, kind, members)?);
            }
        }
        runs.push(rows);
    }
    let mut out = String::new();
    render(&mut out, &runs, rounds, pin)?;
    Ok(out)
}

fn case(bins: &Bins, pin: &Pinning, kind: ServerKind, members: &'static str) -> Result<Row> {
    let server = Server::start(bins, pin, kind)?;
    let pid = server.process.pid().to_string();
    let args = [
        "--addr",
        server.tcp.as_str(),
        "--broadcast",
        members,
        "--window",
        WINDOW,
        "--payload",
        PAYLOAD,
        "--duration",
        SECONDS,
        "--warmup",
        WARMUP_SECONDS,
        "--timeout",
        TIMEOUT,
        "--cpu-pids",
        &pid,
    ];
    let bound = secs(SECONDS)? + secs(WARMUP_SECONDS)? + 2 * secs(TIMEOUT)? + LOADGEN_SLACK;
    let line = loadgen(&bins.loadgen, pin, &args, bound)?;
    let need = |field| json_number(&line, field)?.with_context(|| format!("no {field} in {line}"));
    let window_s = need("duration_s")?;
    let value: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("loadgen printed {line:?}"))?;
    // The server, then loadgen itself.
    let cpu = |i: usize| {
        value["window_cpu_s"]
            .get(i)
            .and_then(serde_json::Value::as_f64)
            .filter(|_| window_s > 0.0)
            .map(|s| 100.0 * s / window_s)
    };
    let (server_cpu, loadgen_cpu) = (cpu(0), cpu(1));
    drop(server);
    Ok(Row {
        server: kind,
        members,
        pushes_per_s: need("pushes_per_s")?,
        p50_us: need("p50_us")?,
        p99_us: need("p99_us")?,
        bound: need("bound")?,
        sent: need("sent")?,
        missing: need("missing")?,
        duplicates: need("duplicates")?,
        errors: need("errors")?,
        complete_members: need("complete_members")?,
        server_cpu,
        loadgen_cpu,
    })
}

/// Echo's figure over the baseline's at the same member count, within one round.
fn ratio(row: &Row, round: &[Row], of: fn(&Row) -> f64) -> Option<f64> {
    if row.server == ServerKind::BaselineBroadcast {
        return None;
    }
    let base = round
        .iter()
        .find(|r| r.server == ServerKind::BaselineBroadcast && r.members == row.members)?;
    Some(of(row) / of(base))
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

fn render(out: &mut String, runs: &[Vec<Row>], rounds: u32, pin: &Pinning) -> Result<()> {
    writeln!(
        out,
        "\nbroadcast: group `room` of M members on a fresh server per case, one more client \
         sends {PAYLOAD} B room.message notifies keeping at most {WINDOW} not yet delivered to \
         every member;\n{SECONDS} s after a {WARMUP_SECONDS} s warm-up, median of {rounds} \
         rounds (each ratio taken within its round); {}\n\
         pushes/s: onMessage pushes the members received in the measured window; p50/p99: \
         delivery latency, member receipt minus the sender's write of that message;\n\
         srv CPU, lg CPU: % of one core used by the server, by loadgen (holding every client); srv ns/push: server CPU per push delivered; vs base: pushes/s over baseline_broadcast's (target >= \
         {TARGET_PUSHES} at 1000); p99 vs base: over the baseline's p99 (target <= \
         {TARGET_P99}x); delivered: every member got every message once, in every round\n",
        pin.describe()
    )?;
    writeln!(
        out,
        "{:<24}  {:>9}  {:>7}  {:>7}  {:>7}  {:>7}  {:>11}  {:>7}  {:>7}  {:>12}  {:<14}  targets",
        "case",
        "pushes/s",
        "p50 us",
        "p99 us",
        "sent",
        "srv CPU",
        "srv ns/push",
        "lg CPU",
        "vs base",
        "p99 vs base",
        "delivered",
    )?;
    let first = runs.first().context("at least one round")?;
    for (i, template) in first.iter().enumerate() {
        let same: Vec<(&Row, &[Row])> = runs
            .iter()
            .map(|run| Ok((run.get(i).context("every round has the same cases")?, run.as_slice())))
            .collect::<Result<_>>()?;
        let med = |f: fn(&Row) -> f64| median(same.iter().map(|(r, _)| f(r)).collect());
        let pushes = med(|r| r.pushes_per_s).unwrap_or(f64::NAN);
        let vs_base =
            median(same.iter().filter_map(|(r, run)| ratio(r, run, |r| r.pushes_per_s)).collect());
        let p99_vs =
            median(same.iter().filter_map(|(r, run)| ratio(r, run, |r| r.p99_us)).collect());
        let dropped: f64 = same.iter().map(|(r, _)| r.missing + r.errors + r.duplicates).sum();
        let delivered = if same.iter().all(|(r, _)| r.nothing_dropped()) {
            "all, once".to_owned()
        } else {
            format!("DROPPED {dropped:.0}")
        };
        let targets = match (template.members, vs_base, p99_vs) {
            ("1000", Some(v), Some(p)) => format!(
                "pushes {} p99 {}",
                if v >= TARGET_PUSHES { "met" } else { "below" },
                if p <= TARGET_P99 { "met" } else { "above" }
            ),
            (_, _, Some(p)) => {
                format!("p99 {}", if p <= TARGET_P99 { "met" } else { "above" })
            }
            _ => "-".to_owned(),
        };
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |c| format!("{c:.0}%"));
        let opt =
            |v: Option<f64>, unit: &str| v.map_or("-".to_owned(), |v| format!("{v:.2}{unit}"));
        writeln!(
            out,
            "{:<24}  {:>9.0}  {:>7.0}  {:>7.0}  {:>7.0}  {:>7}  {:>11}  {:>7}  {:>7}  {:>12}  {:<14}  {}",
            template.name(),
            pushes,
            med(|r| r.p50_us).unwrap_or(f64::NAN),
            med(|r| r.p99_us).unwrap_or(f64::NAN),
            med(|r| r.sent).unwrap_or(f64::NAN),
            pct(median(same.iter().filter_map(|(r, _)| r.server_cpu).collect())),
            median(same.iter().filter_map(|(r, _)| r.server_ns_per_push()).collect())
                .map_or("-".to_owned(), |ns| format!("{ns:.0}")),
            pct(median(same.iter().filter_map(|(r, _)| r.loadgen_cpu).collect())),
            opt(vs_base, "x"),
            opt(p99_vs, "x"),
            delivered,
            targets,
        )?;
    }
    Ok(())
}
