//! `drop` steps: the bot cuts its connections against the echo example with session
//! resume, and checks that nothing was lost or answered twice.

mod support;

use pitaya_bot::{RunOptions, Spec, run};
use pitaya_examples::echo::EchoArgs;
use support::{Echo, example_spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resume_example_spec_passes_with_every_drop_resumed() {
    let echo = Echo::start_with(EchoArgs { resume: true, ..Echo::args() }).await;
    for websocket in [false, true] {
        let address = if websocket {
            format!("ws://{}/", echo.addr(true))
        } else {
            format!("tcp://{}", echo.addr(false))
        };
        let spec = Spec::load(&example_spec("resume.yaml")).unwrap();
        assert!(spec.resume);
        let drops = spec.bots as u64 * spec.iterations.unwrap() * 2;
        let opts = RunOptions { address: Some(address), ..RunOptions::default() };
        let report = run(spec, opts).await.unwrap();
        assert!(report.verdict(Some(0.0)).is_empty(), "{}", report.table());
        assert_eq!(report.assertion_failures, 0, "{}", report.table());
        assert_eq!(report.bots_stopped_early, 0, "{}", report.table());
        assert_eq!(report.resume.drops, drops, "{}", report.table());
        assert_eq!(report.resume.resumed, drops, "{}", report.table());
        assert_eq!(report.resume.fresh_sessions, 0);
        assert!(report.table().contains(&format!("{drops} connections dropped: {drops} resumed")));
    }
    echo.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_without_resume_on_the_server_fails_the_step() {
    let echo = Echo::start().await;
    let spec = Spec::from_yaml("steps: [{drop: resumed}, {request: room.echo, data: x}]").unwrap();
    let opts = RunOptions {
        address: Some(format!("tcp://{}", echo.addr(false))),
        ..RunOptions::default()
    };
    let report = run(spec, opts).await.unwrap();
    assert_eq!(report.assertion_failures, 1, "{}", report.table());
    assert!(report.failures[0].example.contains("no resume token"), "{:?}", report.failures);
    assert_eq!(report.resume.drops, 0);
    echo.running.shutdown().await;
}
