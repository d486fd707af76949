//! Session resume end to end (`docs/resume.md`): `pitaya-client` with its `resume` option
//! against the server with resume enabled, the connection cut by a [`CutProxy`] in the
//! middle of the traffic. Nothing may be lost or arrive twice, in either direction.

use std::time::Duration;

use futures_util::future::join_all;
use pitaya::client::{Client, ClientOptions, Pushes, ResumeEvent, ResumeOptions};
use pitaya_tests::CutProxy;

use crate::support::{
    FAST_HEARTBEAT, Server, config, echo_builder, next_push, test_component, wait, within,
};

const REQUESTS: usize = 100;
const PUSHES: usize = 100;

fn resume_server() -> pitaya::Builder {
    echo_builder(config(&[
        ("pitaya.session.resume.enabled", "true"),
        // Uncompressed, so that byte counts below mean the same on every run.
        ("pitaya.handler.messages.compression", "false"),
    ]))
}

fn resuming() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(10),
        resume: Some(ResumeOptions::default()),
        ..ClientOptions::default()
    }
}

async fn connect(url: &str) -> (Client, Pushes) {
    let (client, pushes) =
        wait("connect", Client::connect(url, resuming())).await.expect("connect");
    assert!(client.resume_token().is_some(), "the server grants a resume token");
    (client, pushes)
}

/// The first events after a cut: dropped, then resumed (never a fresh session).
async fn expect_resumed(events: &mut pitaya::client::Events) {
    let dropped = wait("the dropped event", events.recv()).await;
    assert!(matches!(dropped, Some(ResumeEvent::Dropped { .. })), "{dropped:?}");
    let resumed = wait("the resumed event", events.recv()).await;
    assert!(matches!(resumed, Some(ResumeEvent::Resumed { .. })), "{resumed:?}");
}

/// 100 pipelined requests and 100 notifies that each push once, the connection cut after
/// `cut_at` bytes from the server (mid-packet, or mid-frame over WebSocket, for most
/// values), then more requests while
/// the client reconnects: each request is answered exactly once, with its own body, and
/// the pushes arrive once each, in order.
async fn cut_in_flight(cut_at: u64, websocket: bool) {
    let server = Server::start(resume_server()).await;
    let proxy = CutProxy::start(server.addr(websocket)).await.expect("the proxy starts");
    let url = if websocket { format!("ws://{}/", proxy.addr()) } else { proxy.addr().to_string() };
    let (client, mut pushes) = connect(&url).await;
    let mut events = client.events();
    proxy.cut_after(cut_at);

    let requests: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.request("room.echo", format!("request {i}")).await })
        })
        .collect();
    for i in 0..PUSHES {
        client.notify("room.notify", format!("push {i}")).await.expect("notify queued");
    }
    expect_resumed(&mut events).await;
    // Issued after the drop: they go out after the re-sent packets.
    let later = join_all((0..10).map(|i| client.request("room.echo", format!("later {i}"))));
    for (i, reply) in wait("the later replies", later).await.into_iter().enumerate() {
        assert_eq!(reply.expect("a later request is answered"), format!("later {i}"));
    }
    for (i, task) in requests.into_iter().enumerate() {
        let reply = wait("a reply", task).await.expect("the request task");
        assert_eq!(reply.unwrap_or_else(|e| panic!("request {i}: {e}")), format!("request {i}"));
    }
    for i in 0..PUSHES {
        let push = next_push(&mut pushes).await;
        assert_eq!(
            (push.route.as_str(), &push.data[..]),
            ("onNotify", format!("push {i}").as_bytes())
        );
    }
    // Nothing twice: no answer without a waiter, no extra push.
    assert_eq!(client.request("room.echo", "last").await.expect("last"), "last");
    assert!(pushes.try_recv().is_none(), "a push arrived twice");
    assert_eq!(client.unmatched_responses(), 0, "a response arrived twice");
    assert_eq!(client.dropped_pushes(), 0);
    assert_eq!(proxy.accepted(), 2, "one drop, one resume");
    assert!(events.try_recv().is_none());
    client.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_cut_with_requests_and_pushes_in_flight_resumes_with_nothing_lost() {
    within(cut_in_flight(1_500, false)).await;
}

