//! Prometheus reporter against a real `/metrics` listener on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use pitaya_config::model::{HistogramSpec, MetricSpec, MetricsConfig, Objective, SummarySpec};
use pitaya_metrics::{MetricsError, PrometheusReporter, Reporter, labels, names};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config() -> MetricsConfig {
    let mut c = MetricsConfig::default();
    c.game = "g".to_owned();
    c.const_labels = BTreeMap::from([("region".to_owned(), "us".to_owned())]);
    c.additional_labels = BTreeMap::from([("tenant".to_owned(), "none".to_owned())]);
    let mut summary = SummarySpec::default();
    summary.subsystem = "room".to_owned();
    summary.name = "wait_ns".to_owned();
    summary.help = "time waited".to_owned();
    summary.labels = vec!["kind".to_owned()];
    summary.objectives = vec![Objective::new(0.5, 0.05)];
    let mut histogram = HistogramSpec::default();
    histogram.subsystem = "room".to_owned();
    histogram.name = "latency".to_owned();
    histogram.help = "room latency".to_owned();
    histogram.buckets = vec![1.0, 5.0, 10.0];
    let mut gauge = MetricSpec::default();
    gauge.subsystem = "room".to_owned();
    gauge.name = "players".to_owned();
    gauge.help = "players in rooms".to_owned();
    gauge.labels = vec!["kind".to_owned()];
    let mut counter = MetricSpec::default();
    counter.name = "joins".to_owned();
    counter.help = "joins \\ \"all\"\nrooms".to_owned();
    c.custom.summaries = vec![summary];
    c.custom.histograms = vec![histogram];
    c.custom.gauges = vec![gauge];
    c.custom.counters = vec![counter];
    c
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn scrape_shows_go_names_labels_and_types() {
    let p = PrometheusReporter::new("connector", &config()).unwrap();
    let server = p.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let rt = labels([("route", "r"), ("status", "ok"), ("type", "handler"), ("code", "")]);
    p.report_summary(names::RESPONSE_TIME, &rt, 1500.0).unwrap();
    p.report_summary(names::RESPONSE_TIME, &rt, 2_500_000.0).unwrap();
    p.report_gauge(names::CONNECTED_CLIENTS, &labels([("tenant", "t1")]), 3.0).unwrap();
    p.report_count(names::EXCEEDED_RATE_LIMITING, &labels([]), 1.0).unwrap();
    p.report_count(names::EXCEEDED_RATE_LIMITING, &labels([]), 1.0).unwrap();
    p.report_gauge(
        names::CHANNEL_CAPACITY,
        &labels([("channel", names::channel::AGENT_CHSEND)]),
        99.0,
    )
    .unwrap();
    p.report_summary("wait_ns", &labels([("kind", "a")]), 4.0).unwrap();
    for v in [0.5, 3.0, 7.0, 20.0] {
        p.report_histogram("latency", &labels([]), v).unwrap();
    }
    p.report_gauge("players", &labels([("kind", "pvp")]), 12.0).unwrap();
    p.report_count("joins", &labels([]), 5.0).unwrap();

    let reply = get(server.local_addr(), "/metrics").await;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"), "{head}");
    let c = r#"game="g",region="us",serverType="connector""#;
    let rt = r#"code="",game="g",region="us",route="r",serverType="connector",status="ok",tenant="none",type="handler""#;
    let k = r#"game="g",kind="a",region="us",serverType="connector",tenant="none""#;
    let expected = format!(
        r#"# HELP pitaya_acceptor_connected_clients the number of clients connected right now
# TYPE pitaya_acceptor_connected_clients gauge
pitaya_acceptor_connected_clients{{{c},tenant="t1"}} 3
# HELP pitaya_acceptor_exceeded_rate_limiting the number of blocked requests by exceeded rate limiting
# TYPE pitaya_acceptor_exceeded_rate_limiting counter
pitaya_acceptor_exceeded_rate_limiting{{{c},tenant="none"}} 2
# HELP pitaya_channel_channel_capacity the available capacity of the channel
# TYPE pitaya_channel_channel_capacity gauge
pitaya_channel_channel_capacity{{channel="agent_chsend",{c},tenant="none"}} 99
# HELP pitaya_handler_response_time_ns the time to process a msg in nanoseconds
# TYPE pitaya_handler_response_time_ns summary
pitaya_handler_response_time_ns{{{rt},quantile="0.7"}} 2.5e+06
pitaya_handler_response_time_ns{{{rt},quantile="0.95"}} 2.5e+06
pitaya_handler_response_time_ns{{{rt},quantile="0.99"}} 2.5e+06
pitaya_handler_response_time_ns_sum{{{rt}}} 2.5015e+06
pitaya_handler_response_time_ns_count{{{rt}}} 2
# HELP pitaya_joins joins \\ "all"\nrooms
# TYPE pitaya_joins counter
pitaya_joins{{{c},tenant="none"}} 5
# HELP pitaya_room_latency room latency
# TYPE pitaya_room_latency histogram
pitaya_room_latency_bucket{{{c},tenant="none",le="1"}} 1
pitaya_room_latency_bucket{{{c},tenant="none",le="5"}} 2
pitaya_room_latency_bucket{{{c},tenant="none",le="10"}} 3
pitaya_room_latency_bucket{{{c},tenant="none",le="+Inf"}} 4
pitaya_room_latency_sum{{{c},tenant="none"}} 30.5
pitaya_room_latency_count{{{c},tenant="none"}} 4
# HELP pitaya_room_players players in rooms
# TYPE pitaya_room_players gauge
pitaya_room_players{{game="g",kind="pvp",region="us",serverType="connector",tenant="none"}} 12
# HELP pitaya_room_wait_ns time waited
# TYPE pitaya_room_wait_ns summary
pitaya_room_wait_ns{{{k},quantile="0.5"}} 4
pitaya_room_wait_ns_sum{{{k}}} 4
pitaya_room_wait_ns_count{{{k}}} 1
"#
    );
    assert_eq!(body, expected);

    let not_found = get(server.local_addr(), "/other").await;
    assert!(not_found.starts_with("HTTP/1.1 404 Not Found\r\n"), "{not_found}");
}

#[tokio::test]
async fn quantiles_follow_go_objectives() {
    let p = PrometheusReporter::new("backend", &MetricsConfig::default()).unwrap();
    let l = labels([("route", "a.b.c"), ("type", names::delay_type::LOCAL)]);
    for v in 1..=100 {
        p.report_summary(names::PROCESS_DELAY, &l, f64::from(v)).unwrap();
    }
    let body = p.render();
    let s = r#"game="",route="a.b.c",serverType="backend",type="local""#;
    for line in [
        format!("pitaya_handler_handler_delay_ns{{{s},quantile=\"0.7\"}} 70"),
        format!("pitaya_handler_handler_delay_ns{{{s},quantile=\"0.95\"}} 95"),
        format!("pitaya_handler_handler_delay_ns{{{s},quantile=\"0.99\"}} 99"),
        format!("pitaya_handler_handler_delay_ns_sum{{{s}}} 5050"),
        format!("pitaya_handler_handler_delay_ns_count{{{s}}} 100"),
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line} in\n{body}");
    }
    assert!(body.contains("# TYPE pitaya_handler_handler_delay_ns summary\n"));
}

