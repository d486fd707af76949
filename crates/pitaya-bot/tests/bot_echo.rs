//! The bot against the echo example started in-process: counts, PIT codes, stored
//! variables, pushes, percentiles, exit codes, the report file and the Pushgateway POST.

mod support;

use std::time::Duration;

use pitaya_bot::{OnFailure, Report, RunOptions, Spec, run};
use support::{Echo, run_bot};

const BOTS: u64 = 3;
const ITERATIONS: u64 = 4;

/// Everything that should pass: a stored value reused, a push, an expected PIT code,
/// a parallel block.
const GOOD: &str = r#"
name: echo-test
bots: 3
iterations: 4
ramp_up: 50ms
request_timeout: 3s
setup:
  - request: room.join
    assert: [{ path: code, equals: 200 }]
steps:
  - request: room.echojson
    data: { bot: "${bot_id}", n: "${iteration}", tag: "t${bot_id}-${iteration}" }
    store: { tag: tag, n: /n }
    assert:
      - { path: bot, equals: "${bot_id}" }
      - { path: n, equals: "${iteration}" }
  - request: "room.echo"
    data: "stored ${tag}"
    assert: [{ path: "", equals: "stored t${bot_id}-${n}" }]
  - notify: room.notify
    data: "push ${tag}"
  - expect_push: onNotify
    within: 3s
    assert: [{ path: "", equals: "push ${tag}" }]
  - request: room.fail
    expect_error: PIT-499
    assert: [{ path: msg, equals: fail }]
  - parallel:
      - request: room.echo
        data: a
      - request: room.echo
        data: b
"#;

/// A wrong assertion and an unexpected error reply.
const BAD: &str = r#"
bots: 2
iterations: 3
on_failure: continue
steps:
  - request: room.echojson
    data: { n: "${iteration}" }
    assert: [{ path: n, equals: -1 }]
  - request: room.fail
"#;

fn assert_percentiles_ordered(p: &pitaya_bot::Percentiles) {
    assert!(p.count > 0);
    assert!(p.p50 > 0.0, "{p:?}");
    assert!(p.p50 <= p.p90 && p.p90 <= p.p99 && p.p99 <= p.max, "{p:?}");
}