#[tokio::test]
async fn a_cut_at_any_byte_resumes_with_nothing_lost() {
    // Inside a header, inside a body, on a boundary, late: every place a stream can stop.
    within(async {
        for cut_at in [1, 4, 13, 100, 555, 2_999] {
            cut_in_flight(cut_at, false).await;
        }
        // Over WebSocket: inside a frame header, inside a payload.
        for cut_at in [1, 3, 77, 1_500] {
            cut_in_flight(cut_at, true).await;
        }
    })
    .await;
}

const MEMBERS: usize = 4;
const BROADCASTS: usize = 200;

#[tokio::test]
async fn members_cut_during_a_group_broadcast_get_every_message_once_in_order() {
    within(async {
        let server = Server::start(resume_server()).await;
        let tcp = CutProxy::start(server.addr(false)).await.expect("the proxy starts");
        let ws = CutProxy::start(server.addr(true)).await.expect("the proxy starts");
        let mut members = Vec::new();
        for i in 0..MEMBERS {
            // Half of them over WebSocket: the cut then breaks a WebSocket conversation.
            let url =
                if i % 2 == 0 { tcp.addr().to_string() } else { format!("ws://{}/", ws.addr()) };
            let (client, pushes) = connect(&url).await;
            let joined = client.request("room.join", "").await.expect("join");
            assert_eq!(joined, r#"{"code":200}"#);
            let events = client.events();
            members.push((client, pushes, events));
        }
        // The sender is not a member and is never cut.
        let (sender, _sender_pushes) = server.client().await;
        let sending = tokio::spawn(async move {
            for m in 0..BROADCASTS {
                sender.notify("room.message", format!("message {m}")).await.expect("notify");
                // Paced, so that the cut below lands in the middle of the broadcasts.
                if m % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            sender.notify("room.message", "end").await.expect("notify");
            sender
        });
        // Cut every member once some broadcasts reached the first one.
        let (_, first, _) = &mut members[0];
        let mut got_first = Vec::new();
        while got_first.len() < 20 {
            got_first.push(next_push(first).await);
        }
        tcp.cut_all();
        ws.cut_all();
        let sender = wait("the sender", sending).await.expect("the sender task");
        for (i, (client, pushes, events)) in members.iter_mut().enumerate() {
            let mut got = if i == 0 { std::mem::take(&mut got_first) } else { Vec::new() };
            while got.last().is_none_or(|p| p.data != "end") {
                got.push(next_push(pushes).await);
            }
            let want: Vec<String> =
                (0..BROADCASTS).map(|m| format!("message {m}")).chain(["end".to_owned()]).collect();
            let got: Vec<String> =
                got.iter().map(|p| String::from_utf8_lossy(&p.data).into_owned()).collect();
            assert_eq!(got, want, "member {i}");
            assert!(pushes.try_recv().is_none(), "member {i}: a push twice");
            expect_resumed(events).await;
            assert_eq!(client.dropped_pushes(), 0);
            let again = client.request("room.echo", "still here").await.expect("echo");
            assert_eq!(again, "still here");
        }
        assert_eq!(server.handle().groups().members("room").await.expect("group").len(), MEMBERS);
        assert_eq!(tcp.accepted() + ws.accepted(), 2 * MEMBERS, "one resume each");
        for (client, _, _) in &members {
            client.close().await;
        }
        sender.close().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_network_that_dies_silently_is_noticed_by_heartbeat_and_resumed() {
    within(async {
        let server = Server::start(echo_builder(config(&[
            ("pitaya.session.resume.enabled", "true"),
            FAST_HEARTBEAT,
        ])))
        .await;
        let proxy = CutProxy::start(server.addr(false)).await.expect("the proxy starts");
        let (client, mut pushes) = connect(&proxy.addr().to_string()).await;
        let mut events = client.events();
        assert_eq!(client.request("room.echo", "before").await.expect("before"), "before");
        // From here on nothing gets through and nothing ends: only heartbeats tell.
        proxy.hold_all();
        let requests: Vec<_> = (0..20)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move { client.request("room.echo", format!("held {i}")).await })
            })
            .collect();
        for i in 0..20 {
            client.notify("room.notify", format!("held push {i}")).await.expect("notify");
        }
        let dropped = wait("the heartbeat timeout", events.recv()).await;
        assert!(
            matches!(
                dropped,
                Some(ResumeEvent::Dropped {
                    reason: pitaya::client::CloseReason::HeartbeatTimeout
                })
            ),
            "{dropped:?}"
        );
        let resumed = wait("the resume", events.recv()).await;
        assert!(matches!(resumed, Some(ResumeEvent::Resumed { .. })), "{resumed:?}");
        for (i, task) in requests.into_iter().enumerate() {
            let reply = wait("a reply", task).await.expect("the request task");
            assert_eq!(reply.unwrap_or_else(|e| panic!("request {i}: {e}")), format!("held {i}"));
        }
        for i in 0..20 {
            let push = next_push(&mut pushes).await;
            assert_eq!(push.data, format!("held push {i}"));
        }
        assert!(pushes.try_recv().is_none());
        assert_eq!(client.unmatched_responses(), 0);
        client.close().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_session_lost_while_away_comes_back_fresh_and_fails_the_requests_in_flight() {
    within(async {
        let server = Server::start(
            echo_builder(config(&[
                ("pitaya.session.resume.enabled", "true"),
                ("pitaya.session.resume.buffer", "3"),
            ]))
            .component(test_component()),
        )
        .await;
        let proxy = CutProxy::start(server.addr(false)).await.expect("the proxy starts");
        let (client, _pushes) = connect(&proxy.addr().to_string()).await;
        let token = client.resume_token();
        let mut events = client.events();
        assert_eq!(client.request("test.bind", "away").await.expect("bind"), "bound");
        // Out of reach: the client keeps trying while the server keeps its session...
        proxy.refuse(true);
        proxy.cut_all();
        let dropped = wait("the drop", events.recv()).await;
        assert!(matches!(dropped, Some(ResumeEvent::Dropped { .. })), "{dropped:?}");
        let in_flight = {
            let client = client.clone();
            tokio::spawn(async move { client.request("room.echo", "lost with the session").await })
        };
        // ...until more packets wait for it than the buffer holds: the session is closed.
        let session = loop {
            if let Some(session) = server.handle().sessions().by_uid("away") {
                break session;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..3 {
            session.push("onPush", format!("{i}")).await.expect("kept for the client");
        }
        assert!(session.push("onPush", "one too many").await.is_err());
        proxy.refuse(false);
        let fresh = wait("the fresh session", events.recv()).await;
        assert!(
            matches!(&fresh, Some(ResumeEvent::FreshSession { failed: 1, token: Some(t) }) if Some(t) != token.as_ref()),
            "{fresh:?}"
        );
        let lost = wait("the lost request", in_flight).await.expect("the request task");
        assert!(matches!(lost, Err(pitaya::client::ClientError::SessionLost)), "{lost:?}");
        // The new session works, and is not the old one: nothing is bound to it.
        assert_eq!(client.request("room.echo", "fresh").await.expect("echo"), "fresh");
        assert!(server.handle().sessions().by_uid("away").is_none());
        assert_eq!(client.resume_counters(), Some((1, 1)));
        client.close().await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_kicked_client_does_not_resume() {
    within(async {
        let server = Server::start(resume_server().component(test_component())).await;
        let (client, _pushes) = connect(&server.url(false)).await;
        let mut events = client.events();
        assert_eq!(client.request("test.bind", "kicked").await.expect("bind"), "bound");
        let session = server.handle().sessions().by_uid("kicked").expect("bound");
        session.kick().await.expect("kick");
        wait("the kick", client.closed()).await;
        assert_eq!(client.close_reason(), Some(pitaya::client::CloseReason::Kicked));
        assert_eq!(wait("the end of events", events.recv()).await, None);
        server.shutdown().await;
    })
    .await;
}
