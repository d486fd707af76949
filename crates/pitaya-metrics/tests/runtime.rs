//! The runtime reporter feeding a Prometheus reporter and a fan-out.

use std::sync::Arc;
use std::time::Duration;

use pitaya_config::model::MetricsConfig;
use pitaya_metrics::{PrometheusReporter, Reporter, Reporters, spawn_runtime_reporter};

fn gauge(body: &str, name: &str) -> Option<f64> {
    body.lines().find(|l| l.starts_with(&format!("{name}{{")))?.rsplit(' ').next()?.parse().ok()
}

#[tokio::test]
async fn publishes_goroutines_and_heapsize() {
    let p = PrometheusReporter::new("connector", &MetricsConfig::default()).unwrap();
    let reporters: Arc<dyn Reporter> = Arc::new(Reporters::new().with(Arc::new(p.clone())));
    let sys = spawn_runtime_reporter(reporters, Duration::from_secs(3600));
    // The first report happens at once; give the task a moment to run.
    let mut body = String::new();
    for _ in 0..200 {
        body = p.render();
        if body.contains("pitaya_sys_goroutines{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(gauge(&body, "pitaya_sys_goroutines").unwrap() > 0.0, "{body}");
    if cfg!(target_os = "linux") {
        assert!(gauge(&body, "pitaya_sys_heapsize").unwrap() > 0.0, "{body}");
    }
    assert!(!body.contains("pitaya_sys_heapobjects{"));
    sys.stop();
}

#[test]
fn fan_out_reaches_all_and_returns_first_error() {
    let a = PrometheusReporter::new("a", &MetricsConfig::default()).unwrap();
    let b = PrometheusReporter::new("b", &MetricsConfig::default()).unwrap();
    let all = Reporters::new().with(Arc::new(a.clone())).with(Arc::new(b.clone()));
    all.report_gauge("goroutines", &pitaya_metrics::labels([]), 4.0).unwrap();
    assert!(a.render().contains(r#"pitaya_sys_goroutines{game="",serverType="a"} 4"#));
    assert!(b.render().contains(r#"pitaya_sys_goroutines{game="",serverType="b"} 4"#));
    assert!(all.report_gauge("nope", &pitaya_metrics::labels([]), 1.0).is_err());
}