fn check_good_report(report: &Report) {
    let n = BOTS * ITERATIONS;
    assert_eq!(report.failures, [], "{}", report.table());
    assert_eq!(report.assertion_failures, 0);
    assert_eq!(report.bots_connected, BOTS);
    assert_eq!(report.iterations, n);
    assert_eq!(report.iterations_failed, 0);
    assert_eq!(report.routes["room.join"].requests, BOTS);
    assert_eq!(report.routes["room.echojson"].requests, n);
    assert_eq!(report.routes["room.echojson"].ok, n);
    // One `room.echo` per iteration plus two in the parallel block.
    assert_eq!(report.routes["room.echo"].requests, 3 * n);
    let fail = &report.routes["room.fail"];
    assert_eq!((fail.requests, fail.ok, fail.failed), (n, 0, 0));
    assert_eq!(fail.errors.get("PIT-499"), Some(&n));
    assert_eq!(report.errors.get("PIT-499"), Some(&n));
    assert_eq!(report.failed, 0);
    assert_eq!(report.error_rate, 0.0);
    assert_eq!(report.notify_routes["room.notify"].sent, n);
    assert_eq!(report.push_routes.get("onNotify"), Some(&n));
    assert_eq!(report.pushes_received, n);
    assert_eq!(report.requests, BOTS + 5 * n);
    assert_percentiles_ordered(report.latency_ms.as_ref().expect("latency"));
    for route in report.routes.values() {
        assert_percentiles_ordered(route.latency_ms.as_ref().expect("route latency"));
    }
    assert_percentiles_ordered(report.connect.latency_ms.as_ref().expect("connect latency"));
    assert!(report.verdict(Some(0.0)).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_run_counts_everything() {
    let echo = Echo::start().await;
    for websocket in [false, true] {
        let address = if websocket {
            format!("ws://{}/", echo.addr(true))
        } else {
            format!("tcp://{}", echo.addr(false))
        };
        let spec = Spec::from_yaml(GOOD).unwrap();
        let opts = RunOptions { address: Some(address), ..RunOptions::default() };
        let report = run(spec, opts).await.unwrap();
        check_good_report(&report);
    }
    echo.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_by_code_and_step() {
    let echo = Echo::start().await;
    let spec = Spec::from_yaml(BAD).unwrap();
    assert_eq!(spec.on_failure, OnFailure::Continue);
    let opts = RunOptions { address: Some(echo.addr(false).to_string()), ..RunOptions::default() };
    let report = run(spec, opts).await.unwrap();
    assert_eq!(report.assertion_failures, 6);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].kind, "steps[0] request room.echojson: assert n equals");
    assert!(report.failures[0].example.contains("expected -1"), "{:?}", report.failures);
    assert_eq!(report.routes["room.fail"].failed, 6);
    assert_eq!(report.errors.get("PIT-499"), Some(&6));
    assert_eq!(report.iterations_failed, 6);
    // 6 failed calls out of 2 connects + 12 requests.
    assert!((report.error_rate - 6.0 / 14.0).abs() < 1e-9, "{}", report.error_rate);
    assert_eq!(report.verdict(None).len(), 1);
    assert_eq!(report.verdict(Some(0.1)).len(), 2);

    // With the default policy, a failure skips the rest of the iteration.
    let spec = Spec::from_yaml(&BAD.replace("on_failure: continue\n", "")).unwrap();
    let opts = RunOptions { address: Some(echo.addr(false).to_string()), ..RunOptions::default() };
    let report = run(spec, opts).await.unwrap();
    assert_eq!(report.assertion_failures, 6);
    assert!(!report.routes.contains_key("room.fail"));
    echo.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_push_and_duration_mode() {
    let echo = Echo::start().await;
    let spec = Spec::from_yaml(
        "bots: 2\nduration: 300ms\nsteps:\n  - request: room.echo\n  - wait: 20ms\n  - expect_push: never\n    within: 50ms\n",
    )
    .unwrap();
    let opts = RunOptions { address: Some(echo.addr(false).to_string()), ..RunOptions::default() };
    let report = run(spec, opts).await.unwrap();
    assert!(report.iterations >= 2, "{}", report.table());
    assert_eq!(report.assertion_failures, report.iterations);
    assert!(report.failures[0].example.contains("no never push"), "{:?}", report.failures);
    echo.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_writes_the_report_and_sets_the_exit_code() {
    let echo = Echo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, GOOD).unwrap();
    let report_file = dir.path().join("report.json");
    let out = run_bot(vec![
        good.display().to_string(),
        "--addr".into(),
        format!("tcp://{}", echo.addr(false)),
        "--report".into(),
        report_file.display().to_string(),
        "--max-error-rate".into(),
        "0".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("room.echojson"), "{stdout}");
    assert!(!stdout.contains('\r'), "no progress line without a terminal: {stdout:?}");
    let report: Report = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    check_good_report(&report);

    // The same failures as JSON on stdout, with the JSON spec syntax and a --var.
    let bad = dir.path().join("bad.json");
    let value: serde_json::Value = serde_norway::from_str(BAD).unwrap();
    std::fs::write(&bad, value.to_string()).unwrap();
    let out = run_bot(vec![
        bad.display().to_string(),
        "--addr".into(),
        echo.addr(false).to_string(),
        "--report".into(),
        "-".into(),
        "--iterations".into(),
        "1".into(),
        "--var".into(),
        "unused=1".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.assertion_failures, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("assertion failure"));

    // A spec error is exit code 2.
    std::fs::write(&bad, r#"{"steps": [{"request": "a", "notify": "b"}]}"#).unwrap();
    let out = run_bot(vec![bad.display().to_string(), "--addr".into(), "127.0.0.1:1".into()]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    echo.running.shutdown().await;
}

#[cfg(feature = "pushgateway")]
/// A one-shot HTTP server on loopback: returns the request it got, answers 200.
fn one_http_request(listener: std::net::TcpListener) -> std::thread::JoinHandle<(String, String)> {
    use std::io::{BufRead, BufReader, Read, Write};

    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = reader.into_inner();
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
        (head, String::from_utf8(body).unwrap())
    })
}

#[cfg(feature = "pushgateway")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_are_pushed_to_a_pushgateway() {
    let echo = Echo::start().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gateway = format!("http://{}", listener.local_addr().unwrap());
    let server = one_http_request(listener);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, GOOD).unwrap();
    let out = run_bot(vec![
        spec.display().to_string(),
        "--addr".into(),
        echo.addr(false).to_string(),
        "--quiet".into(),
        "--pushgateway".into(),
        gateway,
        "--pushgateway-job".into(),
        "bot_test".into(),
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let (head, body) = server.join().unwrap();
    assert!(head.starts_with("POST /metrics/job/bot_test HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let n = BOTS * ITERATIONS;
    assert!(
        body.contains(&format!("pitaya_bot_requests_total{{route=\"room.echojson\"}} {n}\n")),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "pitaya_bot_request_errors_total{{route=\"room.fail\",code=\"PIT-499\"}} {n}\n"
        )),
        "{body}"
    );
    assert!(
        body.contains("pitaya_bot_request_latency_seconds{route=\"room.echo\",quantile=\"0.99\"}"),
        "{body}"
    );
    assert!(
        body.contains(&format!("pitaya_bot_pushes_received_total{{route=\"onNotify\"}} {n}\n")),
        "{body}"
    );
    assert!(body.contains("pitaya_bot_assertion_failures_total 0\n"), "{body}");
    echo.running.shutdown().await;
}

#[test]
fn example_specs_parse() {
    for name in ["echo.yaml", "echo_load.yaml", "chat.yaml", "cluster.yaml"] {
        let spec =
            Spec::load(&support::example_spec(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(spec.address.is_some(), "{name}");
        assert!(spec.all_steps().count() > 0, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_example_spec_passes() {
    let echo = Echo::start().await;
    let mut spec = Spec::load(&support::example_spec("echo.yaml")).unwrap();
    spec.bots = 4;
    spec.iterations = Some(5);
    spec.ramp_up = Duration::from_millis(40);
    let opts = RunOptions { address: Some(echo.addr(false).to_string()), ..RunOptions::default() };
    let report = run(spec, opts).await.unwrap();
    assert_eq!(report.assertion_failures, 0, "{}", report.table());
    assert_eq!(report.routes["room.echojson"].requests, 20);
    assert_eq!(report.errors.get("PIT-499"), Some(&20));
    assert_eq!(report.push_routes.get("onNotify"), Some(&20));
    echo.running.shutdown().await;
}

#[tokio::test]
async fn a_run_where_no_bot_connects_fails() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spec =
        Spec::from_yaml("bots: 2\nconnect_timeout: 2s\nsteps: [{request: room.echo}]").unwrap();
    let opts = RunOptions { address: Some(format!("127.0.0.1:{port}")), ..RunOptions::default() };
    let report = run(spec, opts).await.unwrap();
    assert_eq!(report.bots_connected, 0);
    assert_eq!(report.bots_stopped_early, 2);
    assert_eq!(report.errors.get("connect"), Some(&2));
    assert_eq!(report.assertion_failures, 0);
    assert_eq!(report.error_rate, 1.0);
    assert!(report.connect_error.as_deref().unwrap_or("").contains("connect failed"), "{report:?}");
    assert_eq!(report.verdict(None).len(), 1, "{:?}", report.verdict(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_wss_with_a_trusted_certificate_or_insecure_mode() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let args = pitaya_examples::echo::EchoArgs {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..Echo::args()
    };
    let echo = Echo::start_with(args).await;
    let spec_file = dir.path().join("spec.yaml");
    std::fs::write(&spec_file, "bots: 2\niterations: 3\nsteps: [{request: room.echo, data: x}]\n")
        .unwrap();
    let out = run_bot(vec![
        spec_file.display().to_string(),
        "--addr".into(),
        format!("tls://{}", echo.addr(false)),
        "--ca".into(),
        cert.display().to_string(),
        "--server-name".into(),
        "localhost".into(),
        "--report".into(),
        "-".into(),
    ])
    .await;
    assert!(out.status.success(), "{out:?}");
    let report: Report = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report.routes["room.echo"].ok, 6);

    // Without TLS settings a tls:// address is refused before any bot starts.
    let out = run_bot(vec![
        spec_file.display().to_string(),
        "--addr".into(),
        format!("wss://{}/", echo.addr(true)),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let spec = Spec::from_yaml("bots: 2\niterations: 3\nsteps: [{request: room.echo}]").unwrap();
    let opts = RunOptions {
        address: Some(format!("wss://{}/", echo.addr(true))),
        tls: Some(pitaya_client::TlsOptions::insecure()),
        ..RunOptions::default()
    };
    let report = run(spec, opts).await.unwrap();
    assert_eq!(report.routes["room.echo"].ok, 6, "{}", report.table());
    echo.running.shutdown().await;
}
