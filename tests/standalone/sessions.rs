//! Session callbacks and binding (spec §8.1) as the application sees them.

use pitaya::config::PitayaConfig;
use pitaya::{Builder, Error, Session};
use tokio::sync::mpsc;

use crate::support::{Server, config, echo_builder, server_error, test_component, wait, within};

/// The echo app plus `test.bind`, with every session callback reporting on `events`.
/// The on-bind callback refuses the uid `banned`.
fn recording_builder(events: &mpsc::UnboundedSender<String>) -> Builder {
    recording_builder_with(events, config(&[]))
}

fn recording_builder_with(events: &mpsc::UnboundedSender<String>, config: PitayaConfig) -> Builder {
    let builder = echo_builder(config).component(test_component());
    let pool = builder.sessions();
    let tx = events.clone();
    pool.on_session_bind(move |s: Session| {
        let tx = tx.clone();
        async move {
            let uid = s.uid().unwrap_or_default();
            let _ = tx.send(format!("on_bind {uid}"));
            if &*uid == "banned" { Err(Error::new("PIT-403", "banned user")) } else { Ok(()) }
        }
    });
    let tx = events.clone();
    pool.after_session_bind(move |s: Session| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(format!("after_bind {}", s.uid().unwrap_or_default()));
            Ok(())
        }
    });
    let tx = events.clone();
    pool.on_session_close(move |s| {
        let _ = tx.send(format!("close {}", s.uid().as_deref().unwrap_or("-")));
    });
    builder
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<String>) -> String {
    wait("a session callback", events.recv()).await.expect("the server keeps the sender")
}

#[tokio::test]
async fn bind_callbacks_run_in_order_and_close_callback_follows() {
    within(async {
        let (tx, mut events) = mpsc::unbounded_channel();
        let server = Server::start(recording_builder(&tx)).await;
        let (client, _pushes) = server.client().await;
        assert_eq!(client.request("test.bind", "alice").await.expect("bind"), "bound");
        assert_eq!(next_event(&mut events).await, "on_bind alice");
        assert_eq!(next_event(&mut events).await, "after_bind alice");
        assert!(server.handle().sessions().by_uid("alice").is_some());

        client.close().await;
        assert_eq!(next_event(&mut events).await, "close alice");
        assert!(server.handle().sessions().by_uid("alice").is_none());
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn failing_on_bind_callback_undoes_the_bind() {
    within(async {
        let (tx, mut events) = mpsc::unbounded_channel();
        let server = Server::start(recording_builder(&tx)).await;
        let (client, _pushes) = server.client().await;

        let error = server_error(client.request("test.bind", "banned").await);
        assert_eq!((error.code.as_str(), error.msg.as_str()), ("PIT-403", "banned user"));
        assert_eq!(next_event(&mut events).await, "on_bind banned");
        assert!(server.handle().sessions().by_uid("banned").is_none());

        // The uid was released: the same session can bind another one, and no
        // after-bind callback ran for the refused uid.
        assert_eq!(client.request("test.bind", "carol").await.expect("bind"), "bound");
        assert_eq!(next_event(&mut events).await, "on_bind carol");
        assert_eq!(next_event(&mut events).await, "after_bind carol");
        client.close().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn binding_a_bound_uid_again_kicks_the_first_connection() {
    // pitaya.session.unique is on by default: the older client gets a kick packet.
    rebind_closes_the_first_connection(config(&[]), true).await;
}

#[tokio::test]
async fn without_unique_sessions_a_rebind_closes_the_first_connection_without_kick() {
    rebind_closes_the_first_connection(config(&[("pitaya.session.unique", "false")]), false).await;
}

async fn rebind_closes_the_first_connection(config: PitayaConfig, kicked: bool) {
    within(async {
        let (tx, mut events) = mpsc::unbounded_channel();
        let server = Server::start(recording_builder_with(&tx, config)).await;
        let (first, _first_pushes) = server.client().await;
        let (second, _second_pushes) = server.client().await;
        first.request("test.bind", "dave").await.expect("first bind");
        second.request("test.bind", "dave").await.expect("second bind");

        wait("the first connection to close", first.closed()).await;
        assert_eq!(first.kicked(), kicked, "{:?}", first.close_reason());
        let mut seen = Vec::new();
        while seen.len() < 5 {
            seen.push(next_event(&mut events).await);
        }
        // The old session is closed after the new one's on-bind callbacks; its close
        // callback runs in its own task, so it may come before or after the after-bind.
        assert_eq!(seen[..3], ["on_bind dave", "after_bind dave", "on_bind dave"]);
        seen[3..].sort();
        assert_eq!(seen[3..], ["after_bind dave", "close dave"]);

        assert_eq!(second.request("room.echo", "still here").await.expect("echo"), "still here");
        let owner = server.handle().sessions().by_uid("dave").expect("dave is bound");
        assert_eq!(server.handle().sessions().count(), 1);
        assert!(!owner.is_closed());
        second.close().await;
        server.shutdown().await;
    })
    .await;
}