#[test]
fn every_builtin_metric_is_registered_with_go_name() {
    let p = PrometheusReporter::new("connector", &MetricsConfig::default()).unwrap();
    let pool = labels([("pool", names::pool::HANDLER_DISPATCH)]);
    let cases: [(&str, pitaya_metrics::Labels, &str); 12] = [
        (names::CONNECTED_CLIENTS, labels([]), "pitaya_acceptor_connected_clients"),
        (
            names::COUNT_SERVERS,
            labels([("type", "room")]),
            "pitaya_service_discovery_count_servers",
        ),
        (names::CHANNEL_CAPACITY, labels([("channel", "x")]), "pitaya_channel_channel_capacity"),
        (names::DROPPED_MESSAGES, labels([]), "pitaya_rpc_server_dropped_messages"),
        (names::WORKER_POOL_BUSY_WORKERS, pool.clone(), "pitaya_worker_pool_busy_workers"),
        (names::WORKER_POOL_TOTAL_WORKERS, pool, "pitaya_worker_pool_total_workers"),
        (names::GOROUTINES, labels([]), "pitaya_sys_goroutines"),
        (names::HEAP_SIZE, labels([]), "pitaya_sys_heapsize"),
        (names::HEAP_OBJECTS, labels([]), "pitaya_sys_heapobjects"),
        (names::WORKER_JOBS_RETRY, labels([]), "pitaya_worker_worker_jobs_retry_total"),
        (names::WORKER_QUEUE_SIZE, labels([("queue", "q")]), "pitaya_worker_worker_queue_size"),
        (
            names::WORKER_JOBS_TOTAL,
            labels([("status", names::status::FAILED)]),
            "pitaya_worker_worker_jobs_total",
        ),
    ];
    for (name, l, full) in cases {
        p.report_gauge(name, &l, 1.0).unwrap();
        assert!(p.render().contains(&format!("# TYPE {full} gauge\n")), "{full}");
    }
}

