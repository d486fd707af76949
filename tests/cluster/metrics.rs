//! Metrics of a running server, as a Prometheus server and a statsd agent see them
//! (spec §11): real traffic, a real scrape over HTTP, real UDP datagrams.

use std::time::Duration;

use bytes::Bytes;
use pitaya::config::ConfigLoader;
use pitaya::{AppHandle, Component, Error, Pitaya, RunningApp, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{connect, within};

fn component() -> Component {
    async fn ok(_s: Session) -> Result<Bytes, Error> {
        Ok(Bytes::from_static(b"ok"))
    }
    async fn fail(_s: Session) -> Result<Bytes, Error> {
        Err(Error::new("PIT-555", "nope"))
    }
    async fn custom(app: AppHandle) -> Result<Bytes, Error> {
        let m = app.metrics().ok_or_else(|| Error::unknown("metrics are off"))?;
        let labels = pitaya::metrics::labels([("kind", "sword")]);
        m.report_count("items_total", &labels, 2.0).map_err(|e| Error::unknown(e.to_string()))?;
        // A wrong label set is an error for the caller, not a panic.
        let wrong = m.report_count("items_total", &pitaya::metrics::Labels::new(), 1.0);
        Ok(Bytes::from(if wrong.is_err() { "refused" } else { "accepted" }))
    }
    Component::new("m").handler("ok", ok).handler("fail", fail).handler("custom", custom)
}

async fn start(overrides: &[(&str, &str)]) -> RunningApp {
    start_with(overrides, ConfigLoader::new()).await
}

async fn start_with(overrides: &[(&str, &str)], base: ConfigLoader) -> RunningApp {
    let config = overrides.iter().fold(base, |l, (k, v)| l.set(k, *v)).load().expect("config");
    Pitaya::builder()
        .server_type("lobby")
        .tcp("127.0.0.1:0")
        .config(config)
        .component(component())
        .build()
        .expect("build")
        .start()
        .await
        .expect("start")
}

async fn scrape(port: u16) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .expect("answer")
        .unwrap();
    out
}

fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix} in:\n{text}"))
}

