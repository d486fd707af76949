//! `examples/bot/chat.yaml` against the chat example started in-process.

mod support;

use std::time::Duration;

use pitaya_bot::{RunOptions, Spec, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_spec_passes_over_tcp_and_websocket() {
    let running = pitaya_examples::chat::start("127.0.0.1:0", "127.0.0.1:0").await.unwrap();
    let tcp = support::addr(&running, false);
    let ws = support::addr(&running, true);
    for (address, prefix) in [(format!("tcp://{tcp}"), "tcp"), (format!("ws://{ws}/chat"), "ws")] {
        let mut spec = Spec::load(&support::example_spec("chat.yaml")).unwrap();
        spec.bots = 3;
        spec.iterations = Some(4);
        spec.ramp_up = Duration::from_millis(30);
        // Names stay unique if a slow leave of the previous round is still in flight.
        spec.set_var("prefix", prefix.into()).unwrap();
        let opts = RunOptions { address: Some(address), ..RunOptions::default() };
        let report = run(spec, opts).await.unwrap();
        assert_eq!(report.assertion_failures, 0, "{}", report.table());
        assert_eq!(report.failed, 0, "{}", report.table());
        assert_eq!(report.routes["chat.join"].requests, 3);
        assert_eq!(report.routes["chat.leave"].requests, 3);
        assert_eq!(report.routes["chat.members"].requests, 12);
        assert_eq!(report.notify_routes["chat.message"].sent, 12);
        // Each message goes to every member present, so at least one per send.
        assert!(report.push_routes["onMessage"] >= 12, "{}", report.table());
        assert!(report.push_routes["onMembers"] >= 3, "{}", report.table());
        assert_eq!(report.iterations, 12);
    }
    running.shutdown().await;
}
