//! statsd reporter against a real UDP socket on 127.0.0.1.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::Duration;

use pitaya_config::model::MetricsConfig;
use pitaya_metrics::{Reporter, StatsdReporter, labels, names};

fn agent() -> (UdpSocket, MetricsConfig) {
    let agent = UdpSocket::bind("127.0.0.1:0").unwrap();
    agent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut c = MetricsConfig::default();
    c.statsd.host = agent.local_addr().unwrap().to_string();
    c.const_labels = BTreeMap::from([("game".to_owned(), "g".to_owned())]);
    (agent, c)
}

fn recv(agent: &UdpSocket) -> String {
    let mut buf = [0u8; 2048];
    let n = agent.recv(&mut buf).unwrap();
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn lines_match_go_byte_for_byte() {
    let (agent, c) = agent();
    let r = StatsdReporter::new("connector", &c).unwrap();
    let rt = labels([("route", "r"), ("status", "ok"), ("type", "handler"), ("code", "")]);
    r.report_summary(names::RESPONSE_TIME, &rt, 1500.0).unwrap();
    assert_eq!(
        recv(&agent),
        "pitaya.response_time_ns:1500.000000|ms|#serverType:connector,game:g,code:,route:r,status:ok,type:handler"
    );
    r.report_gauge(names::CONNECTED_CLIENTS, &labels([]), 3.0).unwrap();
    assert_eq!(recv(&agent), "pitaya.connected_clients:3|g|#serverType:connector,game:g");
    r.report_gauge(names::CHANNEL_CAPACITY, &labels([("channel", "agent_chsend")]), 0.5).unwrap();
    assert_eq!(
        recv(&agent),
        "pitaya.channel_capacity:0.5|g|#serverType:connector,game:g,channel:agent_chsend"
    );
    r.report_count(names::EXCEEDED_RATE_LIMITING, &labels([]), 2.0).unwrap();
    assert_eq!(recv(&agent), "pitaya.exceeded_rate_limiting:2|c|#serverType:connector,game:g");
    r.report_histogram("latency", &labels([("kind", "a")]), 7.25).unwrap();
    assert_eq!(recv(&agent), "pitaya.latency:7.25|h|#serverType:connector,game:g,kind:a");
}

#[test]
fn absent_agent_is_not_an_error() {
    // Bind then drop, so nothing listens on the port.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = MetricsConfig::default();
    c.statsd.host = format!("127.0.0.1:{port}");
    let r = StatsdReporter::new("connector", &c).unwrap();
    for _ in 0..3 {
        r.report_gauge(names::CONNECTED_CLIENTS, &labels([]), 1.0).unwrap();
    }
}

#[test]
fn zero_rate_sends_nothing() {
    let (agent, mut c) = agent();
    c.statsd.rate = 0.0;
    let r = StatsdReporter::new("connector", &c).unwrap();
    r.report_gauge(names::CONNECTED_CLIENTS, &labels([]), 1.0).unwrap();
    agent.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 64];
    assert!(agent.recv(&mut buf).is_err());
}