#[tokio::test]
async fn prometheus_sees_gos_series_after_real_traffic() {
    within(async {
        let custom = serde_json::json!([
            {"subsystem": "shop", "name": "items_total", "help": "items sold", "labels": ["kind"]}
        ]);
        let app = start_with(
            &[
                ("pitaya.metrics.prometheus.enabled", "true"),
                ("pitaya.metrics.prometheus.port", "0"),
                ("pitaya.metrics.period", "50ms"),
                ("pitaya.metrics.game", "g"),
            ],
            ConfigLoader::new().set("pitaya.metrics.custom.counters", custom),
        )
        .await;
        let port = app.metrics_addr().expect("prometheus on").port();
        let addr = app.local_addrs()[0].1.to_string();
        let (c, _p) = connect(&addr).await;
        for _ in 0..3 {
            c.request("lobby.m.ok", "").await.unwrap();
        }
        for _ in 0..2 {
            c.request("m.fail", "").await.unwrap_err();
        }
        // Not a handler of this server: reported by name, not through a cached series.
        c.request("m.nope", "").await.unwrap_err();
        assert_eq!(&c.request("lobby.m.custom", "").await.unwrap()[..], b"refused");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let text = scrape(port).await;
        assert!(text.contains("# TYPE pitaya_handler_response_time_ns summary"), "{text}");
        let ok = line(&text, r#"pitaya_handler_response_time_ns_count{code="",game="g",route="lobby.m.ok",serverType="lobby",status="ok",type="handler"}"#);
        assert!(ok.ends_with(" 3"), "{ok}");
        let failed = line(&text, r#"pitaya_handler_response_time_ns_count{code="PIT-555",game="g",route="lobby.m.fail",serverType="lobby",status="failed",type="handler"}"#);
        assert!(failed.ends_with(" 2"), "{failed}");
        // A route that never succeeded has no `ok` series (series appear on first report).
        assert!(!text.contains(r#"route="lobby.m.fail",serverType="lobby",status="ok""#), "{text}");
        let unknown = line(&text, r#"pitaya_handler_response_time_ns_count{code="PIT-404",game="g",route="lobby.m.nope",serverType="lobby",status="failed",type="handler"}"#);
        assert!(unknown.ends_with(" 1"), "{unknown}");
        line(&text, r#"pitaya_handler_response_time_ns{code="",game="g",route="lobby.m.ok",serverType="lobby",status="ok",type="handler",quantile="0.99"}"#);
        let clients = line(&text, r#"pitaya_acceptor_connected_clients{game="g",serverType="lobby"}"#);
        assert!(clients.ends_with(" 1"), "{clients}");
        let tasks = line(&text, r#"pitaya_sys_goroutines{game="g",serverType="lobby"}"#);
        assert!(!tasks.ends_with(" 0"), "{tasks}");
        let custom = line(&text, r#"pitaya_shop_items_total{game="g",kind="sword",serverType="lobby"}"#);
        assert!(custom.ends_with(" 2"), "{custom}");
        // Every message's wait before its handler ran, by route and `local`.
        let delay = line(&text, r#"pitaya_handler_handler_delay_ns_count{game="g",route="lobby.m.ok",serverType="lobby",type="local"}"#);
        assert!(delay.ends_with(" 3"), "{delay}");
        let delay = line(&text, r#"pitaya_handler_handler_delay_ns_count{game="g",route="lobby.m.fail",serverType="lobby",type="local"}"#);
        assert!(delay.ends_with(" 2"), "{delay}");
        // The handler pool (`pitaya.concurrency.handler.dispatch`, 25 by default), idle.
        let total = line(&text, r#"pitaya_worker_pool_total_workers{game="g",pool="handler_dispatch",serverType="lobby"}"#);
        assert!(total.ends_with(" 25"), "{total}");
        let busy = line(&text, r#"pitaya_worker_pool_busy_workers{game="g",pool="handler_dispatch",serverType="lobby"}"#);
        assert!(busy.ends_with(" 0"), "{busy}");
        // The idle connection's queues are empty: all their room is free.
        let send = line(&text, r#"pitaya_channel_channel_capacity{channel="agent_chsend",game="g",serverType="lobby"}"#);
        assert!(send.ends_with(" 100"), "{send}");
        let local = line(&text, r#"pitaya_channel_channel_capacity{channel="handler_chlocalprocess",game="g",serverType="lobby"}"#);
        assert!(local.ends_with(" 20"), "{local}");
        app.shutdown().await;
    })
    .await;
}

/// Packets refused by the acceptor's rate limiter are counted.
#[tokio::test]
async fn refused_packets_are_counted() {
    within(async {
        let config = ConfigLoader::new()
            .set("pitaya.metrics.prometheus.enabled", true)
            .set("pitaya.metrics.prometheus.port", 0)
            .set("pitaya.metrics.period", "50ms")
            .set("pitaya.conn.ratelimiting.limit", 2)
            .set("pitaya.conn.ratelimiting.interval", "1m")
            .load()
            .expect("config");
        let app = Pitaya::builder()
            .server_type("lobby")
            .tcp("127.0.0.1:0")
            .config(config)
            .component(component())
            .rate_limiting(true)
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        let addr = app.local_addrs()[0].1.to_string();
        let (c, _p) = connect(&addr).await;
        for _ in 0..10 {
            c.notify("lobby.m.ok", "").await.unwrap();
        }
        let port = app.metrics_addr().unwrap().port();
        let prefix = r#"pitaya_acceptor_exceeded_rate_limiting{game="",serverType="lobby"}"#;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let text = scrape(port).await;
            let count: f64 = line(&text, prefix).rsplit(' ').next().unwrap().parse().unwrap();
            // The handshake packets count too; at least the 8 notifies beyond the 2
            // allowed are refused (other tests of this process may add their own).
            if count >= 8.0 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "only {count} refused:\n{text}");
        }
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn statsd_receives_gos_lines() {
    within(async {
        let agent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let host = agent.local_addr().unwrap().to_string();
        let app = start(&[
            ("pitaya.metrics.statsd.enabled", "true"),
            ("pitaya.metrics.statsd.host", host.as_str()),
            ("pitaya.metrics.period", "1h"),
        ])
        .await;
        let addr = app.local_addrs()[0].1.to_string();
        let (c, _p) = connect(&addr).await;
        c.request("lobby.m.ok", "").await.unwrap();
        let mut buf = vec![0u8; 65536];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut seen = Vec::new();
        while tokio::time::Instant::now() < deadline {
            let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(500), agent.recv(&mut buf)).await
            else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            seen.extend(text.lines().map(str::to_owned));
            if seen.iter().any(|l| l.starts_with("pitaya.response_time_ns:")) {
                break;
            }
        }
        let rt = seen
            .iter()
            .find(|l| l.starts_with("pitaya.response_time_ns:"))
            .unwrap_or_else(|| panic!("{seen:?}"));
        assert!(rt.contains("|ms|#serverType:lobby,"), "{rt}");
        for tag in ["code:", "route:lobby.m.ok", "status:ok", "type:handler"] {
            assert!(rt.contains(tag), "{rt} lacks {tag}");
        }
        app.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_bad_custom_metric_fails_the_start_clearly() {
    within(async {
        let config = ConfigLoader::new()
            .set("pitaya.metrics.prometheus.enabled", true)
            .set("pitaya.metrics.prometheus.port", 0)
            .set(
                "pitaya.metrics.custom.counters",
                serde_json::json!([{"subsystem": "x", "name": "", "help": "h", "labels": []}]),
            )
            .load()
            .expect("config");
        let e = Pitaya::builder()
            .tcp("127.0.0.1:0")
            .config(config)
            .component(component())
            .build()
            .unwrap()
            .start()
            .await
            .unwrap_err();
        assert!(e.message().starts_with("metrics:"), "{}", e.message());
    })
    .await;
}

/// In cluster mode the servers per type (which Go registers but never reports) and the
/// RPC server's dropped messages are reported every period.
#[tokio::test]
async fn cluster_gauges_are_reported() {
    within(async {
        let cluster = pitaya::cluster::memory::MemoryCluster::new();
        let config = || {
            ConfigLoader::new()
                .set("pitaya.metrics.prometheus.enabled", true)
                .set("pitaya.metrics.prometheus.port", 0)
                .set("pitaya.metrics.period", "50ms")
                .load()
                .expect("config")
        };
        let _game = Pitaya::builder()
            .server_type("game")
            .frontend(false)
            .config(config())
            .component(component())
            .memory_cluster(&cluster)
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        let front = Pitaya::builder()
            .server_type("lobby")
            .tcp("127.0.0.1:0")
            .config(config())
            .component(component())
            .memory_cluster(&cluster)
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let text = scrape(front.metrics_addr().unwrap().port()).await;
        for (prefix, value) in [
            (r#"pitaya_service_discovery_count_servers{game="",serverType="lobby",type="game"}"#, " 1"),
            (r#"pitaya_service_discovery_count_servers{game="",serverType="lobby",type="lobby"}"#, " 1"),
            (r#"pitaya_rpc_server_dropped_messages{game="",serverType="lobby"}"#, " 0"),
        ] {
            let l = line(&text, prefix);
            assert!(l.ends_with(value), "{l}");
        }
    })
    .await;
}
