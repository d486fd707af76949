//! `examples/bot/cluster.yaml` run for real: the pitaya-bot library against the `testing`
//! example as a connector frontend and a game backend, processes over etcd and NATS.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use pitaya_bot::{Report, RouteReport, RunOptions, Spec};

use crate::support::{Launch, connect, eventually, launch, registered, sd_prefix, within};

/// Fewer bots and iterations than the example and a short ramp-up, so that the run takes
/// a fraction of a second and the bots overlap (each group broadcast reaches several).
const BOTS: usize = 3;
const ITERATIONS: u64 = 10;
const RAMP_UP: Duration = Duration::from_millis(30);

/// Bound on the bot run; each step is bounded by the spec's own timeouts (5 s requests,
/// 3 s pushes), so this only turns a stuck runner into a failure.
const RUN_LIMIT: Duration = Duration::from_secs(45);

/// Bound on the wait for both servers to be registered and routable.
const REGISTER_LIMIT: Duration = Duration::from_secs(15);

/// A route of the backend that the frontend forwards: it answers once the frontend's
/// etcd watch has seen the backend.
const PROBE_ROUTE: &str = "game.testsvc.testrequestonlysessionreturnsptr";

/// Waits until etcd holds one connector and one game under `prefix`, and the frontend
/// forwards to the backend.
async fn wait_until_routable(prefix: &str, front: &str) {
    let deadline = tokio::time::Instant::now() + REGISTER_LIMIT;
    let keys = || registered(&pitaya_test_services::shared_etcd_endpoint(), prefix);
    let both = || {
        let keys = keys();
        ["connector", "game"]
            .iter()
            .all(|t| keys.iter().filter(|k| k.contains(&format!("servers/{t}/"))).count() == 1)
    };
    assert!(eventually(REGISTER_LIMIT, both).await, "not both registered: {:?}", keys());
    let (c, _p) = connect(front).await;
    loop {
        match c.request(PROBE_ROUTE, "").await {
            Ok(body) if &body[..] == br#"{"code":200,"msg":"hello"}"# => break,
            res => assert!(
                tokio::time::Instant::now() < deadline,
                "the frontend never reached the backend: {res:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.close().await;
}

/// `(requests, ok, failed, errors)` of a route, for one comparison with a readable diff.
type Counts<'a> = (u64, u64, u64, &'a BTreeMap<String, u64>);

fn counts(route: &RouteReport) -> Counts<'_> {
    (route.requests, route.ok, route.failed, &route.errors)
}

fn check_report(report: &Report) {
    let bots = BOTS as u64;
    let n = bots * ITERATIONS;
    let table = report.table();
    assert_eq!(report.failures, [], "{table}");
    assert_eq!(report.assertion_failures, 0, "{table}");
    assert_eq!(report.name.as_deref(), Some("cluster"));
    assert_eq!((report.bots_connected, report.bots_stopped_early), (bots, 0), "{table}");
    assert_eq!((report.iterations, report.iterations_failed), (n, 0), "{table}");

    // Every route of the spec, and no other: setup once per bot, steps once an iteration.
    let none = BTreeMap::new();
    let pit555 = BTreeMap::from([("PIT-555".to_owned(), n)]);
    let want: [(&str, Counts<'_>); 5] = [
        ("connector.testsvc.testbind", (bots, bots, 0, &none)),
        ("connector.testsvc.testrequestreturnsptr", (n, n, 0, &none)),
        ("game.testsvc.testrequestonlysessionreturnsptr", (n, n, 0, &none)),
        ("connector.testsvc.testsendrpc", (n, n, 0, &none)),
        // The expected error is the outcome: neither a success nor a failure.
        ("connector.testsvc.testrequestreturnserror", (n, 0, 0, &pit555)),
    ];
    let routes: Vec<&str> = report.routes.keys().map(String::as_str).collect();
    let mut want_routes: Vec<&str> = want.iter().map(|(r, _)| *r).collect();
    want_routes.sort_unstable();
    assert_eq!(routes, want_routes, "{table}");
    for (route, want) in want {
        assert_eq!(counts(&report.routes[route]), want, "{route}\n{table}");
        assert!(report.routes[route].latency_ms.is_some(), "{route}");
    }
    assert_eq!(report.requests, bots + 4 * n);
    assert_eq!(report.errors, pit555, "{table}");
    assert_eq!((report.failed, report.error_rate), (0, 0.0), "{table}");

    // One group notify an iteration; each bot's `expect_push: route.test` passed every
    // iteration (no assertion failure), so at least n pushes arrived. g1 holds every bot
    // bound so far, so each broadcast reaches between 1 and BOTS bots, depending on how
    // the bots overlap in time.
    assert_eq!(report.notifies, n);
    assert_eq!(report.notify_routes.len(), 1, "{table}");
    let notify = &report.notify_routes["connector.testsvc.testsendgroupmsg"];
    assert_eq!((notify.sent, &notify.errors), (n, &none), "{table}");
    assert_eq!(report.push_routes.keys().collect::<Vec<_>>(), ["route.test"], "{table}");
    let pushes = report.push_routes["route.test"];
    assert!((n..=bots * n).contains(&pushes), "{pushes} route.test pushes for {n} notifies");
    assert_eq!(report.pushes_received, pushes);
    assert_eq!(report.pushes_dropped, 0);
    assert!(report.verdict(Some(0.0)).is_empty(), "{:?}", report.verdict(Some(0.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_spec_passes_against_connector_and_game() {
    within(async {
        let prefix = sd_prefix();
        let _back = launch(&Launch::new("game", false, &prefix));
        let front = launch(&Launch::new("connector", true, &prefix));
        wait_until_routable(&prefix, &front.addr).await;

        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bot/cluster.yaml");
        let mut spec = Spec::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        spec.bots = BOTS;
        spec.iterations = Some(ITERATIONS);
        spec.ramp_up = RAMP_UP;
        let opts =
            RunOptions { address: Some(format!("tcp://{}", front.addr)), ..RunOptions::default() };
        let started = std::time::Instant::now();
        let report = tokio::time::timeout(RUN_LIMIT, pitaya_bot::run(spec, opts))
            .await
            .expect("the bot run exceeded its time limit")
            .expect("the bot run starts");
        eprintln!("bot run: {:?}\n{}", started.elapsed(), report.table());
        check_report(&report);
    })
    .await;
}
