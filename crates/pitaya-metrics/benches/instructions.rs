//! Callgrind driver for the per-response metrics path, counted in instructions by
//! `cargo xtask bench` as `(Ir(N) - Ir(0)) / N` (same protocol as pitaya-codec's and
//! pitaya-handler's `instructions` benches).
//!
//! Cases, all on a Prometheus reporter whose series already exist (the steady state of a
//! server under load):
//! - `report/pairs`: one `response_time_ns` observation through [`Reporter::report`] with
//!   borrowed label pairs, as the server does for every response;
//! - `report/map`: the same observation through `report_summary` with a label map built
//!   for the call, the general entry point (the reference case);
//! - `report/response+delay`: the response time and the handler delay through
//!   [`Reporter::report`], two clock reads each (a request to a route without a cached
//!   series: forwarded, or failed);
//! - `recorder/response+delay`: the same through [`Recorder`]s resolved beforehand, as the
//!   server reports a request to one of its own handlers.
//!
//! - `instructions <case> <N>`: builds the case, then reports N times.
//! - `instructions --list`: name, N, reference case and `-`, tab-separated.
//! - anything else (`cargo bench`, `cargo test`): runs each case a few times and checks
//!   the series counted them, so both stay green without valgrind.

use std::hint::black_box;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use pitaya_config::model::MetricsConfig;
use std::sync::Arc;

use pitaya_metrics::{MetricKind, PrometheusReporter, Recorder, Reporter, labels, names, nanos};

const CASES: [&str; 4] =
    ["report/pairs", "report/map", "report/response+delay", "recorder/response+delay"];
const ITERATIONS: u64 = 5000;
const ROUTE: &str = "connector.room.echo";

/// The reporter and the recorders of the route's response and delay series.
struct Fixture {
    r: PrometheusReporter,
    ok: Arc<dyn Recorder>,
    delay: Arc<dyn Recorder>,
}

fn reporter() -> Fixture {
    let r = PrometheusReporter::new("connector", &MetricsConfig::default())
        .unwrap_or_else(|e| panic!("building the reporter: {e}"));
    let recorder =
        |metric, labels: &[(&str, &str)]| match r.recorder(MetricKind::Summary, metric, labels) {
            Ok(Some(rec)) => rec,
            other => panic!("recorder for {metric}: {:?}", other.map(|o| o.is_some())),
        };
    let ok = recorder(
        names::RESPONSE_TIME,
        &[("route", ROUTE), ("status", "ok"), ("type", "handler"), ("code", "")],
    );
    let delay = recorder(names::PROCESS_DELAY, &[("route", ROUTE), ("type", "local")]);
    let f = Fixture { r, ok, delay };
    // Create the series first: the cases measure the steady state.
    run(&f, "report/response+delay");
    f
}

fn run(f: &Fixture, case: &str) {
    let r = &f.r;
    let started = Instant::now();
    let result = match case {
        "recorder/response+delay" => {
            let waited = nanos(started.elapsed());
            let delay = black_box(&f.delay).record(waited);
            let took = nanos(started.elapsed());
            delay.and(black_box(&f.ok).record(took))
        }
        "report/map" => {
            let l = labels([("route", ROUTE), ("status", "ok"), ("type", "handler"), ("code", "")]);
            r.report_summary(names::RESPONSE_TIME, black_box(&l), 1500.0)
        }
        "report/pairs" => {
            let l = [("route", ROUTE), ("status", "ok"), ("type", "handler"), ("code", "")];
            r.report(MetricKind::Summary, names::RESPONSE_TIME, black_box(&l), 1500.0)
        }
        _ => {
            let waited = started.elapsed().as_nanos() as f64;
            let d = [("route", ROUTE), ("type", "local")];
            let delay = r.report(MetricKind::Summary, names::PROCESS_DELAY, black_box(&d), waited);
            let l = [("route", ROUTE), ("status", "ok"), ("type", "handler"), ("code", "")];
            let took = started.elapsed().as_nanos() as f64;
            delay.and(r.report(MetricKind::Summary, names::RESPONSE_TIME, black_box(&l), took))
        }
    };
    if let Err(e) = result {
        panic!("{case}: {e}");
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--list" => {
            let mut out = std::io::stdout().lock();
            for case in CASES {
                if writeln!(out, "{case}\t{ITERATIONS}\treport/map\t-").is_err() {
                    return ExitCode::FAILURE;
                }
            }
        }
        [name, n] if CASES.contains(&name.as_str()) => {
            let r = reporter();
            for _ in 0..n.parse::<u64>().unwrap_or(0) {
                run(black_box(&r), name);
            }
        }
        _ => {
            for case in CASES {
                let r = reporter();
                for _ in 0..3 {
                    run(&r, case);
                }
                let count =
                    r.r.render()
                        .lines()
                        .filter(|l| l.starts_with("pitaya_handler_response_time_ns_count{"))
                        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                        .sum::<u64>();
                if count != 4 {
                    eprintln!("instructions: case {case} counted {count} responses, not 4");
                    return ExitCode::FAILURE;
                }
            }
            eprintln!("instructions: {} metrics cases ran (smoke check only)", CASES.len());
        }
    }
    ExitCode::SUCCESS
}