#[test]
fn unknown_metrics_and_wrong_labels_are_errors() {
    let p = PrometheusReporter::new("connector", &config()).unwrap();
    let err = p.report_gauge("nope", &labels([]), 1.0).unwrap_err();
    assert!(matches!(err, MetricsError::UnknownMetric { .. }), "{err}");
    // A summary name used as a gauge is unknown as a gauge, as in Go's per-kind maps.
    let err = p.report_gauge(names::RESPONSE_TIME, &labels([]), 1.0).unwrap_err();
    assert!(matches!(err, MetricsError::UnknownMetric { .. }), "{err}");
    // Missing `code`.
    let err = p
        .report_summary(
            names::RESPONSE_TIME,
            &labels([("route", "r"), ("status", "ok"), ("type", "rpc")]),
            1.0,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "wrong labels for metric \"response_time_ns\": expected [\"code\", \"route\", \"status\", \"tenant\", \"type\"], got [\"route\", \"status\", \"tenant\", \"type\"]"
    );
    // An extra label.
    let err = p.report_gauge(names::CONNECTED_CLIENTS, &labels([("extra", "x")]), 1.0).unwrap_err();
    assert!(matches!(err, MetricsError::WrongLabels { .. }), "{err}");
    let err = p.report_count(names::EXCEEDED_RATE_LIMITING, &labels([]), -1.0).unwrap_err();
    assert!(matches!(err, MetricsError::InvalidCount { .. }), "{err}");
    assert!(!p.render().contains("pitaya_acceptor_connected_clients{"), "nothing recorded");
}

/// The borrowed-pairs entry the server uses on every response: same series as the map
/// form, label order irrelevant, a repeated label refused, and values that would collide
/// if they were simply concatenated stay apart.
#[test]
fn pairs_reports_match_map_reports() {
    use pitaya_metrics::MetricKind;
    let p = PrometheusReporter::new("connector", &config()).unwrap();
    let map = labels([("kind", "pvp")]);
    p.report_gauge("players", &map, 1.0).unwrap();
    p.report(MetricKind::Gauge, "players", &[("kind", "pvp"), ("tenant", "t")], 2.0).unwrap();
    p.report(MetricKind::Gauge, "players", &[("tenant", "none"), ("kind", "pvp")], 3.0).unwrap();
    let text = p.render();
    assert!(text.contains("pitaya_room_players{game=\"g\",kind=\"pvp\",region=\"us\",serverType=\"connector\",tenant=\"none\"} 3\n"), "{text}");
    assert!(text.contains("pitaya_room_players{game=\"g\",kind=\"pvp\",region=\"us\",serverType=\"connector\",tenant=\"t\"} 2\n"), "{text}");
    let twice = p.report(MetricKind::Gauge, "players", &[("kind", "a"), ("kind", "b")], 1.0);
    assert!(matches!(twice, Err(MetricsError::WrongLabels { .. })), "{twice:?}");
    // "1:a" + "b" and "1" + ":ab" must not share a series.
    p.report(MetricKind::Gauge, "players", &[("kind", "1:a"), ("tenant", "b")], 4.0).unwrap();
    p.report(MetricKind::Gauge, "players", &[("kind", "1"), ("tenant", ":ab")], 5.0).unwrap();
    let text = p.render();
    assert!(
        text.contains("kind=\"1:a\",region=\"us\",serverType=\"connector\",tenant=\"b\"} 4\n"),
        "{text}"
    );
    assert!(
        text.contains("kind=\"1\",region=\"us\",serverType=\"connector\",tenant=\":ab\"} 5\n"),
        "{text}"
    );
    let unknown = p.report(MetricKind::Counter, "players", &[("kind", "x")], 1.0);
    assert!(matches!(unknown, Err(MetricsError::UnknownMetric { .. })), "{unknown:?}");
}

