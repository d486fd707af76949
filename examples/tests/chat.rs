//! The chat example end to end: two clients (TCP and WebSocket) join, talk and leave.

use std::time::Duration;

use pitaya::client::{Client, ClientError, ClientOptions, Pushes};
use pitaya_examples::chat::{Members, Said};

const WAIT: Duration = Duration::from_secs(5);

async fn next_push(pushes: &mut Pushes, route: &str) -> bytes::Bytes {
    loop {
        let push =
            tokio::time::timeout(WAIT, pushes.recv()).await.expect("push in time").expect("open");
        if push.route == route {
            return push.data;
        }
    }
}

#[tokio::test]
async fn join_talk_and_leave_over_tcp_and_ws() {
    let running = pitaya_examples::chat::start("127.0.0.1:0", "127.0.0.1:0").await.unwrap();
    let addrs = running.local_addrs().to_vec();
    let tcp = addrs.iter().find(|(t, _)| !t.is_websocket()).unwrap().1;
    let ws = addrs.iter().find(|(t, _)| t.is_websocket()).unwrap().1;

    let (ana, mut ana_pushes) =
        Client::connect(&tcp.to_string(), ClientOptions::default()).await.unwrap();
    let (bob, mut bob_pushes) =
        Client::connect(&format!("ws://{ws}/chat"), ClientOptions::default()).await.unwrap();

    let joined: Members =
        serde_json::from_slice(&ana.request("chat.join", r#"{"name":"ana"}"#).await.unwrap())
            .unwrap();
    assert_eq!(joined.members, ["ana"]);
    let joined: Members =
        serde_json::from_slice(&bob.request("chat.join", r#"{"name":"bob"}"#).await.unwrap())
            .unwrap();
    assert_eq!(joined.members, ["ana", "bob"]);
    let seen: Members =
        serde_json::from_slice(&next_push(&mut ana_pushes, "onMembers").await).unwrap();
    assert_eq!(seen.members, ["ana"]);
    let seen: Members =
        serde_json::from_slice(&next_push(&mut ana_pushes, "onMembers").await).unwrap();
    assert_eq!(seen.members, ["ana", "bob"]);

    // A taken name is refused.
    let (eve, _eve_pushes) =
        Client::connect(&tcp.to_string(), ClientOptions::default()).await.unwrap();
    match eve.request("chat.join", r#"{"name":"ana"}"#).await {
        Err(ClientError::Server(e)) => assert_eq!(e.code, "PIT-409"),
        other => panic!("expected PIT-409, got {other:?}"),
    }

    bob.notify("chat.message", r#"{"text":"hi ana"}"#).await.unwrap();
    for pushes in [&mut ana_pushes, &mut bob_pushes] {
        let said: Said = serde_json::from_slice(&next_push(pushes, "onMessage").await).unwrap();
        assert_eq!(said, Said { from: "bob".into(), text: "hi ana".into() });
    }

    // Closing the connection leaves the room.
    bob.close().await;
    loop {
        let seen: Members =
            serde_json::from_slice(&next_push(&mut ana_pushes, "onMembers").await).unwrap();
        if seen.members == ["ana"] {
            break;
        }
    }
    let left: Members =
        serde_json::from_slice(&ana.request("chat.leave", "").await.unwrap()).unwrap();
    assert!(left.members.is_empty());
    running.shutdown().await;
}
