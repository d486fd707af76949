//! Graceful shutdown: requests already read are answered, then connections close.

use std::time::Duration;

use bytes::Bytes;
use pitaya::client::Client;
use pitaya::{Component, Error};
use tokio::sync::mpsc;

use crate::support::{Server, config, echo_builder, wait, within};

/// A `test.slow` handler that reports on `started` when it begins, then takes 500 ms.
fn slow_component(started: mpsc::UnboundedSender<()>) -> Component {
    Component::new("test").handler("slow", move |body: Bytes| {
        let started = started.clone();
        async move {
            let _ = started.send(());
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, Error>(body)
        }
    })
}

#[tokio::test]
async fn request_in_flight_is_answered_during_shutdown() {
    within(async {
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let server =
            Server::start(echo_builder(config(&[])).component(slow_component(started_tx))).await;
        let (tcp, url, opts) = (server.addr(false), server.url(false), server.options());

        let (client, _pushes) = server.client().await;
        let pending = tokio::spawn({
            let client = client.clone();
            async move { client.request("test.slow", "worth the wait").await }
        });
        let mut raw = server.raw().await;
        raw.handshake().await;
        raw.request(7, "test.slow", b"raw too").await;
        for _ in 0..2 {
            wait("the slow handler to start", started.recv()).await;
        }

        // Both handlers are sleeping now.
        let shutdown = tokio::spawn(server.shutdown());
        let reply = wait("the in-flight reply", pending).await.expect("request task");
        assert_eq!(reply.expect("answered despite the shutdown"), "worth the wait");
        let msg = raw.message().await;
        assert_eq!((msg.id, &msg.data[..]), (7, &b"raw too"[..]));
        // Then the connection closes, without a kick packet.
        raw.expect_silent_close("after shutdown").await;
        wait("the client to see the close", client.closed()).await;
        assert!(!client.kicked());
        wait("shutdown to finish", shutdown).await.expect("shutdown task");

        // Nobody is accepted any more.
        assert!(
            Client::connect(&url, opts).await.is_err(),
            "a client connected to {tcp} after shutdown"
        );
    })
    .await;
}