#[test]
fn bad_custom_definitions_are_clear_errors() {
    let check = |edit: &dyn Fn(&mut MetricsConfig), want: &str| {
        let mut c = MetricsConfig::default();
        edit(&mut c);
        let err = PrometheusReporter::new("connector", &c).unwrap_err();
        assert_eq!(err.to_string(), want);
    };
    let gauge = |sub: &str, name: &str, labels: &[&str]| {
        let mut g = MetricSpec::default();
        g.subsystem = sub.to_owned();
        g.name = name.to_owned();
        g.labels = labels.iter().map(|l| (*l).to_owned()).collect();
        g
    };
    check(
        &|c| c.custom.gauges = vec![gauge("room", "", &[])],
        "invalid metric definition \"pitaya_room_\": gauge has an empty name",
    );
    check(
        &|c| c.custom.gauges = vec![gauge("room", "a", &[]), gauge("room", "a", &[])],
        "invalid metric definition \"pitaya_room_a\": duplicate metric",
    );
    check(
        &|c| c.custom.gauges = vec![gauge("acceptor", "connected_clients", &[])],
        "invalid metric definition \"pitaya_acceptor_connected_clients\": duplicate metric",
    );
    check(
        &|c| c.custom.counters = vec![gauge("", "bad-name", &[])],
        "invalid metric definition \"pitaya_bad-name\": name \"bad-name\" is not [a-zA-Z_][a-zA-Z0-9_]*",
    );
    check(
        &|c| c.custom.gauges = vec![gauge("room", "a", &["x", "x"])],
        "invalid metric definition \"pitaya_room_a\": a label is declared twice (own labels and additional labels)",
    );
    check(
        &|c| c.custom.gauges = vec![gauge("room", "a", &["game"])],
        "invalid metric definition \"pitaya_room_a\": label \"game\" is also a const label",
    );
    let summary = |q: f64, e: f64| {
        let mut s = SummarySpec::default();
        s.name = "s".to_owned();
        s.objectives = vec![Objective::new(q, e)];
        s
    };
    check(
        &|c| c.custom.summaries = vec![summary(1.5, 0.01)],
        "invalid metric definition \"pitaya_s\": objective quantile 1.5 is outside [0, 1]",
    );
    check(
        &|c| c.custom.summaries = vec![summary(0.5, -0.1)],
        "invalid metric definition \"pitaya_s\": objective error -0.1 for quantile 0.5 is outside [0, 1]",
    );
    let histogram = |buckets: Vec<f64>| {
        let mut h = HistogramSpec::default();
        h.name = "h".to_owned();
        h.buckets = buckets;
        h
    };
    check(
        &|c| c.custom.histograms = vec![histogram(vec![])],
        "invalid metric definition \"pitaya_h\": histogram has no buckets",
    );
    check(
        &|c| c.custom.histograms = vec![histogram(vec![5.0, 1.0])],
        "invalid metric definition \"pitaya_h\": histogram buckets [5.0, 1.0] are not strictly increasing",
    );
    check(
        &|c| c.additional_labels = BTreeMap::from([("game".to_owned(), String::new())]),
        "invalid metric definition \"game\": label is both a const label and an additional label",
    );
}

/// Recorders (the server's per-route handles) land in the same series as reports, check
/// names and labels when resolved, and keep the counter rule.
#[test]
fn recorders_share_series_with_reports() {
    use pitaya_metrics::{MetricKind, Reporter};
    let p = PrometheusReporter::new("connector", &config()).unwrap();
    let labels = [("route", "connector.room.join"), ("status", "ok"), ("type", "handler")];
    let rec = |l: &[(&str, &str)]| p.recorder(MetricKind::Summary, names::RESPONSE_TIME, l);
    let rec = rec(&[labels[0], labels[1], labels[2], ("code", "")]).unwrap().unwrap();
    for v in [10.0, 20.0, 30.0] {
        rec.record(v).unwrap();
    }
    let pairs = [("code", ""), labels[2], labels[1], labels[0]];
    p.report(MetricKind::Summary, names::RESPONSE_TIME, &pairs, 40.0).unwrap();
    let text = p.render();
    let series = "code=\"\",game=\"g\",region=\"us\",route=\"connector.room.join\",serverType=\"connector\",status=\"ok\",tenant=\"none\",type=\"handler\"";
    assert!(
        text.contains(&format!("pitaya_handler_response_time_ns_count{{{series}}} 4\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("pitaya_handler_response_time_ns_sum{{{series}}} 100\n")),
        "{text}"
    );

    let missing = p.recorder(MetricKind::Summary, names::RESPONSE_TIME, &labels);
    assert!(matches!(missing, Err(MetricsError::WrongLabels { .. })), "{:?}", missing.err());
    let unknown = p.recorder(MetricKind::Counter, names::RESPONSE_TIME, &[]);
    assert!(matches!(unknown, Err(MetricsError::UnknownMetric { .. })), "{:?}", unknown.err());

    let joins = p.recorder(MetricKind::Counter, "joins", &[]).unwrap().unwrap();
    joins.record(2.0).unwrap();
    let negative = joins.record(-1.0);
    assert!(matches!(negative, Err(MetricsError::InvalidCount { .. })), "{negative:?}");
    assert!(p.render().contains(
        "pitaya_joins{game=\"g\",region=\"us\",serverType=\"connector\",tenant=\"none\"} 2\n"
    ));
}

/// A reporter without its own recorders gets reports through the fallback, and a fan-out
/// records to each of its reporters.
#[test]
fn fallback_and_fan_out_recorders() {
    use std::sync::{Arc, Mutex};

    use pitaya_metrics::{Labels, MetricKind, Reporter, Reporters, recorder};

    #[derive(Default)]
    struct Log(Mutex<Vec<(String, Labels, f64)>>);
    impl Reporter for Log {
        fn report_summary(&self, m: &str, l: &Labels, v: f64) -> Result<(), MetricsError> {
            self.0.lock().unwrap().push((m.to_owned(), l.clone(), v));
            Ok(())
        }
        fn report_histogram(&self, m: &str, l: &Labels, v: f64) -> Result<(), MetricsError> {
            self.report_summary(m, l, v)
        }
        fn report_count(&self, m: &str, l: &Labels, v: f64) -> Result<(), MetricsError> {
            self.report_summary(m, l, v)
        }
        fn report_gauge(&self, m: &str, l: &Labels, v: f64) -> Result<(), MetricsError> {
            self.report_summary(m, l, v)
        }
    }
    let log = Arc::new(Log::default());
    let prom = PrometheusReporter::new("connector", &MetricsConfig::default()).unwrap();
    let both: Arc<dyn Reporter> =
        Arc::new(Reporters::new().with(log.clone()).with(Arc::new(prom.clone())));
    let l = [("route", "connector.a.b"), ("type", "local")];
    let rec = recorder(&both, MetricKind::Summary, names::PROCESS_DELAY, &l).unwrap();
    rec.record(5.0).unwrap();
    rec.record(7.0).unwrap();
    let seen = log.0.lock().unwrap().clone();
    let want = labels([("route", "connector.a.b"), ("type", "local")]);
    assert_eq!(
        seen,
        vec![
            (names::PROCESS_DELAY.to_owned(), want.clone(), 5.0),
            (names::PROCESS_DELAY.to_owned(), want, 7.0)
        ]
    );
    let text = prom.render();
    assert!(text.contains("pitaya_handler_handler_delay_ns_count{game=\"\",route=\"connector.a.b\",serverType=\"connector\",type=\"local\"} 2\n"), "{text}");
    // The Prometheus side refuses a wrong label set when resolved, so the fan-out does.
    assert!(recorder(&both, MetricKind::Summary, names::PROCESS_DELAY, &l[..1]).is_err());
}

#[test]
fn push_no_binding_is_a_counter_per_route() {
    let p = PrometheusReporter::new("game", &MetricsConfig::default()).unwrap();
    let route = labels([("route", "room.onmessage")]);
    p.report_count(names::PUSH_NO_BINDING, &route, 2.0).unwrap();
    p.report_count(names::PUSH_NO_BINDING, &route, 1.0).unwrap();
    let body = p.render();
    assert!(body.contains("# TYPE pitaya_rpc_client_push_no_binding counter\n"), "{body}");
    let series =
        r#"pitaya_rpc_client_push_no_binding{game="",route="room.onmessage",serverType="game"} 3"#;
    assert!(body.lines().any(|l| l == series), "{body}");
    // The route label is required.
    assert!(p.report_count(names::PUSH_NO_BINDING, &labels([]), 1.0).is_err());
}
